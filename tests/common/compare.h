#pragma once
// Error of a result against a reference, relative to the reference's magnitude:
// max |got - ref| / max(max |ref|, floor) over the finite reference entries. A NaN or infinite
// reference entry must be matched exactly (NaN by NaN); a NaN where the reference is finite is an
// infinite error.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/tensor.h"

namespace pe::testing {

inline double rel_err(const Tensor& got, const Tensor& ref, double floor = 1e-30) {
  REQUIRE(got.defined());
  REQUIRE(ref.defined());
  REQUIRE(got.shape() == ref.shape());
  std::vector<double> g = got.to_double_vector(), r = ref.to_double_vector();
  double mag = floor, err = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    if (std::isnan(r[i])) {
      if (!std::isnan(g[i])) return INFINITY;
      continue;
    }
    if (std::isinf(r[i])) {
      if (g[i] != r[i]) return INFINITY;
      continue;
    }
    if (!std::isfinite(g[i])) return INFINITY;
    mag = std::max(mag, std::abs(r[i]));
    err = std::max(err, std::abs(g[i] - r[i]));
  }
  return err / mag;
}

}  // namespace pe::testing
