#include "data/uniprot.h"

#include <array>
#include <cstdint>
#include <cstdio>
#include <sstream>

#include "core/error.h"
#include "data/text_io.h"

namespace pe {

namespace {

bool is_blank(const std::string& s) { return s.find_first_not_of(" \t") == std::string::npos; }

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

// Removes "{ECO:...}" evidence tags and the blank before them:
//   "binds ATP {ECO:1}." -> "binds ATP."   "binds ATP. {ECO:1}." -> "binds ATP."
std::string strip_evidence(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    if (s.compare(i, 5, "{ECO:") == 0) {
      while (!out.empty() && out.back() == ' ') out.pop_back();
      const auto close = s.find('}', i);
      i = close == std::string::npos ? s.size() : close + 1;
      // Modern files close a sentence before its tag and again after it: "text. {ECO:1}."
      if (!out.empty() && out.back() == '.' && i < s.size() && s[i] == '.') ++i;
      continue;
    }
    out += s[i++];
  }
  return trim(out);
}

// Line content after the two-letter code and its three blanks.
std::string content(const std::string& line) { return line.size() > 5 ? line.substr(5) : std::string(); }

// "Label: value." — adds the final period only when the value has none.
void add_sentence(std::string& out, const char* label, const std::string& value) {
  if (value.empty()) return;
  if (!out.empty()) out += ' ';
  out += label;
  out += ": ";
  out += value;
  if (out.back() != '.') out += '.';
}

// Value of "Key=value;" inside a DE/GN line content, or "" when the key is absent.
std::string field_value(const std::string& c, const std::string& key) {
  std::size_t p = 0;
  while ((p = c.find(key, p)) != std::string::npos) {
    // Only a whole key: "Name=" must not match inside "ORFNames=".
    if (p == 0 || c[p - 1] == ' ') {
      const std::size_t b = p + key.size();
      const std::size_t e = c.find(';', b);
      return strip_evidence(c.substr(b, e == std::string::npos ? std::string::npos : e - b));
    }
    p += key.size();
  }
  return {};
}

const std::array<std::uint64_t, 256>& crc64_table() {
  static const std::array<std::uint64_t, 256> table = [] {
    std::array<std::uint64_t, 256> t{};
    for (std::uint64_t i = 0; i < 256; ++i) {
      std::uint64_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0xd800000000000000ULL : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

}  // namespace

std::string uniprot_crc64(const std::string& seq) {
  const auto& t = crc64_table();
  std::uint64_t crc = 0;
  for (unsigned char ch : seq) crc = t[(crc ^ ch) & 0xff] ^ (crc >> 8);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llX", static_cast<unsigned long long>(crc));
  return buf;
}

unsigned parse_uniprot_fields(const std::string& list) {
  unsigned mask = 0;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item = trim(item);
    if (item == "name") mask |= kUpName;
    else if (item == "gene") mask |= kUpGene;
    else if (item == "organism") mask |= kUpOrganism;
    else if (item == "function") mask |= kUpFunction;
    else if (item == "keywords") mask |= kUpKeywords;
    else if (item == "go") mask |= kUpGo;
    else if (item == "default") mask |= kUpDefaultFields;
    else if (item == "all") mask |= kUpName | kUpGene | kUpOrganism | kUpFunction | kUpKeywords | kUpGo;
    else
      PE_FAIL("uniprot fields: unknown field '", item,
              "' (expected name, gene, organism, function, keywords, go, default or all)");
  }
  PE_CHECK(mask != 0, "uniprot fields: empty field list '", list, "'");
  return mask;
}

std::string uniprot_text(const UniProtEntry& e, unsigned fields) {
  std::string out;
  if (fields & kUpName) add_sentence(out, "Name", e.name);
  if (fields & kUpGene) add_sentence(out, "Gene", e.gene);
  if (fields & kUpOrganism) add_sentence(out, "Organism", e.organism);
  if (fields & kUpFunction) add_sentence(out, "Function", e.function);
  if ((fields & kUpKeywords) && !e.keywords.empty()) {
    std::string k;
    for (std::size_t i = 0; i < e.keywords.size(); ++i) k += (i ? "; " : "") + e.keywords[i];
    add_sentence(out, "Keywords", k);
  }
  if ((fields & kUpGo) && !e.go.empty()) {
    std::vector<std::string> mf, bp, cc;
    for (const auto& g : e.go) (g.aspect == 'F' ? mf : g.aspect == 'P' ? bp : cc).push_back(g.name);
    const std::string go = go_text(std::move(mf), std::move(bp), std::move(cc));
    if (!go.empty()) out += (out.empty() ? "" : " ") + go;
  }
  return out;
}

UniProtReader::UniProtReader(const std::string& path, UniProtOptions opt)
    : in_(std::make_unique<LineReader>(path)), opt_(opt) {}

UniProtReader::~UniProtReader() = default;

void UniProtReader::skip(const std::string& reason, std::size_t line, const std::string& msg) {
  stats_.skip(reason, in_->where(line) + ": " + msg, opt_.strict);
}

bool UniProtReader::read_raw(UniProtEntry& e) {
  // Per-entry parse state. The first defect found is remembered and the entry is read on to its
  // "//" so that the next entry starts cleanly.
  struct State {
    bool open = false, have_id = false, have_ac = false, have_sq = false, in_function = false;
    std::size_t sq_len = 0;
    std::string sq_crc, subname, function, keywords, organism;
    std::string defect_reason, defect_msg;
    std::size_t defect_line = 0;
  } st;
  auto defect = [&st](const char* reason, std::size_t line, std::string msg) {
    if (!st.defect_reason.empty()) return;
    st.defect_reason = reason;
    st.defect_line = line;
    st.defect_msg = std::move(msg);
  };
  auto reset = [&](std::size_t line) {
    st = State{};
    e = UniProtEntry{};
    e.line = line;
  };
  reset(0);

  while (in_->next(line_)) {
    if (is_blank(line_)) continue;
    seen_any_ = true;
    const std::size_t ln = in_->line_no();
    const std::string code = line_.substr(0, 2);

    if (code == "ID" && st.open) {
      skip("entry not terminated by //", e.line,
           "entry has no \"//\" before the next ID line at line " + std::to_string(ln));
      reset(ln);
    }
    if (!st.open) {
      st.open = true;
      e.line = ln;
    }
    if (code != "CC") st.in_function = false;

    if (code == "//") {
      const std::string id = e.accession.empty() ? std::string("entry") : e.accession;
      if (!st.have_id) defect("no ID line", e.line, "entry has no ID line");
      if (!st.have_ac) defect("no AC line", e.line, id + ": entry has no AC line");
      if (!st.have_sq) defect("no SQ line", e.line, id + ": entry has no SQ line (no sequence)");
      if (st.have_sq && st.defect_reason.empty() && e.seq.size() != st.sq_len)
        defect("sequence length mismatch", e.line,
               id + ": SQ line says " + std::to_string(st.sq_len) + " residues but " +
                   std::to_string(e.seq.size()) + " were read");
      if (st.have_sq && st.defect_reason.empty() && e.seq.empty())  // "SQ   SEQUENCE 0 AA;"
        defect("empty sequence", e.line, id + ": entry has no residues");
      if (st.have_sq && st.defect_reason.empty() && !st.sq_crc.empty() &&
          uniprot_crc64(e.seq) != st.sq_crc)
        defect("CRC64 mismatch", e.line,
               id + ": sequence CRC64 " + uniprot_crc64(e.seq) + " differs from SQ line " + st.sq_crc);
      if (!st.defect_reason.empty()) {
        skip(st.defect_reason, st.defect_line, st.defect_msg);
        reset(0);
        continue;
      }
      if (e.name.empty()) e.name = st.subname;
      e.function = strip_evidence(st.function);
      e.organism = strip_evidence(st.organism);
      if (!e.organism.empty() && e.organism.back() == '.') e.organism.pop_back();
      std::stringstream kw(st.keywords);
      std::string k;
      while (std::getline(kw, k, ';')) {
        k = strip_evidence(k);
        if (!k.empty() && k.back() == '.') k.pop_back();
        if (!k.empty()) e.keywords.push_back(k);
      }
      return true;
    }

    const std::string c = content(line_);
    if (code == "ID") {
      st.have_id = true;
      e.entry_name = c.substr(0, c.find(' '));
    } else if (code == "AC") {
      if (!st.have_ac) {
        e.accession = trim(c.substr(0, c.find(';')));
        st.have_ac = !e.accession.empty();
      }
    } else if (code == "DE") {
      if (e.name.empty() && c.find("RecName:") != std::string::npos) e.name = field_value(c, "Full=");
      if (st.subname.empty() && c.find("SubName:") != std::string::npos)
        st.subname = field_value(c, "Full=");
    } else if (code == "GN") {
      if (e.gene.empty()) e.gene = field_value(c, "Name=");
    } else if (code == "OS") {
      st.organism += (st.organism.empty() ? "" : " ") + trim(c);
    } else if (code == "CC") {
      if (c.compare(0, 4, "-!- ") == 0) {
        const auto colon = c.find(':');
        st.in_function = colon != std::string::npos && c.compare(4, colon - 4, "FUNCTION") == 0;
        if (st.in_function) st.function += (st.function.empty() ? "" : " ") + trim(c.substr(colon + 1));
      } else if (st.in_function && c.compare(0, 4, "    ") == 0) {
        st.function += " " + trim(c);
      } else {
        st.in_function = false;  // copyright block or another topic's body
      }
    } else if (code == "KW") {
      st.keywords += (st.keywords.empty() ? "" : " ") + trim(c);
    } else if (code == "DR") {
      // "GO; GO:0005737; C:cytoplasm; IDA:UniProtKB."  The name runs to the last "; ".
      if (c.compare(0, 4, "GO; ") == 0) {
        const auto id_end = c.find(';', 4);
        const auto last = c.rfind("; ");
        if (id_end == std::string::npos || last == std::string::npos || last <= id_end + 3 ||
            c.size() < id_end + 4 || c[id_end + 3] != ':' ||
            (c[id_end + 2] != 'F' && c[id_end + 2] != 'P' && c[id_end + 2] != 'C')) {
          defect("malformed GO line", ln, "malformed DR GO line: " + c);
        } else {
          GoAnnotation g;
          g.id = c.substr(4, id_end - 4);
          g.aspect = c[id_end + 2];
          g.name = strip_evidence(c.substr(id_end + 4, last - (id_end + 4)));
          e.go.push_back(std::move(g));
        }
      }
    } else if (code == "SQ") {
      unsigned long long n = 0;
      char crc[32] = {0};
      if (std::sscanf(c.c_str(), "SEQUENCE %llu AA; %*u MW; %16s CRC64;", &n, crc) < 1) {
        defect("malformed SQ line", ln, "malformed SQ line: " + c);
      } else {
        st.have_sq = true;
        st.sq_len = static_cast<std::size_t>(n);
        st.sq_crc = crc;
      }
    } else if (code == "  ") {
      if (!st.have_sq) {
        defect("residues before SQ line", ln, "sequence data before the SQ line");
        continue;
      }
      for (std::size_t i = 0; i < line_.size(); ++i) {
        const char ch = line_[i];
        if (ch == ' ') continue;
        if (ch >= 'A' && ch <= 'Z') {
          e.seq += ch;
        } else {
          defect("bad residue", ln,
                 "bad residue '" + std::string(1, ch) + "' at column " + std::to_string(i + 1));
          break;
        }
      }
    }
  }
  if (st.open)
    skip("truncated entry", e.line,
         (e.accession.empty() ? std::string("entry") : e.accession) +
             ": end of file before the entry's \"//\" (truncated file?)");
  if (!seen_any_) PE_FAIL(in_->path(), ": empty file (no UniProt entries)");
  return false;
}

bool UniProtReader::next_entry(UniProtEntry& e) {
  if (!read_raw(e)) return false;
  ++stats_.records;
  return true;
}

bool UniProtReader::next(ProteinRecord& rec) {
  UniProtEntry e;
  while (read_raw(e)) {
    std::string text = uniprot_text(e, opt_.fields);
    if (text.empty()) {
      skip("empty text", e.line, e.accession + ": none of the chosen fields is present");
      continue;
    }
    rec.id = std::move(e.accession);
    rec.seq = std::move(e.seq);
    rec.text = std::move(text);
    rec.line = e.line;
    ++stats_.records;
    return true;
  }
  return false;
}

std::vector<ProteinRecord> read_uniprot(const std::string& path, const UniProtOptions& opt,
                                        ReadStats* stats) {
  return read_all_records<UniProtReader>(path, opt, stats);
}

}  // namespace pe
