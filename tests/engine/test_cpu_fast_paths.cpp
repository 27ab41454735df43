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

#include "kernels/cpu/cpu_api.h"

namespace {
// Restores the GEMM library choice when a test ends.
struct GemmChoice {
  cpu::GemmLibrary old;
  explicit GemmChoice(cpu::GemmLibrary lib) : old(cpu::set_gemm_library(lib)) {}
  ~GemmChoice() { cpu::set_gemm_library(old); }
};
}  // namespace

TEST_SUITE("unit") {
  TEST_CASE("float32 GEMM through oneDNN matches the float64 Eigen reference") {
    if (!cpu::gemm_library_available(cpu::GemmLibrary::OneDnn)) {
      MESSAGE("this build has no oneDNN (cmake -DPE_ONEDNN=OFF or libdnnl-dev missing): Eigen only");
      return;
    }
    GemmChoice use(cpu::GemmLibrary::OneDnn);
    Generator gen(7);
    Backend& be = cpu_backend();
    // Odd sizes, all four transpose cases, alpha/beta, a broadcast (stride 0) operand, batches that go
    // to the per-item parallel loop (small) and the sequential one (large).
    struct Case { int64_t batch, M, N, K; };
    for (Case c : {Case{1, 1, 1, 1}, Case{1, 37, 5, 129}, Case{3, 17, 33, 9}, Case{2, 300, 70, 260}, Case{5, 4, 3, 1}}) {
      for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb)
          for (int bcast = 0; bcast < 2; ++bcast) {
            Shape sa = ta ? Shape{c.batch, c.K, c.M} : Shape{c.batch, c.M, c.K};
            Shape sb = tb ? Shape{c.batch, c.N, c.K} : Shape{c.batch, c.K, c.N};
            Tensor a64 = randn(sa, gen, DType::F64);
            Tensor b64 = randn(bcast ? Shape{1, sb[1], sb[2]} : sb, gen, DType::F64);
            Tensor bb64 = bcast ? b64.expand(sb) : b64;
            Tensor c64 = randn({c.batch, c.M, c.N}, gen, DType::F64);
            Tensor a32 = a64.to(DType::F32), b32 = b64.to(DType::F32), c32 = c64.to(DType::F32);
            Tensor bb32 = bcast ? b32.expand(sb) : b32;
            double alpha = 0.75, beta = (c.M % 2) ? 0.0 : -1.5;
            be.matmul(a64, bb64, c64, ta, tb, alpha, beta);
            be.matmul(a32, bb32, c32, ta, tb, alpha, beta);
            INFO("batch ", c.batch, " M ", c.M, " N ", c.N, " K ", c.K, " ta ", ta, " tb ", tb, " bcast ", bcast);
            // fp32 accumulation over K terms of unit-variance products: error ~ sqrt(K) * 6e-8 * |terms|.
            CHECK(rel_err(c32, c64) <= 1e-5 * std::max(1.0, std::sqrt(double(c.K)) / 4));
          }
    }
    // matmul_bias (the linear layer) adds the bias after the oneDNN product.
    Tensor x = randn({1, 45, 19}, gen, DType::F64), w = randn({1, 23, 19}, gen, DType::F64);
    Tensor bias = randn({23}, gen, DType::F64);
    Tensor o64 = Tensor::empty({1, 45, 23}, DType::F64), o32 = Tensor::empty({1, 45, 23}, DType::F32);
    be.matmul_bias(x, w, bias, o64, false, true);
    be.matmul_bias(x.to(DType::F32), w.to(DType::F32), bias.to(DType::F32), o32, false, true);
    CHECK(rel_err(o32, o64) <= 1e-5);
  }

  TEST_CASE("PE_CPU_GEMM choices are checked") {
    CHECK(cpu::gemm_library_available(cpu::GemmLibrary::Eigen));
    GemmChoice use(cpu::GemmLibrary::Eigen);
    CHECK(cpu::gemm_library() == cpu::GemmLibrary::Eigen);
    if (!cpu::gemm_library_available(cpu::GemmLibrary::OneDnn))
      CHECK_THROWS_WITH_AS(cpu::set_gemm_library(cpu::GemmLibrary::OneDnn), doctest::Contains("not in this build"),
                           pe::Error);
  }
}
