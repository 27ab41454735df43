#include "data/text_io.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sys/stat.h>

#include "core/error.h"

namespace pe {

namespace {
constexpr std::size_t kChunk = 1 << 20;
// A small file gets a read buffer of about its own size (zlib's buffers are sized from it too), not
// 1 MiB: opening many small files (tests, the fuzz harnesses) would otherwise allocate and clear
// megabytes each time. Only the number of reads differs; the lines are the same.
constexpr std::size_t kMinChunk = 1 << 16;

bool has_gzip_magic(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  unsigned char m[2] = {0, 0};
  const std::size_t n = std::fread(m, 1, 2, f);
  std::fclose(f);
  return n == 2 && m[0] == 0x1f && m[1] == 0x8b;
}

std::string gz_message(gzFile gz) {
  int code = 0;
  const char* msg = gzerror(gz, &code);
  if (code == Z_ERRNO) return std::strerror(errno);
  return msg ? msg : "unknown zlib error";
}
}  // namespace

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// ------------------------------------------------------------------------------------ LineReader

LineReader::LineReader(const std::string& path) : path_(path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) PE_FAIL(path, ": cannot open: ", std::strerror(errno));
  if (!S_ISREG(st.st_mode)) PE_FAIL(path, ": not a regular file");
  compressed_ = has_gzip_magic(path);
  chunk_ = std::min(kChunk, std::max(kMinChunk, static_cast<std::size_t>(st.st_size) + 1));
  // gzopen reads files without the gzip header as plain bytes, so one code path serves both.
  gzFile gz = gzopen(path.c_str(), "rb");
  if (!gz) PE_FAIL(path, ": cannot open: ", std::strerror(errno));
  gzbuffer(gz, static_cast<unsigned>(chunk_));
  gz_ = gz;
}

LineReader::~LineReader() {
  if (gz_) gzclose_r(static_cast<gzFile>(gz_));
}

std::string LineReader::where() const { return where(line_no_); }
std::string LineReader::where(std::size_t line) const { return path_ + ":" + std::to_string(line); }

bool LineReader::fill() {
  if (eof_) return false;
  buf_.erase(0, pos_);
  pos_ = 0;
  const std::size_t old = buf_.size();
  buf_.resize(old + chunk_);
  const int n = gzread(static_cast<gzFile>(gz_), &buf_[old], static_cast<unsigned>(chunk_));
  if (n < 0) {
    buf_.resize(old);
    PE_FAIL(where(line_no_ + 1), ": read error", compressed_ ? " (gzip)" : "", ": ",
            gz_message(static_cast<gzFile>(gz_)));
  }
  buf_.resize(old + static_cast<std::size_t>(n));
  if (n == 0) {
    // zlib reports a gzip stream cut short only through gzerror after the final read.
    int code = Z_OK;
    gzerror(static_cast<gzFile>(gz_), &code);
    if (code != Z_OK)
      PE_FAIL(where(line_no_ + 1), ": read error (gzip): ", gz_message(static_cast<gzFile>(gz_)));
    eof_ = true;
  }
  return n > 0;
}

bool LineReader::next(std::string& line) {
  for (;;) {
    const std::size_t nl = buf_.find('\n', pos_);
    if (nl != std::string::npos) {
      std::size_t end = nl;
      if (end > pos_ && buf_[end - 1] == '\r') --end;
      line.assign(buf_, pos_, end - pos_);
      pos_ = nl + 1;
      ++line_no_;
      return true;
    }
    if (!fill()) break;
  }
  if (pos_ >= buf_.size()) return false;
  // Last line without a final newline.
  std::size_t end = buf_.size();
  if (end > pos_ && buf_[end - 1] == '\r') --end;
  line.assign(buf_, pos_, end - pos_);
  pos_ = buf_.size();
  ++line_no_;
  return true;
}

// ------------------------------------------------------------------------------------ TextWriter

TextWriter::TextWriter(const std::string& path) : path_(path), tmp_(path + ".tmp") {
  const bool gz = path.size() >= 3 && path.compare(path.size() - 3, 3, ".gz") == 0;
  // Mode "T" writes plain bytes through the same gz interface.
  gzFile f = gzopen(tmp_.c_str(), gz ? "wb6" : "wbT");
  if (!f) PE_FAIL(tmp_, ": cannot create: ", std::strerror(errno));
  gzbuffer(f, kChunk);
  gz_ = f;
}

TextWriter::~TextWriter() {
  if (gz_) {
    gzclose_w(static_cast<gzFile>(gz_));
    std::remove(tmp_.c_str());
  }
}

void TextWriter::write(std::string_view s) {
  PE_CHECK(gz_, path_, ": write after close");
  if (s.empty()) return;
  const int n = gzwrite(static_cast<gzFile>(gz_), s.data(), static_cast<unsigned>(s.size()));
  if (n <= 0 || static_cast<std::size_t>(n) != s.size())
    PE_FAIL(tmp_, ": write failed: ", gz_message(static_cast<gzFile>(gz_)));
}

void TextWriter::close() {
  PE_CHECK(gz_, path_, ": closed twice");
  const int rc = gzclose_w(static_cast<gzFile>(gz_));
  gz_ = nullptr;
  if (rc != Z_OK) {
    std::remove(tmp_.c_str());
    PE_FAIL(tmp_, ": write failed on close (zlib code ", rc, ")");
  }
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp_.c_str());
    PE_FAIL(path_, ": cannot rename from ", tmp_, ": ", std::strerror(err));
  }
}

}  // namespace pe
