#pragma once
// FASTA proteins (.fa, .fasta, plain or .gz) paired with descriptions kept in a separate file.
//
// The accession of a record comes from its header: ">sp|P12345|NAME_HUMAN ..." or
// ">tr|A0A0...|..." gives the second '|' field (P12345); any other header gives its first word.
//
// Descriptions (FastaOptions::descriptions) are either
//   TSV:   "accession<TAB>text" per line (an optional first line whose first column is "id" or
//          "accession" is a header and is ignored), or
//   JSONL: {"id": "...", "text": "..."} per line,
// told apart by the first non-blank line: JSONL when it starts with '{'. Plain or .gz.
//
// Left out (counted in ReadStats as "file:line: ...", or pe::Error in strict mode):
//   FASTA: text before the first header, an empty sequence (also one that is only '*'), a residue
//          that is not a letter (lower case is upper-cased and one trailing '*' dropped, see
//          clean_sequence()), and — when a description file is given — a record whose accession
//          has no description.
//   Descriptions: a line without a tab or with an empty accession/text, malformed JSON, missing
//          "id"/"text", and a second description for the same accession (the first is kept).
// Without a description file every record is returned with an empty text.
// An empty FASTA file is an error: pe::Error "path: empty file".
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "data/records.h"

namespace pe {

class LineReader;

struct FastaOptions {
  std::string descriptions;  // TSV or JSONL of accession -> text; "" for none
  bool strict = false;       // throw pe::Error at the first bad record instead of counting it
};

// Accession from a FASTA header line (with or without the leading '>').
std::string fasta_accession(std::string_view header);

// Loads a TSV or JSONL description file into accession -> text. Problems are counted in `stats`
// (reason categories start with "description: ").
std::unordered_map<std::string, std::string> read_descriptions(const std::string& path,
                                                               ReadStats& stats, bool strict);

class FastaReader {
 public:
  explicit FastaReader(const std::string& path, FastaOptions opt = {});
  ~FastaReader();

  // Next valid record; false at the end of the file.
  bool next(ProteinRecord& rec);
  // Counts for the FASTA records and the description file together.
  const ReadStats& stats() const { return stats_; }

 private:
  std::unique_ptr<LineReader> in_;
  FastaOptions opt_;
  ReadStats stats_;
  std::unordered_map<std::string, std::string> desc_;
  std::string line_;
  bool have_header_line_ = false;  // line_ holds the header of the next record
  bool seen_any_ = false;
};

std::vector<ProteinRecord> read_fasta(const std::string& path, const FastaOptions& opt = {},
                                      ReadStats* stats = nullptr);

}  // namespace pe
