#pragma once
// Line-oriented text input and output with transparent gzip.
//
// LineReader reads plain or gzip-compressed text (recognised by the gzip magic bytes, not by the
// file name) and counts lines, so every reader can report "file:line". TextWriter writes plain
// text, or gzip when the path ends in ".gz", to "<path>.tmp" and renames it onto <path> only in
// close(): a crash or an exception never leaves a half-written file under the final name.
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace pe {

class LineReader {
 public:
  // Throws pe::Error naming the path if the file cannot be opened.
  explicit LineReader(const std::string& path);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // Reads the next line without its "\n" (and without a "\r" before it). Returns false at the end
  // of the input. Throws pe::Error "path:line: ..." on a read or decompression error (corrupt or
  // truncated gzip).
  bool next(std::string& line);

  // 1-based number of the line last returned by next() (0 before the first).
  std::size_t line_no() const { return line_no_; }
  const std::string& path() const { return path_; }
  // "path:line" of the line last returned.
  std::string where() const;
  // "path:<line>" for any line of this file.
  std::string where(std::size_t line) const;
  // True when the input is gzip-compressed.
  bool compressed() const { return compressed_; }

 private:
  bool fill();  // refills buf_; false at end of input

  std::string path_;
  void* gz_ = nullptr;  // gzFile, kept opaque so zlib.h stays out of the header
  std::string buf_;
  std::size_t chunk_ = 0;  // bytes asked of zlib per read
  std::size_t pos_ = 0;
  std::size_t line_no_ = 0;
  bool eof_ = false;
  bool compressed_ = false;
};

class TextWriter {
 public:
  // Opens "<path>.tmp" for writing; gzip-compressed when `path` ends in ".gz".
  explicit TextWriter(const std::string& path);
  // Without close(), the temporary file is removed and `path` is left untouched.
  ~TextWriter();
  TextWriter(const TextWriter&) = delete;
  TextWriter& operator=(const TextWriter&) = delete;

  void write(std::string_view s);
  void write_line(std::string_view s) {
    write(s);
    write("\n");
  }
  // Flushes, closes and renames the temporary file onto `path`. Throws pe::Error on failure.
  void close();
  const std::string& path() const { return path_; }

 private:
  std::string path_, tmp_;
  void* gz_ = nullptr;
};

// True when `path` names an existing regular file.
bool file_exists(const std::string& path);

}  // namespace pe
