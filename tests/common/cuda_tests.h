#pragma once
// Shared by the CUDA test suites (TEST_SUITE("cuda")): skipping without a device, and the SIMT
// emulator's size limit.
#include <cstdio>

#include "core/device.h"

// A case that needs a GPU and finds none says so in the form CTest counts as skipped (tests/CMakeLists.txt).
inline bool skip_without_cuda() {
  if (pe::cuda_available()) return false;
  std::printf("[cuda-skipped] no CUDA device\n");
  return true;
}

// kSimt is true when a CUDA test runs on the CPU SIMT emulator (tests/simt) rather than on a GPU.
// The emulator runs every thread of every block one after another, so the few largest problems of
// a test (e.g. 1024 x 1024 attention) are left to runs on a real GPU; everything else runs.
#ifdef PE_SIMT
constexpr bool kSimt = true;
#else
constexpr bool kSimt = false;
#endif
// Whether a case of `work` (e.g. Lq * Lk) is run here: always on a GPU, up to `limit` under the emulator.
inline bool run_case(long long work, long long limit = 150000) { return !kSimt || work <= limit; }
