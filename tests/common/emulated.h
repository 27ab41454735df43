#pragma once
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
