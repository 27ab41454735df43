#pragma once
// Shared by the microbenchmarks: CUDA-event timing after warm-up (median and p10-p90 of many
// samples), input sets rotated so that no sample reads what the previous one left in L2, and one
// results-table row per measurement (the format of bench/RESULTS.md).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/backend.h"

namespace bench {

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "bench: %s: %s\n", what, cudaGetErrorString(e));
    std::exit(2);
  }
}

struct Card {
  std::string name;
  double bf16_tflops;  // dense bf16 matrix rate measured on these machines (BENCH.md, KINDS.md)
  double hbm_gbs;      // device-to-device copy, bytes read + written (measured)
  int l2_bytes;
};
inline Card card() {
  cudaDeviceProp p{};
  check(cudaGetDeviceProperties(&p, 0), "cudaGetDeviceProperties");
  Card c{p.name, 798.0, 3000.0, p.l2CacheSize};
  if (c.name.find("H200") != std::string::npos) c.hbm_gbs = 4300.0;  // KINDS.md: ~4.3 TB/s measured
  return c;
}

struct Timing {
  double median_us = 0, p10_us = 0, p90_us = 0;
  int samples = 0;
};

// Times run(i) (i = launch counter, for rotating inputs). Each sample is `inner` back-to-back
// launches between two events, with inner chosen so a sample lasts >= 0.2 ms.
inline Timing time_it(const std::function<void(int)>& run, int samples = 50, int warmup = 5) {
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "event");
  check(cudaEventCreate(&b), "event");
  int counter = 0;
  for (int i = 0; i < warmup; ++i) run(counter++);
  check(cudaDeviceSynchronize(), "warm-up");
  check(cudaEventRecord(a), "event");
  run(counter++);
  check(cudaEventRecord(b), "event");
  check(cudaEventSynchronize(b), "event");
  float one_ms = 0;
  check(cudaEventElapsedTime(&one_ms, a, b), "event");
  int inner = std::max(1, std::min(1000, int(0.2 / std::max(one_ms, 1e-4f))));
  std::vector<double> us;
  for (int s = 0; s < samples; ++s) {
    check(cudaEventRecord(a), "event");
    for (int k = 0; k < inner; ++k) run(counter++);
    check(cudaEventRecord(b), "event");
    check(cudaEventSynchronize(b), "event");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, a, b), "event");
    us.push_back(1000.0 * ms / inner);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(us.begin(), us.end());
  auto q = [&](double f) { return us[size_t(f * double(us.size() - 1) + 0.5)]; };
  return {q(0.5), q(0.1), q(0.9), samples};
}

// How many copies of a working set of `bytes` make the rotation larger than twice the L2.
inline int rotation_copies(size_t bytes, const Card& c) {
  size_t want = size_t(2) * size_t(c.l2_bytes) + 1;
  size_t n = (want + bytes - 1) / std::max<size_t>(bytes, 1);
  return int(std::max<size_t>(1, std::min<size_t>(n, 16)));
}

inline void header() {
  std::printf("| bench | op | shape | dtype | impl | median us | p10-p90 us | achieved | of limit |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
}
// `amount` is FLOPs (is_flops) or bytes moved; the limit is the card's bf16 rate or bandwidth,
// or `limit_override` (in the same unit per second) when nonzero.
inline void row(const std::string& bench, const std::string& op, const std::string& shape, const std::string& dtype,
                const std::string& impl, const Timing& t, double amount, bool is_flops, const Card& c,
                double limit_override = 0) {
  double per_s = amount / (t.median_us * 1e-6);
  double limit = limit_override > 0 ? limit_override : (is_flops ? c.bf16_tflops * 1e12 : c.hbm_gbs * 1e9);
  char achieved[64], pct[32];
  if (is_flops) std::snprintf(achieved, sizeof achieved, "%.1f TFLOP/s", per_s / 1e12);
  else std::snprintf(achieved, sizeof achieved, "%.0f GB/s", per_s / 1e9);
  std::snprintf(pct, sizeof pct, "%.0f%%", 100.0 * per_s / limit);
  std::printf("| %s | %s | %s | %s | %s | %.1f | %.1f-%.1f | %s | %s |\n", bench.c_str(), op.c_str(), shape.c_str(),
              dtype.c_str(), impl.c_str(), t.median_us, t.p10_us, t.p90_us, achieved, pct);
  std::fflush(stdout);
}

// Random (never zero) device tensor: uniform magnitudes in [0.5, 1.5) with random signs, drawn on
// the GPU by the engine's Philox kernel and then cast.
inline pe::Tensor random_tensor(const pe::Shape& shape, pe::DType dt, uint64_t seed) {
  pe::Device dev = pe::Device::cuda(0);
  pe::Backend& be = *pe::cuda_backend();
  pe::Tensor mag = pe::Tensor::empty(shape, pe::DType::F32, dev), sign = pe::Tensor::empty(shape, pe::DType::F32, dev);
  be.random(mag, pe::RandomKind::Uniform, 0.5, 1.5, seed, 0);
  be.random(sign, pe::RandomKind::Bernoulli, 0.5, 0, seed + 1, 0);
  be.unary(pe::UnaryOp::MulScalar, sign, sign, 2.0);
  be.unary(pe::UnaryOp::AddScalar, sign, sign, -1.0);
  pe::Tensor out = pe::Tensor::empty(shape, pe::DType::F32, dev);
  be.binary(pe::BinaryOp::Mul, mag, sign, out);
  if (dt == pe::DType::F32) return out;
  pe::Tensor cast = pe::Tensor::empty(shape, dt, dev);
  be.copy_strided(out, cast);
  return cast;
}

inline std::string shape_of(const pe::Shape& s) {
  std::string r;
  for (size_t i = 0; i < s.size(); ++i) r += (i ? "x" : "") + std::to_string(s[i]);
  return r;
}

inline bool require_gpu() {
  if (pe::cuda_available()) return true;
  std::printf("[cuda-skipped] no CUDA device: benchmark not run\n");
  return false;
}

}  // namespace bench
