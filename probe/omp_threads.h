#pragma once
// The OpenMP thread count for a scope (n = 0: unchanged), restored at its end. The probes fit small
// matrices, where one thread is fastest and makes scores independent of OMP_NUM_THREADS.
#include <omp.h>

namespace pe {

struct OmpThreads {
  int prev = omp_get_max_threads();
  bool on;
  explicit OmpThreads(int n) : on(n > 0) {
    if (on) omp_set_num_threads(n);
  }
  ~OmpThreads() {
    if (on) omp_set_num_threads(prev);
  }
  OmpThreads(const OmpThreads&) = delete;
  OmpThreads& operator=(const OmpThreads&) = delete;
};

}  // namespace pe
