// CPU float32 GEMM through the backend (kernels/cpu/matmul.cpp): Eigen against oneDNN's sgemm, and for
// the linear layer's x W^T the engine's own kernel (kernels/cpu/linear_f32.h, no epilogue), at the
// shapes of the quick-start training step (rows = 32 x 128 protein or 32 x 64 text tokens) and of
// ESM-2 8M / 35M embedding. CPU-seconds per call (CLOCK_PROCESS_CPUTIME_ID, stable on a busy machine),
// median of 7 repeats of enough calls for ~0.2 s; one thread unless OMP_NUM_THREADS says otherwise.
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <vector>

#include "autograd/ops.h"
#include "kernels/cpu/cpu_api.h"
#include "kernels/cpu/linear_f32.h"

using namespace pe;

namespace {

double cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

struct GemmShape {
  const char* name;
  int64_t M, N, K;
  bool ta, tb;
};

// Median GFLOP/CPU-s of 7 repeats of enough calls of f for ~0.2 s.
template <typename F>
double gflops(const GemmShape& s, F&& f) {
  const double flop = 2.0 * double(s.M) * double(s.N) * double(s.K);
  const int calls = std::max(1, int(4e8 / flop));
  std::vector<double> rates;
  f();
  for (int r = 0; r < 7; ++r) {
    const double t0 = cpu_seconds();
    for (int i = 0; i < calls; ++i) f();
    rates.push_back(flop * calls / (cpu_seconds() - t0) * 1e-9);
  }
  std::sort(rates.begin(), rates.end());
  return rates[3];
}

}  // namespace

int main() {
  const GemmShape shapes[] = {
      {"quick-start ESM q/k/v/o (x W^T)", 4096, 64, 64, false, true},
      {"quick-start ESM FFN up", 4096, 256, 64, false, true},
      {"quick-start ESM FFN down", 4096, 64, 256, false, true},
      {"quick-start ESM FFN up, dX = dY W", 4096, 64, 256, false, false},
      {"quick-start ESM FFN up, dW = dY^T X", 256, 64, 4096, true, false},
      {"quick-start BERT q/k/v/o", 2048, 128, 128, false, true},
      {"quick-start BERT FFN up", 2048, 512, 128, false, true},
      {"quick-start BERT FFN down", 2048, 128, 512, false, true},
      {"ESM-2 8M q/k/v/o, 8 x 300 tokens", 2400, 320, 320, false, true},
      {"ESM-2 8M FFN up", 2400, 1280, 320, false, true},
      {"ESM-2 8M q, k, v in one product", 2400, 960, 320, false, true},
      {"ESM-2 35M q/k/v/o", 2400, 480, 480, false, true},
      {"ESM-2 35M q, k, v in one product", 2400, 1440, 480, false, true},
      {"ESM-2 35M FFN up", 2400, 1920, 480, false, true},
      {"ESM-2 35M FFN down", 2400, 480, 1920, false, true},
  };
  const bool onednn = cpu::gemm_library_available(cpu::GemmLibrary::OneDnn), own = cpu::linear_f32_enabled();
  std::printf("| shape | M | N | K | Eigen GFLOP/CPU-s | oneDNN GFLOP/CPU-s | oneDNN / Eigen | own x W^T GFLOP/CPU-s | own / oneDNN |\n"
              "|---|---|---|---|---|---|---|---|---|\n");
  Generator gen(1);
  Backend& be = cpu_backend();
  for (const GemmShape& s : shapes) {
    Tensor a = randn(s.ta ? Shape{1, s.K, s.M} : Shape{1, s.M, s.K}, gen);
    Tensor b = randn(s.tb ? Shape{1, s.N, s.K} : Shape{1, s.K, s.N}, gen);
    Tensor c = Tensor::empty({1, s.M, s.N});
    // The backend's matmul sends an f32 x W^T to linear_f32 when enabled: off for the library columns.
    if (own) cpu::set_linear_f32_enabled(false);
    auto library = [&] { be.matmul(a, b, c, s.ta, s.tb, 1.0, 0.0); };
    cpu::set_gemm_library(cpu::GemmLibrary::Eigen);
    const double e = gflops(s, library);
    double d = 0, o = 0;
    if (onednn) {
      cpu::set_gemm_library(cpu::GemmLibrary::OneDnn);
      d = gflops(s, library);
    }
    if (own) cpu::set_linear_f32_enabled(true);
    if (own && !s.ta && s.tb)
      o = gflops(s, [&] {
        cpu::linear_f32(s.M, s.N, s.K, a.data<float>(), s.K, b.data<float>(), s.K, c.data<float>(), s.N, {});
      });
    char dn[32] = "-", ratio[32] = "-", on[32] = "-", oratio[32] = "-";
    if (onednn) {
      std::snprintf(dn, sizeof dn, "%.1f", d);
      std::snprintf(ratio, sizeof ratio, "%.2f", d / e);
    }
    if (o > 0) {
      std::snprintf(on, sizeof on, "%.1f", o);
      if (onednn) std::snprintf(oratio, sizeof oratio, "%.2f", o / d);
    }
    std::printf("| %s | %lld | %lld | %lld | %.1f | %s | %s | %s | %s |\n", s.name, (long long)s.M, (long long)s.N,
                (long long)s.K, e, dn, ratio, on, oratio);
  }
}
