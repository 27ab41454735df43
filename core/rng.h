#pragma once
// Seeded generator over the Philox stream. Each draw of n values consumes counters
// [offset, offset + n), so streams are reproducible, thread-count independent and identical on
// CPU and CUDA. State is (seed, offset): saving both resumes the stream exactly.
#include <cstdint>
#include <vector>

#include "core/philox.h"

namespace pe {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) { seed_ = seed; offset_ = offset; }
  // Reserves n counters and returns the first.
  uint64_t advance(uint64_t n) { uint64_t o = offset_; offset_ += n; return o; }

  // Host-side scalar draws (each consumes one counter).
  double uniform(double a = 0.0, double b = 1.0) {
    return philox_sample(RandomKind::Uniform, seed_, advance(1), a, b);
  }
  double normal(double mean = 0.0, double std = 1.0) {
    return philox_sample(RandomKind::Normal, seed_, advance(1), mean, std);
  }
  bool bernoulli(double p) { return philox_sample(RandomKind::Bernoulli, seed_, advance(1), p, 0) != 0.0; }
  // Uniform integer in [lo, hi).
  int64_t randint(int64_t lo, int64_t hi);
  // A uniformly random permutation of 0..n-1 (Fisher-Yates).
  std::vector<int64_t> permutation(int64_t n);

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
};

}  // namespace pe
