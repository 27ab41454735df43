#pragma once
// Shared by the libFuzzer harnesses (one per reader, see CMakeLists.txt here and scripts/fuzz.sh).
//
// Contract: a reader signals bad input by throwing pe::Error (core/error.h). A harness catches
// exactly that; anything else is a finding: a crash, an ASan or UBSan report, any other exception
// escaping (std::out_of_range, nlohmann::json::exception, std::bad_alloc, ...), a hang or
// an allocation past libFuzzer's -rss_limit_mb / -malloc_limit_mb.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/error.h"

namespace pe::fuzz {

// The readers under test take a path (they stream through zlib or mmap the file), so each input is
// handed to them as an in-memory file: a memfd, opened again through /proc/self/fd/N. Nothing touches
// the disk and parallel fuzzing jobs cannot collide.
class MemFile {
 public:
  MemFile(const uint8_t* data, size_t size, const char* name = "fuzz-input") {
    fd_ = ::memfd_create(name, MFD_CLOEXEC);
    if (fd_ < 0) die("memfd_create failed");
    size_t done = 0;
    while (done < size) {
      const ssize_t n = ::write(fd_, data + done, size - done);
      if (n <= 0) die("write to memfd failed");
      done += static_cast<size_t>(n);
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemFile() { ::close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  [[noreturn]] static void die(const char* what) {
    std::perror(what);
    std::abort();  // an environment problem, not a finding in the reader; abort loudly anyway
  }
  int fd_ = -1;
  std::string path_;
};

// A broken invariant that the reader promised (a harness-level assertion): abort so libFuzzer
// records the input.
#define PE_FUZZ_ASSERT(cond)                                                      \
  do {                                                                            \
    if (!(cond)) {                                                                \
      std::fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                               \
    }                                                                             \
  } while (0)

}  // namespace pe::fuzz
