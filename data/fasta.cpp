#include "data/fasta.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/text_io.h"

namespace pe {

namespace {
bool is_blank(const std::string& s) { return s.find_first_not_of(" \t") == std::string::npos; }

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}
}  // namespace

std::string fasta_accession(std::string_view header) {
  if (!header.empty() && header[0] == '>') header.remove_prefix(1);
  const auto b = header.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  header.remove_prefix(b);
  const std::string_view word = header.substr(0, header.find_first_of(" \t"));
  if (word.size() > 3 && (word.compare(0, 3, "sp|") == 0 || word.compare(0, 3, "tr|") == 0)) {
    const std::string_view rest = word.substr(3);
    return std::string(rest.substr(0, rest.find('|')));
  }
  return std::string(word);
}

std::unordered_map<std::string, std::string> read_descriptions(const std::string& path,
                                                               ReadStats& stats, bool strict) {
  std::unordered_map<std::string, std::size_t> first_line;  // accession -> line, for duplicates
  std::unordered_map<std::string, std::string> out;
  LineReader in(path);
  std::string line;
  int format = 0;  // 0 unknown yet, 1 TSV, 2 JSONL
  while (in.next(line)) {
    if (is_blank(line)) continue;
    if (format == 0) {
      format = line[line.find_first_not_of(" \t")] == '{' ? 2 : 1;
      if (format == 1) {
        const std::string first = lower(line.substr(0, line.find('\t')));
        if (first == "id" || first == "accession") continue;  // header line
      }
    }
    std::string acc, text;
    if (format == 1) {
      const auto tab = line.find('\t');
      if (tab == std::string::npos) {
        stats.skip("description: no tab", in.where() + ": description line has no tab", strict);
        continue;
      }
      acc = line.substr(0, tab);
      text = line.substr(tab + 1);
    } else {
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for "1e309"
        stats.skip("description: malformed JSON", in.where() + ": malformed JSON: " + e.what(), strict);
        continue;
      }
      const bool ok = j.is_object() && j.contains("id") && j["id"].is_string() &&
                      j.contains("text") && j["text"].is_string();
      if (!ok) {
        stats.skip("description: missing id/text",
                   in.where() + ": description needs string \"id\" and \"text\"", strict);
        continue;
      }
      acc = j["id"].get<std::string>();
      text = j["text"].get<std::string>();
    }
    if (acc.empty() || text.empty()) {
      stats.skip("description: empty field", in.where() + ": empty accession or text", strict);
      continue;
    }
    const auto [it, inserted] = first_line.emplace(acc, in.line_no());
    if (!inserted) {
      stats.skip("description: duplicate accession",
                 in.where() + ": second description for " + acc + " (first at line " +
                     std::to_string(it->second) + ")",
                 strict);
      continue;
    }
    out.emplace(std::move(acc), std::move(text));
  }
  return out;
}

FastaReader::FastaReader(const std::string& path, FastaOptions opt)
    : opt_(std::move(opt)) {
  if (!opt_.descriptions.empty()) desc_ = read_descriptions(opt_.descriptions, stats_, opt_.strict);
  in_ = std::make_unique<LineReader>(path);
}

FastaReader::~FastaReader() = default;

bool FastaReader::next(ProteinRecord& rec) {
  for (;;) {
    // Find the next header.
    while (!have_header_line_) {
      if (!in_->next(line_)) {
        if (!seen_any_) PE_FAIL(in_->path(), ": empty file (no FASTA records)");
        return false;
      }
      if (is_blank(line_)) continue;
      seen_any_ = true;
      if (line_[0] == '>') {
        have_header_line_ = true;
      } else {
        stats_.skip("text before first header", in_->where() + ": line outside a FASTA record",
                    opt_.strict);
      }
    }
    const std::size_t header_line = in_->line_no();
    const std::string where = in_->where();
    std::string id = fasta_accession(line_);
    std::string seq;
    have_header_line_ = false;
    while (in_->next(line_)) {
      if (!line_.empty() && line_[0] == '>') {
        have_header_line_ = true;
        break;
      }
      for (char c : line_)
        if (c != ' ' && c != '\t') seq += c;
    }

    if (id.empty()) {
      stats_.skip("empty header", where + ": header has no accession", opt_.strict);
      continue;
    }
    // Cleaned first: a sequence that is only a stop '*' has no residues either.
    const std::size_t bad = clean_sequence(seq);
    if (seq.empty()) {
      stats_.skip("empty sequence", where + ": " + id + ": record has no residues", opt_.strict);
      continue;
    }
    if (bad != std::string::npos) {
      stats_.skip("bad residue",
                  where + ": " + id + ": bad residue '" + std::string(1, seq[bad]) +
                      "' at position " + std::to_string(bad + 1),
                  opt_.strict);
      continue;
    }
    std::string text;
    if (!opt_.descriptions.empty()) {
      const auto it = desc_.find(id);
      if (it == desc_.end()) {
        stats_.skip("no description",
                    where + ": " + id + ": no description in " + opt_.descriptions, opt_.strict);
        continue;
      }
      text = it->second;
    }
    rec.id = std::move(id);
    rec.seq = std::move(seq);
    rec.text = std::move(text);
    rec.line = header_line;
    ++stats_.records;
    return true;
  }
}

std::vector<ProteinRecord> read_fasta(const std::string& path, const FastaOptions& opt,
                                      ReadStats* stats) {
  return read_all_records<FastaReader>(path, opt, stats);
}

}  // namespace pe
