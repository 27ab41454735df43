#include "core/rng.h"

#include <numeric>

#include "core/error.h"

namespace pe {

int64_t Generator::randint(int64_t lo, int64_t hi) {
  PE_CHECK(hi > lo, "randint: empty range [", lo, ", ", hi, ")");
  Philox4 r = philox4x32(advance(1), seed_);
  uint64_t x = (uint64_t(r.v[0]) << 32) | r.v[1];
  return lo + int64_t(x % uint64_t(hi - lo));  // bias < 2^-40 for ranges below 2^24
}

std::vector<int64_t> Generator::permutation(int64_t n) {
  std::vector<int64_t> p(size_t(std::max<int64_t>(n, 0)));
  std::iota(p.begin(), p.end(), 0);
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[size_t(i)], p[size_t(randint(0, i + 1))]);
  return p;
}

}  // namespace pe
