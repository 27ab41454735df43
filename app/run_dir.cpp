#include "app/run_dir.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "app/model_io.h"
#include "core/error.h"

namespace pe {

namespace fs = std::filesystem;

RunLock::RunLock(const std::string& out) {
  std::string path = out + "/.lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  PE_CHECK(fd_ >= 0, "cannot open the lock file ", path, ": ", std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    char buf[32] = {0};
    ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
    std::string holder = n > 0 ? std::string(buf, size_t(n)) : "?";
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    ::close(fd_);
    fd_ = -1;
    PE_CHECK(err != EWOULDBLOCK, "--out ", out, " is in use by another protst train (pid ", holder, ", lock ", path,
             "); wait for it to finish or choose another --out");
    PE_FAIL("cannot lock ", path, ": ", std::strerror(err));
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, pid.data(), pid.size(), 0);
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock; the file stays (removing it would race)
}

std::vector<std::string> remove_stale_temp_files(const std::string& dir) {
  std::vector<std::string> removed;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    size_t at = name.rfind(".tmp.");
    if (at == std::string::npos || at + 5 >= name.size()) continue;
    std::string digits = name.substr(at + 5);
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) continue;
    pid_t pid = pid_t(std::stol(digits));
    if (pid <= 0 || pid == ::getpid()) continue;
    if (::kill(pid, 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to judge)
    std::error_code rm;
    if (fs::remove(e.path(), rm)) removed.push_back(e.path().string());
  }
  return removed;
}

bool run_folder_has_results(const std::string& out) {
  return !list_checkpoints(out + "/checkpoints").empty() || fs::exists(out + "/metrics.jsonl") ||
         fs::exists(out + "/eval.json") || fs::exists(out + "/final");
}

void clear_run_results(const std::string& out) {
  for (const std::string& p : list_checkpoints(out + "/checkpoints")) fs::remove(p);
  for (const char* f : {"/metrics.jsonl", "/eval.json", "/curves.png", "/vocab.txt"}) fs::remove(out + f);
  fs::remove_all(out + "/final");
}

}  // namespace pe
