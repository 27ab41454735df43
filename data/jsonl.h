#pragma once
// JSON Lines protein–text pairs: one object per line, {"id": "...", "seq": "...", "text": "..."}
// (other keys are ignored; the key names are options so HF-style exports with e.g. "sequence"
// can be read as they are). Plain or .gz input.
//
// Lines left out (counted in ReadStats as "file:line: ...", or pe::Error in strict mode):
// malformed JSON (numbers out of range such as 1e309 included), a value that is not an object, a
// missing or non-string id/seq/text, an empty id, sequence (also one that is only '*') or text,
// and a residue that is not a letter (lower case is upper-cased and one trailing '*' dropped, see
// clean_sequence()). Blank lines are ignored. A file without any non-blank line is an error:
// pe::Error "path: empty file".
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "data/records.h"

namespace pe {

class LineReader;
class TextWriter;

struct JsonlOptions {
  std::string id_key = "id";
  std::string seq_key = "seq";
  std::string text_key = "text";
  bool strict = false;  // throw pe::Error at the first bad line instead of counting it
};

class JsonlReader {
 public:
  explicit JsonlReader(const std::string& path, JsonlOptions opt = {});
  ~JsonlReader();

  // Next valid pair; false at the end of the file.
  bool next(ProteinRecord& rec);
  const ReadStats& stats() const { return stats_; }

 private:
  std::unique_ptr<LineReader> in_;
  JsonlOptions opt_;
  ReadStats stats_;
  std::string line_;
  bool seen_any_ = false;
};

std::vector<ProteinRecord> read_jsonl(const std::string& path, const JsonlOptions& opt = {},
                                      ReadStats* stats = nullptr);

// Writes {"id","seq","text"} lines (compact JSON, UTF-8 kept as is) to `path` (gzip when it ends
// in ".gz"). The file appears under its name only after close() (see TextWriter). Text that is not
// valid UTF-8 is an error naming the record.
class JsonlWriter {
 public:
  explicit JsonlWriter(const std::string& path);
  ~JsonlWriter();

  void write(const ProteinRecord& rec);
  void close();
  std::size_t count() const { return count_; }

 private:
  std::unique_ptr<TextWriter> out_;
  std::size_t count_ = 0;
};

void write_jsonl(const std::string& path, const std::vector<ProteinRecord>& records);

}  // namespace pe
