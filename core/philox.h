#pragma once
// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11).
// Counter-based: the value for element i depends only on (seed, counter), never on which thread
// computes it, so CPU and CUDA kernels draw identical streams and results do not depend on the
// number of threads.
#include <cmath>
#include <cstdint>

#include "core/dtype.h"  // PE_HD

namespace pe {

struct Philox4 {
  uint32_t v[4];
};

PE_HD inline uint32_t philox_mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  uint64_t p = uint64_t(a) * uint64_t(b);
  *hi = uint32_t(p >> 32);
  return uint32_t(p);
}

PE_HD inline Philox4 philox4x32(uint64_t counter, uint64_t seed) {
  uint32_t c0 = uint32_t(counter), c1 = uint32_t(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, hi1;
    uint32_t lo0 = philox_mulhilo(0xD2511F53u, c0, &hi0);
    uint32_t lo1 = philox_mulhilo(0xCD9E8D57u, c2, &hi1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

// Uniform in (0, 1]: never exactly 0, so log() is safe.
PE_HD inline double philox_uniform(uint32_t a, uint32_t b) {
  uint64_t x = (uint64_t(a) << 21) ^ uint64_t(b >> 11);  // 53 random bits
  x &= (uint64_t(1) << 53) - 1;
  return (double(x) + 1.0) * (1.0 / 9007199254740992.0);
}

enum class RandomKind : uint8_t { Uniform, Normal, Bernoulli };

// Sample number `i` of a stream: the draw at counter (offset + i).
// Uniform: a + (b - a) * u;  Normal: mean a, std b (Box-Muller);  Bernoulli: 1 with probability a.
PE_HD inline double philox_sample(RandomKind kind, uint64_t seed, uint64_t counter, double a, double b) {
  Philox4 r = philox4x32(counter, seed);
  double u1 = philox_uniform(r.v[0], r.v[1]);
  switch (kind) {
    case RandomKind::Uniform: return a + (b - a) * (1.0 - u1);  // [a, b)
    case RandomKind::Normal: {
      double u2 = philox_uniform(r.v[2], r.v[3]);
      return a + b * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
    }
    case RandomKind::Bernoulli: return (u1 <= a) ? 1.0 : 0.0;
  }
  return 0.0;
}

}  // namespace pe
