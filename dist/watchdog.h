#pragma once
// A rank that stops without failing (stuck in a loop, a deadlock, a machine that no longer answers)
// leaves every other rank waiting in a collective for ever: MPI and NCCL have no timeout of their own
// that ends the job. The watchdog is a thread that ends the whole job when the caller has not
// reported progress for `timeout` seconds: it prints
//   protst: rank R/N: no progress for S s in <what> (...)
// to stderr and calls abort_job (MPI_Abort: the launcher stops every rank, non-zero). Every rank runs
// one, so the stuck rank and the ranks waiting for it all notice; the first to do so ends the job.
// MPI was initialised with MPI_THREAD_FUNNELED (only the main thread calls MPI); MPI_Abort from this
// thread is outside that promise, so if the process still runs 10 s after it, the watchdog _exits
// with status 1, which the launcher also treats as a failed rank.
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace pe::dist {

class Watchdog {
 public:
  // timeout_s <= 0: off (no thread).
  Watchdog(int rank, int world, double timeout_s);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // The caller reached a new point; `what` names what it does next (the message quotes it).
  void progress(std::string what);
  // Stops the clock until the next progress(): for waits that may legitimately be long (rank 0's
  // evaluation while the others wait for it).
  void pause(std::string what);

 private:
  void run();

  int rank_, world_;
  double timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::string what_ = "start-up";
  double last_ = 0;  // seconds on the steady clock
  bool paused_ = false, stop_ = false;
  std::thread thread_;
};

}  // namespace pe::dist
