#pragma once
// Records shared by every protein–text reader, and the bookkeeping of what a reader skipped.
//
// Readers never drop input silently: every record they leave out is counted in ReadStats with a
// reason category and a "file:line: message" example, and in strict mode the same message is
// thrown as pe::Error instead.
#include <algorithm>
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"

namespace pe {

// One protein–text pair. `id` is the protein's accession (UniProt AC, FASTA accession, or the
// JSONL "id"); `seq` holds upper-case one-letter residues; `text` is the description fed to the
// text encoder. `line` is the 1-based line of the source file where the record starts (0 when the
// record was not read from a text file), so later stages can point back at the input.
struct ProteinRecord {
  std::string id;
  std::string seq;
  std::string text;
  std::size_t line = 0;
};

// What a reader read and what it left out.
struct ReadStats {
  // At most this many "file:line: message" examples are kept; the counts are always complete.
  static constexpr std::size_t kMaxExamples = 50;

  std::size_t records = 0;                         // records returned
  std::size_t skipped = 0;                         // records left out (sum of by_reason)
  std::map<std::string, std::size_t> by_reason;    // reason category -> count
  std::vector<std::string> examples;               // first kMaxExamples "file:line: message"

  // Counts one skipped record. `reason` is a short category ("bad residue", "no SQ line");
  // `message` is the full "file:line: ..." text. In strict mode it throws pe::Error(message).
  void skip(const std::string& reason, const std::string& message, bool strict) {
    if (strict) throw Error(message);
    ++skipped;
    ++by_reason[reason];
    if (examples.size() < kMaxExamples) examples.push_back(message);
  }

  // Adds another reader's counts (e.g. when several files feed one dataset).
  void merge(const ReadStats& o) {
    records += o.records;
    skipped += o.skipped;
    for (const auto& [k, v] : o.by_reason) by_reason[k] += v;
    for (const auto& e : o.examples)
      if (examples.size() < kMaxExamples) examples.push_back(e);
  }

  // One line per reason, e.g. "3 skipped: 2 bad residue, 1 no SQ line".
  std::string summary() const {
    std::string s = std::to_string(records) + " records, " + std::to_string(skipped) + " skipped";
    const char* sep = ": ";
    for (const auto& [k, v] : by_reason) {
      s += sep + std::to_string(v) + " " + k;
      sep = ", ";
    }
    return s;
  }
};

// Reads every record of a streaming reader (UniProtReader, FastaReader, JsonlReader) into memory;
// stats (if given) receives the reader's counts.
template <typename Reader, typename Options>
std::vector<ProteinRecord> read_all_records(const std::string& path, const Options& opt, ReadStats* stats) {
  Reader r(path, opt);
  std::vector<ProteinRecord> out;
  ProteinRecord rec;
  while (r.next(rec)) out.push_back(std::move(rec));
  if (stats) *stats = r.stats();
  return out;
}

// Residue check shared by the readers: returns the index of the first character that is not an
// upper-case letter A–Z, or std::string::npos when the sequence is clean. All 26 letters are
// accepted (the 20 standard residues plus B, J, O, U, X, Z used by UniProt and NCBI).
inline std::size_t first_bad_residue(const std::string& seq) {
  for (std::size_t i = 0; i < seq.size(); ++i)
    if (seq[i] < 'A' || seq[i] > 'Z') return i;
  return std::string::npos;
}

// Normalises a sequence from a user file (FASTA, JSONL): lower-case letters become upper case and
// one trailing '*' (stop codon) is dropped. Returns first_bad_residue() of the result.
inline std::size_t clean_sequence(std::string& seq) {
  if (!seq.empty() && seq.back() == '*') seq.pop_back();
  for (char& c : seq)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return first_bad_residue(seq);
}

// The GO part of a description, in the template used for every GO-derived text:
//   "Molecular function: a; b. Biological process: c. Cellular component: d."
// Names are sorted (byte order) and de-duplicated within each aspect so the text is deterministic;
// an aspect without terms is left out; all three empty gives "".
inline std::string go_text(std::vector<std::string> mf, std::vector<std::string> bp,
                           std::vector<std::string> cc) {
  std::string out;
  auto part = [&out](const char* label, std::vector<std::string>& names) {
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    if (names.empty()) return;
    if (!out.empty()) out += ' ';
    out += label;
    out += ": ";
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (i) out += "; ";
      out += names[i];
    }
    out += '.';
  };
  part("Molecular function", mf);
  part("Biological process", bp);
  part("Cellular component", cc);
  return out;
}

// The GO term names of a text written by go_text() (or one ending in such a part, as UniProt texts
// do): the names after "Molecular function: ", "Biological process: " and "Cellular component: ",
// split at "; ", each part ending at ". " + the next label or at the final '.'. Order as in the
// text (aspect by aspect); a text without any label gives none. Used as the true terms of a
// description (term_recall in decoders/text_metrics.h).
inline std::vector<std::string> go_term_names(const std::string& text) {
  static const char* const kLabels[] = {"Molecular function: ", "Biological process: ", "Cellular component: "};
  std::vector<std::string> names;
  for (const char* label : kLabels) {
    const std::string l = label;
    std::size_t at = std::string::npos;
    // The label at the start, or after ". " (a label inside a term name does not count).
    if (text.compare(0, l.size(), l) == 0) at = 0;
    else {
      const std::size_t p = text.find(". " + l);
      if (p != std::string::npos) at = p + 2;
    }
    if (at == std::string::npos) continue;
    std::size_t b = at + l.size(), e = text.size();
    for (const char* other : kLabels) {
      const std::size_t q = text.find(std::string(". ") + other, b);
      if (q != std::string::npos && q < e) e = q + 1;  // keep the '.' that ends this part
    }
    std::string part = text.substr(b, e - b);
    if (!part.empty() && part.back() == '.') part.pop_back();
    for (std::size_t s = 0;;) {
      const std::size_t n = part.find("; ", s);
      std::string name = part.substr(s, n == std::string::npos ? std::string::npos : n - s);
      if (!name.empty()) names.push_back(std::move(name));
      if (n == std::string::npos) break;
      s = n + 2;
    }
  }
  return names;
}

}  // namespace pe
