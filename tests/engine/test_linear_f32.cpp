// kernels/cpu/linear_f32.h (the CPU's own f32 GEMM with the linear layer's epilogue) against a float64
// product and epilogue: odd sizes around the 6 x 16 tile, K in one and in several blocks (and not a
// multiple of 8), N past one column block, padded strides, every epilogue (bias, GELU, ReLU,
// pre-activation, residual), one and two threads; the output is poisoned first so every element
// must be written, and nothing outside the [M, N] window may be.
#include <doctest/doctest.h>

#include <omp.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cpu/linear_f32.h"

using pe::cpu::LinearAct;
using pe::cpu::LinearEpilogue;

namespace {
struct Case {
  int64_t M, N, K;
};

double gelu64(double x) { return 0.5 * x * (1.0 + std::erf(x * 0.70710678118654752440)); }

// Deterministic values in [-1, 1).
float val(int64_t i, int64_t salt) {
  uint64_t h = uint64_t(i) * 0x9E3779B97F4A7C15ull + uint64_t(salt) * 0xBF58476D1CE4E5B9ull;
  h ^= h >> 31;
  h *= 0x94D049BB133111EBull;
  h ^= h >> 29;
  return float(double(h >> 11) / double(1ull << 53) * 2.0 - 1.0);
}

void run_case(const Case& c, bool bias, LinearAct act, bool pre, bool residual, int threads) {
  const int64_t lda = c.K + 3, ldw = c.K + 5, ldc = c.N + 7, pad = 64;  // padded strides
  std::vector<float> A(size_t(c.M * lda)), W(size_t(c.N * ldw)), B(size_t(c.N)), R(size_t(c.M * ldc));
  for (size_t i = 0; i < A.size(); ++i) A[i] = val(int64_t(i), 1);
  for (size_t i = 0; i < W.size(); ++i) W[i] = val(int64_t(i), 2);
  for (size_t i = 0; i < B.size(); ++i) B[i] = val(int64_t(i), 3);
  for (size_t i = 0; i < R.size(); ++i) R[i] = val(int64_t(i), 4);
  const float poison = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> C(size_t(c.M * ldc + pad), poison), P(size_t(c.M * ldc + pad), poison);
  LinearEpilogue ep;
  if (bias) ep.bias = B.data();
  ep.act = act;
  if (pre) {
    ep.pre = P.data();
    ep.ld_pre = ldc;
  }
  if (residual) {
    ep.residual = R.data();
    ep.ld_res = ldc;
  }
  const int before = omp_get_max_threads();
  omp_set_num_threads(threads);
  pe::cpu::linear_f32(c.M, c.N, c.K, A.data(), lda, W.data(), ldw, C.data(), ldc, ep);
  omp_set_num_threads(before);
  double worst = 0, worst_pre = 0;
  int64_t bad = 0;
  for (int64_t i = 0; i < c.M; ++i)
    for (int64_t j = 0; j < ldc; ++j) {
      const float got = C[size_t(i * ldc + j)];
      if (j >= c.N) {  // the stride's gap: untouched
        if (!std::isnan(got)) ++bad;
        continue;
      }
      double dot = 0, mag = 0;
      for (int64_t k = 0; k < c.K; ++k) {
        dot += double(A[size_t(i * lda + k)]) * double(W[size_t(j * ldw + k)]);
        mag += std::abs(double(A[size_t(i * lda + k)]) * double(W[size_t(j * ldw + k)]));
      }
      double z = dot + (bias ? double(B[size_t(j)]) : 0.0);
      if (pre) worst_pre = std::max(worst_pre, std::abs(double(P[size_t(i * ldc + j)]) - z) / (mag + 1.0));
      if (act == LinearAct::Gelu) z = gelu64(z);
      if (act == LinearAct::Relu) z = std::max(z, 0.0);
      if (residual) z += double(R[size_t(i * ldc + j)]);
      // f32 sums of K products: error ~ K^(1/2..1) eps times the sum of magnitudes.
      worst = std::max(worst, std::abs(double(got) - z) / (mag + 1.0));
    }
  for (int64_t t = c.M * ldc; t < c.M * ldc + pad; ++t)
    if (!std::isnan(C[size_t(t)])) ++bad;  // nothing past the last row
  INFO("M ", c.M, " N ", c.N, " K ", c.K, " bias ", bias, " act ", int(act), " pre ", pre, " residual ", residual,
       " threads ", threads);
  CHECK(bad == 0);
  CHECK(worst <= 2e-6);
  if (pre) CHECK(worst_pre <= 2e-6);
}
}  // namespace

TEST_SUITE("unit") {
  TEST_CASE("linear_f32 equals the float64 product and epilogue at odd sizes and every epilogue") {
    if (!pe::cpu::linear_f32_enabled()) {
      MESSAGE("linear_f32 is not in this build (no AVX2 + FMA): skipped");
      return;
    }
    const Case cases[] = {{1, 1, 1},    {5, 15, 7},     {6, 16, 8},     {7, 17, 9},    {13, 33, 64},
                          {61, 47, 480}, {150, 40, 513}, {37, 4100, 24}, {300, 96, 1030}, {64, 64, 0}};
    for (const Case& c : cases)
      for (int threads : {1, 2}) run_case(c, false, LinearAct::None, false, false, threads);
    for (const Case& c : {Case{61, 47, 480}, Case{7, 17, 9}, Case{150, 40, 513}}) {
      run_case(c, true, LinearAct::None, false, false, 2);
      run_case(c, true, LinearAct::Gelu, true, false, 2);
      run_case(c, true, LinearAct::Relu, false, false, 1);
      run_case(c, true, LinearAct::None, false, true, 2);
      run_case(c, false, LinearAct::Gelu, false, true, 1);
    }
  }

  TEST_CASE("linear_f32 can be turned off and says so") {
    const bool was = pe::cpu::linear_f32_enabled();
    pe::cpu::set_linear_f32_enabled(false);
    float a = 1, w = 1, c = 0;
    CHECK_THROWS_WITH(pe::cpu::linear_f32(1, 1, 1, &a, 1, &w, 1, &c, 1, {}),
                      doctest::Contains("not available in this build or turned off"));
    if (was) pe::cpu::set_linear_f32_enabled(true);
    CHECK(pe::cpu::linear_f32_enabled() == was);
  }
}

// Through the autograd ops: with no gradient to record, linear_act and linear_residual take the backend's
// one-pass path (linear_epilogue, on linear_f32 at K >= 256 when enabled) and must give the composition's
// values; with gradients they are the composition.
#include "autograd/ops.h"

TEST_SUITE("unit") {
  TEST_CASE("linear_act and linear_residual without a graph equal their compositions") {
    using namespace pe;
    for (bool own : {true, false}) {
      if (own && !cpu::linear_f32_enabled()) continue;
      const bool was = cpu::linear_f32_enabled();
      if (!own && was) cpu::set_linear_f32_enabled(false);
      for (int64_t K : {300, 64}) {
        INFO("own GEMM ", own, " K ", K);
        Generator g(uint64_t(K) + 7);
        Tensor x = randn({2, 19, K}, g), w = randn({70, K}, g), b = randn({70}, g), r = randn({2, 19, 70}, g);
        Tensor ref_res = add(r, linear(x, w, b));
        Tensor ref_gelu = gelu(linear(x, w, b)), ref_relu = relu(linear(x, w, b));
        NoGradGuard ng;
        // Bias and residual: the same two f32 additions in the same order.
        CHECK(linear_residual(x, w, b, r).to_double_vector() == ref_res.to_double_vector());
        CHECK(linear_residual(x, w, Tensor(), r).to_double_vector() == add(r, linear(x, w, Tensor())).to_double_vector());
        CHECK(linear_act(x, w, b, UnaryOp::Relu).to_double_vector() == ref_relu.to_double_vector());
        // GELU: Eigen's erf in the unfused op, the same rational function in registers in the fused one.
        std::vector<double> got = linear_act(x, w, b, UnaryOp::Gelu).to_double_vector(), want = ref_gelu.to_double_vector();
        double worst = 0;
        for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - want[i]) / (std::abs(want[i]) + 1e-3));
        CHECK(worst <= 1e-6);
        CHECK_THROWS_WITH_AS(linear_residual(x, w, b, randn({2, 19, 69}, g)), doctest::Contains("residual"), Error);
      }
      if (!own && was) cpu::set_linear_f32_enabled(true);
    }
  }
}
