// The CPU backend's float32 fast paths (vectorised exp / erf in GELU and exp) against the float64
// reference, across the whole range where the functions change (and the saturated tails).
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/ops.h"
#include "tests/common/compare.h"

using namespace pe;
using pe::testing::rel_err;

TEST_SUITE("unit") {
  TEST_CASE("float32 GELU, its gradient and exp match float64 to float32 accuracy") {
    std::vector<double> xs;
    for (int i = 0; i < 40011; ++i) xs.push_back(-12.0 + 24.0 * double(i) / 40010.0);  // odd count: a partial chunk
    Tensor x64 = Tensor::from_vector(xs, {int64_t(xs.size())}).requires_grad_(true);
    Tensor x32 = x64.detach().to(DType::F32).requires_grad_(true);
    Tensor w = Tensor::from_vector(std::vector<double>(xs.size(), 1.0), {int64_t(xs.size())});
    for (int v = 0; v < 3; ++v) {
      // Gradients of sum(w * gelu(x)) with w varying in sign and size.
      std::vector<double> wv(xs.size());
      for (size_t i = 0; i < wv.size(); ++i) wv[i] = (i % 3 == 0 ? -1.0 : 0.5) * (1 + v);
      w = Tensor::from_vector(wv, {int64_t(wv.size())});
      Tensor y64 = gelu(x64), y32 = gelu(x32);
      CHECK(rel_err(y32, y64) <= 2e-6);
      sum(mul(y64, w)).backward();
      sum(mul(y32, w.to(DType::F32))).backward();
      CHECK(rel_err(x32.grad(), x64.grad()) <= 2e-6);
      x64.zero_grad();
      x32.zero_grad();
    }
    // exp on a range without overflow, judged elementwise relative to each value.
    std::vector<double> e(xs.size());
    Tensor ex = exp(x32.detach());
    std::vector<double> got = ex.to_double_vector();
    double worst = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      double ref = std::exp(double(float(xs[i])));
      worst = std::max(worst, std::abs(got[i] - ref) / ref);
    }
    CHECK(worst <= 1e-6);
  }
}
