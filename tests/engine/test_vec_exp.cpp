// kernels/cpu/vec_exp.h (the f32 attention softmax's row maximum and exp-and-sum) against float64
// std::exp: every row length through the vector body and the padded tail, the whole argument range
// it is used on (x <= 88), the flush to exactly 0 below -86 and for -inf, NaN propagation.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "kernels/cpu/vec_exp.h"

using pe::cpu::exp_shift_sum_f32;
using pe::cpu::row_max_f32;

namespace {
// Relative error of a float result against the exact exp of the float argument's difference.
double rel(float got, double ref) { return std::abs(double(got) - ref) / ref; }
}  // namespace

TEST_SUITE("unit") {
  TEST_CASE("exp_shift_sum_f32 matches float64 exp to about 1 ulp over the range it is used on") {
    // Dense sweeps of s - mx: [-86, 0.5] (the forward's s - max is <= 0, the backward's s - lse may be a
    // rounding above 0) and up to 88 where float exp still has room (sums there overflow: values only),
    // in rows of odd lengths so the tail path runs too.
    for (auto [lo, hi, check_sum] : {std::tuple{-86.0, 0.5, true}, std::tuple{0.0, 88.0, false}}) {
      INFO("sweep over [", lo, ", ", hi, "]");
      const int64_t n = 1000003;
      std::vector<float> s(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) s[size_t(i)] = float(lo + (hi - lo) * double(i) / double(n - 1));
      std::vector<float> x = s;
      double sum = exp_shift_sum_f32(s.data(), n, 0.0f), ref_sum = 0, worst = 0;
      for (int64_t i = 0; i < n; ++i) {
        double ref = std::exp(double(x[size_t(i)]));
        ref_sum += ref;
        worst = std::max(worst, rel(s[size_t(i)], ref));
      }
      INFO("worst relative error ", worst);
      CHECK(worst <= 2.5e-7);  // float32 ulp 1.2e-7 (relative 6e-8 .. 1.2e-7)
      if (check_sum) CHECK(std::abs(sum - ref_sum) / ref_sum <= 1e-5);
    }
    // Same with a non-zero shift: s - mx formed in float, as the attention does.
    std::vector<float> row = {3.5f, -1.25f, 0.0f, 2.0f, -40.0f, 3.5f, 1e-3f, -7.0f, 0.5f};
    const float mx = row_max_f32(row.data(), int64_t(row.size()));
    CHECK(mx == 3.5f);
    std::vector<float> orig = row;
    double rsum = exp_shift_sum_f32(row.data(), int64_t(row.size()), mx), want = 0;
    for (size_t i = 0; i < row.size(); ++i) {
      double ref = std::exp(double(orig[i] - mx));
      want += ref;
      CHECK(rel(row[i], ref) <= 2.5e-7);
    }
    CHECK(std::abs(rsum - want) / want <= 1e-6);
  }

  TEST_CASE("exp_shift_sum_f32 and row_max_f32 for every row length: tails, -inf, underflow, NaN") {
    const float inf = std::numeric_limits<float>::infinity();
    for (int64_t n = 0; n <= 41; ++n) {
      INFO("row length ", n);
      std::vector<float> s(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) s[size_t(i)] = float(std::sin(0.7 * double(i) + 0.3 * double(n)) * 9.0);
      if (n > 3) s[size_t(n / 3)] = -inf;          // a masked key
      if (n > 5) s[size_t(n - 2)] = -200.0f;       // far below the maximum: underflows to exactly 0
      float ref_max = -inf;
      for (float v : s) ref_max = std::max(ref_max, v);
      const float mx = row_max_f32(s.data(), n);
      CHECK(mx == ref_max);
      if (n == 0) {
        CHECK(exp_shift_sum_f32(s.data(), 0, 0.0f) == 0.0f);
        continue;
      }
      std::vector<float> x = s;
      double got_sum = exp_shift_sum_f32(s.data(), n, mx), ref_sum = 0;
      for (int64_t i = 0; i < n; ++i) {
        double ref = x[size_t(i)] - mx < -86.0f ? 0.0 : std::exp(double(x[size_t(i)] - mx));
        ref_sum += ref;
        if (ref == 0.0) CHECK(s[size_t(i)] == 0.0f);
        else CHECK(rel(s[size_t(i)], ref) <= 2.5e-7);
      }
      CHECK(std::abs(got_sum - ref_sum) / ref_sum <= 1e-6);
    }
    // A NaN anywhere in the row (body or tail) propagates to its own value and to the sum, as
    // std::exp does; the maximum skips it.
    for (int64_t at : {0, 7, 8, 12}) {
      INFO("NaN at ", at);
      std::vector<float> s(13, 1.0f);
      s[2] = 2.0f;
      s[size_t(at)] = std::numeric_limits<float>::quiet_NaN();
      const float mx = row_max_f32(s.data(), 13);
      CHECK(mx == 2.0f);
      float sum = exp_shift_sum_f32(s.data(), 13, mx);
      CHECK(std::isnan(s[size_t(at)]));
      CHECK(std::isnan(sum));
      CHECK(s[2] == doctest::Approx(1.0f));
    }
    // A row of only -inf: the caller's case (maximum -inf: no real key); here just the maximum.
    std::vector<float> masked(11, -inf);
    CHECK(row_max_f32(masked.data(), 11) == -inf);
  }

  TEST_CASE("exp_f32 matches float64 exp over its range for every length: tails, -inf, NaN, in place") {
    const float inf = std::numeric_limits<float>::infinity();
    for (int64_t n = 0; n <= 19; ++n) {
      INFO("length ", n);
      std::vector<float> x(static_cast<size_t>(n)), y(static_cast<size_t>(n) + 1, -1.0f);
      for (int64_t i = 0; i < n; ++i) x[size_t(i)] = float(-90.0 + 178.0 * double(i) / double(std::max<int64_t>(n - 1, 1)));
      if (n > 4) x[3] = -inf;
      if (n > 6) x[5] = std::numeric_limits<float>::quiet_NaN();
      pe::cpu::exp_f32(x.data(), y.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        INFO("x ", x[size_t(i)]);
        if (std::isnan(x[size_t(i)])) CHECK(std::isnan(y[size_t(i)]));
        else if (x[size_t(i)] < -86.0f) CHECK(y[size_t(i)] == 0.0f);
        else CHECK(rel(y[size_t(i)], std::exp(double(x[size_t(i)]))) <= 2.5e-7);
      }
      CHECK(y[size_t(n)] == -1.0f);  // nothing written past n
      std::vector<float> z = x;
      pe::cpu::exp_f32(z.data(), z.data(), n);  // in place: the same values
      for (int64_t i = 0; i < n; ++i)
        if (!std::isnan(y[size_t(i)])) CHECK(z[size_t(i)] == y[size_t(i)]);
    }
  }
}

// softmax / log_softmax in float32 (the vectorised exp above) against the float64 op, forward and
// backward, at odd widths, with masked (-inf) entries and a fully masked row.
#include "autograd/ops.h"

TEST_SUITE("unit") {
  TEST_CASE("f32 softmax and log_softmax forward and backward follow the float64 op") {
    using namespace pe;
    Generator gen(23);
    for (int64_t n : {1, 7, 8, 9, 33, 4000}) {
      for (bool log : {false, true}) {
        INFO("width ", n, " log ", log);
        const int64_t rows = 5;
        Tensor x64 = mul(randn({rows, n}, gen, DType::F64), 4.0);
        std::vector<double> xv = x64.to_double_vector();
        if (n > 3) xv[size_t(1 * n + 2)] = -std::numeric_limits<double>::infinity();  // a masked entry
        if (!log) for (int64_t j = 0; j < n; ++j) xv[size_t(3 * n + j)] = -std::numeric_limits<double>::infinity();
        x64 = Tensor::from_vector(xv, {rows, n}).requires_grad_(true);
        Tensor x32 = x64.detach().to(DType::F32).requires_grad_(true);
        Tensor w = rand({rows, n}, gen, DType::F64);
        Tensor y64 = log ? log_softmax(x64, -1) : softmax(x64, -1), y32 = log ? log_softmax(x32, -1) : softmax(x32, -1);
        std::vector<double> a = y64.to_double_vector(), b = y32.to_double_vector();
        double worst = 0;
        for (size_t i = 0; i < a.size(); ++i) {
          if (std::isinf(a[i])) {
            CHECK(b[i] == a[i]);
            continue;
          }
          worst = std::max(worst, std::abs(a[i] - b[i]) / std::max(1.0, std::abs(a[i])));
        }
        CHECK(worst <= 2e-6);
        // Backward with finite weights on finite outputs (log_softmax's -inf entries get weight 0).
        std::vector<double> wv = w.to_double_vector();
        for (size_t i = 0; i < a.size(); ++i)
          if (std::isinf(a[i])) wv[i] = 0.0;
        Tensor w64 = Tensor::from_vector(wv, {rows, n});
        sum(mul(y64, w64)).backward();
        sum(mul(y32, w64.to(DType::F32))).backward();
        std::vector<double> g64 = x64.grad().to_double_vector(), g32 = x32.grad().to_double_vector();
        double gscale = 1e-30, gworst = 0;
        for (double g : g64) gscale = std::max(gscale, std::abs(g));
        for (size_t i = 0; i < g64.size(); ++i) gworst = std::max(gworst, std::abs(g64[i] - g32[i]) / gscale);
        CHECK(gworst <= 2e-6);
      }
    }
  }
}
