// kernels/cpu/vec_exp.h (the f32 softmax pieces: row maximum, exp and exp2 with their sums) against
// float64 std::exp / std::exp2: every row length through the vector body and the padded tail, the
// whole argument range each is used on, the flush to exactly 0 at the bottom and for -inf, the
// subnormal band above it, NaN propagation (with a payload).
#include <doctest/doctest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/cpu/vec_exp.h"

using pe::cpu::exp2_shift_sum_f32;
using pe::cpu::exp_shift_sum_f32;
using pe::cpu::row_max_f32;

namespace {
const float kInf = std::numeric_limits<float>::infinity();
// One base's function, its float64 reference, and where the result must be exactly 0 (the argument
// rounds to the exponent -127) and where it is a normal float (exact 0 or a subnormal in between).
struct Base {
  const char* name;
  float (*shift_sum)(float*, int64_t, float);
  double (*ref)(double);
  double zero_below, normal_above;  // in the argument
};
const Base kBases[] = {
    {"exp", exp_shift_sum_f32, [](double x) { return std::exp(x); }, -87.684, -87.33},
    {"exp2", exp2_shift_sum_f32, [](double x) { return std::exp2(x); }, -126.5, -126.0},
};
// Whether a float result is right for the float argument x: exactly 0 below zero_below, within the
// smallest normal of the value in the subnormal band, else within 2.5e-7 relative (f32 ulp 6e-8 ..
// 1.2e-7), NaN for NaN.
bool close(const Base& b, float x, float got, double* worst = nullptr) {
  if (std::isnan(x)) return std::isnan(got);
  if (double(x) < b.zero_below) return got == 0.0f;
  const double ref = b.ref(double(x));
  if (double(x) < b.normal_above) return got >= 0.0f && std::abs(double(got) - ref) <= double(FLT_MIN);
  const double rel = std::abs(double(got) - ref) / ref;
  if (worst) *worst = std::max(*worst, rel);
  return rel <= 2.5e-7;
}
float quiet_nan_with_payload() {
  const uint32_t bits = 0x7fc001ffu;  // low payload bits set: they must not leak into the result
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
}  // namespace

TEST_SUITE("unit") {
  TEST_CASE("exp_shift_sum_f32 and exp2_shift_sum_f32 match float64 to about 1 ulp over their ranges") {
    for (const Base& b : kBases) {
      // Dense sweeps of s - mx from below the flush to 0.5 (the forward's s - max is <= 0, the
      // backward's s - lse may be a rounding above 0), and on up to the top of the range where float
      // still has room (sums there overflow: values only), in rows of odd lengths so the tail runs too.
      const double top = b.ref == kBases[0].ref ? 88.0 : 127.0;
      for (auto [lo, hi, check_sum] : {std::tuple{b.zero_below - 1.0, 0.5, true}, std::tuple{0.0, top, false}}) {
        INFO(std::string(b.name), " sweep over [", lo, ", ", hi, "]");
        const int64_t n = 1000003;
        std::vector<float> s(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) s[size_t(i)] = float(lo + (hi - lo) * double(i) / double(n - 1));
        std::vector<float> x = s;
        double sum = b.shift_sum(s.data(), n, 0.0f), ref_sum = 0, worst = 0;
        int64_t bad = 0;
        for (int64_t i = 0; i < n; ++i) {
          ref_sum += double(x[size_t(i)]) < b.zero_below ? 0.0 : b.ref(double(x[size_t(i)]));
          if (!close(b, x[size_t(i)], s[size_t(i)], &worst) && ++bad <= 3)
            MESSAGE("x ", x[size_t(i)], " got ", s[size_t(i)], " want ", b.ref(double(x[size_t(i)])));
        }
        INFO("worst relative error ", worst);
        CHECK(bad == 0);
        if (check_sum) CHECK(std::abs(sum - ref_sum) / ref_sum <= 1e-5);
      }
      // With a non-zero shift: s - mx formed in float, as the attention does.
      std::vector<float> row = {3.5f, -1.25f, 0.0f, 2.0f, -40.0f, 3.5f, 1e-3f, -7.0f, 0.5f};
      const float mx = row_max_f32(row.data(), int64_t(row.size()));
      CHECK(mx == 3.5f);
      std::vector<float> orig = row;
      double rsum = b.shift_sum(row.data(), int64_t(row.size()), mx), want = 0;
      for (size_t i = 0; i < row.size(); ++i) {
        want += b.ref(double(orig[i] - mx));
        CHECK(close(b, orig[i] - mx, row[i]));
      }
      CHECK(std::abs(rsum - want) / want <= 1e-6);
    }
  }

  TEST_CASE("the shifted exp sums and row_max_f32 for every row length: tails, -inf, underflow, NaN") {
    for (const Base& b : kBases)
      for (int64_t n = 0; n <= 71; ++n) {
        INFO(std::string(b.name), " row length ", n);
        std::vector<float> s(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) s[size_t(i)] = float(std::sin(0.7 * double(i) + 0.3 * double(n)) * 9.0);
        if (n > 3) s[size_t(n / 3)] = -kInf;       // a masked key
        if (n > 5) s[size_t(n - 2)] = -200.0f;     // far below the maximum: underflows to exactly 0
        if (n > 40) s[size_t(n - 9)] = 20.0f;      // the maximum in the last of four running maxima
        float ref_max = -kInf;
        for (float v : s) ref_max = std::max(ref_max, v);
        const float mx = row_max_f32(s.data(), n);
        CHECK(mx == ref_max);
        if (n == 0) {
          CHECK(b.shift_sum(s.data(), 0, 0.0f) == 0.0f);
          continue;
        }
        std::vector<float> x = s;
        double got_sum = b.shift_sum(s.data(), n, mx), ref_sum = 0;
        for (int64_t i = 0; i < n; ++i) {
          const float arg = x[size_t(i)] - mx;
          ref_sum += double(arg) < b.zero_below ? 0.0 : b.ref(double(arg));
          INFO("argument ", arg);
          CHECK(close(b, arg, s[size_t(i)]));
        }
        CHECK(std::abs(got_sum - ref_sum) / ref_sum <= 1e-6);
      }
    // A NaN anywhere in the row (body or tail, with or without payload bits) propagates to its own
    // value and to the sum, as std::exp does; the maximum skips it.
    for (const Base& b : kBases)
      for (float nan : {std::numeric_limits<float>::quiet_NaN(), quiet_nan_with_payload()})
        for (int64_t at : {0, 7, 8, 12, 31, 36}) {
          INFO(std::string(b.name), " NaN at ", at);
          std::vector<float> s(37, 1.0f);
          s[2] = 2.0f;
          s[size_t(at)] = nan;
          const float mx = row_max_f32(s.data(), 37);
          CHECK(mx == 2.0f);
          float sum = b.shift_sum(s.data(), 37, mx);
          CHECK(std::isnan(s[size_t(at)]));
          CHECK(std::isnan(sum));
          CHECK(s[2] == doctest::Approx(1.0f));
        }
    // A row of only -inf: the caller's case (maximum -inf: no real key); here just the maximum.
    std::vector<float> masked(43, -kInf);
    CHECK(row_max_f32(masked.data(), 43) == -kInf);
  }

  TEST_CASE("exp_f32 matches float64 exp over its range for every length: tails, -inf, NaN, in place") {
    const Base& b = kBases[0];
    for (int64_t n = 0; n <= 19; ++n) {
      INFO("length ", n);
      std::vector<float> x(static_cast<size_t>(n)), y(static_cast<size_t>(n) + 1, -1.0f);
      for (int64_t i = 0; i < n; ++i) x[size_t(i)] = float(-90.0 + 178.0 * double(i) / double(std::max<int64_t>(n - 1, 1)));
      if (n > 4) x[3] = -kInf;
      if (n > 6) x[5] = std::numeric_limits<float>::quiet_NaN();
      if (n > 8) x[7] = quiet_nan_with_payload();
      if (n > 10) x[9] = -87.5f;  // the subnormal band
      if (n > 12) x[11] = -87.0f;
      pe::cpu::exp_f32(x.data(), y.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        INFO("x ", x[size_t(i)]);
        CHECK(close(b, x[size_t(i)], y[size_t(i)]));
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
