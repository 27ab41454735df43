#include "dist/watchdog.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "dist/communicator.h"

namespace pe::dist {

namespace {
double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
}  // namespace

Watchdog::Watchdog(int rank, int world, double timeout_s) : rank_(rank), world_(world), timeout_(timeout_s) {
  last_ = now_s();
  if (timeout_ > 0) thread_ = std::thread([this] { run(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Watchdog::progress(std::string what) {
  std::lock_guard<std::mutex> lock(mu_);
  what_ = std::move(what);
  last_ = now_s();
  paused_ = false;
}

void Watchdog::pause(std::string what) {
  std::lock_guard<std::mutex> lock(mu_);
  what_ = std::move(what);
  paused_ = true;
}

void Watchdog::run() {
  // Checks a few times per timeout (at least once a second), so the job ends within ~1.25 timeouts.
  const auto tick = std::chrono::duration<double>(std::min(1.0, timeout_ / 4));
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, tick);
    if (stop_ || paused_) continue;
    const double idle = now_s() - last_;
    if (idle < timeout_) continue;
    std::fprintf(stderr,
                 "protst: rank %d/%d: no progress for %.0f s in %s (--collective-timeout %g): a rank hangs without "
                 "failing or a peer stopped answering; ending the job\n",
                 rank_, world_, idle, what_.c_str(), timeout_);
    std::fflush(stderr);
    lock.unlock();
    abort_job(1);
    std::this_thread::sleep_for(std::chrono::seconds(10));
    std::fprintf(stderr, "protst: rank %d/%d: MPI_Abort did not end the process; exiting\n", rank_, world_);
    std::fflush(stderr);
    std::_Exit(1);
  }
}

}  // namespace pe::dist
