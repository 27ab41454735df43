#pragma once
// The run folder of `protst train` (--out): one writer at a time, leftovers of killed writers
// removed, earlier results cleared only on request.
#include <string>
#include <vector>

namespace pe {

// An exclusive flock on <out>/.lock for the lifetime of the object; throws pe::Error naming the
// folder and the holder's pid when another process (or another RunLock) holds it.
class RunLock {
 public:
  explicit RunLock(const std::string& out);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

// Removes the files <dir>/<name>.tmp.<pid> (atomic writes in progress) whose writer process no
// longer exists; returns their paths. Files of live processes are left alone.
std::vector<std::string> remove_stale_temp_files(const std::string& dir);

// True when <out> holds results of an earlier run: checkpoints, metrics.jsonl, eval.json or final/.
bool run_folder_has_results(const std::string& out);
// Deletes those results (nothing else in <out>).
void clear_run_results(const std::string& out);

}  // namespace pe
