// CPU attention, forward and forward+backward: the blocked Eigen kernel (the default), the plain
// per-row loops (PE_FUSED_SIMPLE) and the composition (matmul, softmax, matmul over [B, H, L, L]).
// One thread unless OMP_NUM_THREADS says otherwise; median of 7 timed repeats after one warm-up, in
// CPU-milliseconds of the process (the columns say "ms": CPU-ms).
// Shapes: ESM-2 8M embedding, and the quick-start model's protein self-attention and fusion maps.
// A second table: the blocked kernel with and without causal (the keys above the diagonal are
// skipped, so about half the work), and a decode step against a KV cache (attention_decode).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <functional>
#include <vector>

#include "autograd/fused.h"
#include "autograd/kv_cache.h"
#include "kernels/cpu/cpu_api.h"
#include "models/layers.h"

using namespace pe;

namespace {

// Process CPU time (all threads), not wall time: on a shared machine a process may get a fraction of
// a core, and CPU-milliseconds per call stay comparable where wall-milliseconds do not.
double cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) * 1e-6;
}

double median_ms(const std::function<void()>& f) {
  f();
  std::vector<double> t;
  for (int r = 0; r < 7; ++r) {
    double t0 = cpu_ms();
    f();
    t.push_back(cpu_ms() - t0);
  }
  std::sort(t.begin(), t.end());
  return t[3];
}

struct Shape4 {
  const char* name;
  int64_t B, Lq, Lk, H, D;
  bool backward;
};

}  // namespace

int main() {
  const Shape4 shapes[] = {
      {"esm2-8m embed", 8, 300, 300, 20, 16, false},
      {"quick-start protein self-attention", 32, 130, 130, 4, 16, true},
      {"quick-start fusion protein->text", 32, 130, 40, 4, 32, true},
  };
  Generator gen(1);
  std::printf("| shape | B x Lq x Lk x H x D | pass | blocked CPU-ms | loops CPU-ms | composition CPU-ms |\n|---|---|---|---|---|---|\n");
  for (const Shape4& s : shapes) {
    Tensor q = randn({s.B, s.Lq, s.H, s.D}, gen), k = randn({s.B, s.Lk, s.H, s.D}, gen), v = randn({s.B, s.Lk, s.H, s.D}, gen);
    std::vector<double> m(size_t(s.B * s.Lk), 1.0);
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t j = s.Lk - b % 7; j < s.Lk; ++j) m[size_t(b * s.Lk + j)] = 0;  // some padding
    Tensor mask = Tensor::from_vector(m, {s.B, s.Lk});
    double scale = 0.25;
    auto run = [&](int variant) {
      return [&, variant] {
        bool grad = s.backward;
        Tensor qq = grad ? q.detach().requires_grad_(true) : q, kk = grad ? k.detach().requires_grad_(true) : k;
        Tensor vv = grad ? v.detach().requires_grad_(true) : v;
        NoGradGuard* ng = grad ? nullptr : new NoGradGuard();
        Tensor o = variant == 2 ? attention_reference(qq, kk, vv, mask, scale) : flash_attention(qq, kk, vv, mask, scale);
        if (grad) sum(o).backward();
        delete ng;
      };
    };
    double t[3];
    for (int variant = 0; variant < 3; ++variant) {
      cpu::set_simple_attention(variant == 1);
      t[variant] = median_ms(run(variant));
    }
    cpu::set_simple_attention(false);
    std::printf("| %s | %lld x %lld x %lld x %lld x %lld | %s | %.2f | %.2f | %.2f |\n", s.name, (long long)s.B,
                (long long)s.Lq, (long long)s.Lk, (long long)s.H, (long long)s.D, s.backward ? "fwd+bwd" : "fwd", t[0],
                t[1], t[2]);
  }

  std::printf("\n| causal, blocked kernel | B x L x H x D | pass | full CPU-ms | causal CPU-ms | full / causal |\n"
              "|---|---|---|---|---|---|\n");
  const Shape4 causal_shapes[] = {
      {"self-attention", 4, 512, 512, 8, 64, false},
      {"self-attention", 4, 512, 512, 8, 64, true},
      {"long self-attention", 2, 1024, 1024, 4, 32, false},
      {"long self-attention", 2, 1024, 1024, 4, 32, true},
  };
  for (const Shape4& s : causal_shapes) {
    Tensor q = randn({s.B, s.Lq, s.H, s.D}, gen), k = randn({s.B, s.Lk, s.H, s.D}, gen), v = randn({s.B, s.Lk, s.H, s.D}, gen);
    auto run = [&](bool causal) {
      return [&, causal] {
        bool grad = s.backward;
        Tensor qq = grad ? q.detach().requires_grad_(true) : q, kk = grad ? k.detach().requires_grad_(true) : k;
        Tensor vv = grad ? v.detach().requires_grad_(true) : v;
        NoGradGuard* ng = grad ? nullptr : new NoGradGuard();
        Tensor o = flash_attention(qq, kk, vv, Tensor(), 0.125, causal);
        if (grad) sum(o).backward();
        delete ng;
      };
    };
    double full = median_ms(run(false)), causal = median_ms(run(true));
    std::printf("| %s | %lld x %lld x %lld x %lld | %s | %.2f | %.2f | %.2f |\n", s.name, (long long)s.B,
                (long long)s.Lq, (long long)s.H, (long long)s.D, s.backward ? "fwd+bwd" : "fwd", full, causal,
                full / causal);
  }

  // The embedding's attention (packed sequences, no mask, f32 forward) at ESM-2's small head dims:
  // the two products through the GEMM library against the register kernels (attn_small.h), the two
  // alternated call by call so both see the same machine; medians of 9 each.
  std::printf("\n| packed f32 forward | sequences x L x H x D | GEMM-library products CPU-ms | register kernels CPU-ms | library / register |\n"
              "|---|---|---|---|---|\n");
  const Shape4 small_shapes[] = {
      {"ESM-2 8M", 8, 300, 300, 20, 16, false},
      {"ESM-2 35M", 8, 300, 300, 20, 24, false},
      {"ESM-2 150M", 8, 300, 300, 20, 32, false},
  };
  for (const Shape4& s : small_shapes) {
    const int64_t T = s.B * s.Lq;
    Tensor q = randn({T, s.H, s.D}, gen), k = randn({T, s.H, s.D}, gen), v = randn({T, s.H, s.D}, gen);
    std::vector<int64_t> cu(size_t(s.B + 1));
    for (int64_t b = 0; b <= s.B; ++b) cu[size_t(b)] = b * s.Lq;
    Tensor cut = Tensor::from_vector(cu, {s.B + 1});
    NoGradGuard ng;
    auto once = [&](bool reg) {
      bool old = cpu::set_small_head_attention(reg);
      double t0 = cpu_ms();
      Tensor o = flash_attention_varlen(q, k, v, cut, cut, s.Lq, s.Lq, 1.0 / std::sqrt(double(s.D)));
      double t = cpu_ms() - t0;
      cpu::set_small_head_attention(old);
      return t;
    };
    once(false);
    once(true);
    std::vector<double> lib, reg;
    for (int r = 0; r < 9; ++r) {
      lib.push_back(once(false));
      reg.push_back(once(true));
    }
    std::sort(lib.begin(), lib.end());
    std::sort(reg.begin(), reg.end());
    std::printf("| %s | %lld x %lld x %lld x %lld | %.2f | %.2f | %.2f |\n", s.name, (long long)s.B, (long long)s.Lq,
                (long long)s.H, (long long)s.D, lib[4], reg[4], lib[4] / reg[4]);
  }

  // One decode step (a new token per row) against caches of 1024 tokens, and the same queries
  // recomputed as causal attention over the whole prefix. A step reads the whole cache: GB/s.
  std::printf("\n| decode step | B x cache x H x D | attention_decode CPU-ms | cache GB/CPU-s | full causal recompute CPU-ms |\n"
              "|---|---|---|---|---|\n");
  for (int64_t B : {1, 8}) {
    const int64_t L = 1024, H = 8, D = 64;
    KvCache cache(B, H, D, DType::F32, Device::cpu(), L);
    cache.append(randn({B, L, H, D}, gen), randn({B, L, H, D}, gen));
    Tensor q1 = randn({B, 1, H, D}, gen), qall = randn({B, L, H, D}, gen);
    double step = median_ms([&] { cache.attend(q1, 0.125); });
    double full = median_ms([&] {
      NoGradGuard ng;
      flash_attention(qall, cache.keys(), cache.values(), Tensor(), 0.125, true);
    });
    std::printf("| 1 new token | %lld x %lld x %lld x %lld | %.3f | %.1f | %.2f |\n", (long long)B, (long long)L,
                (long long)H, (long long)D, step, 2.0 * double(B * L * H * D) * 4 / (step * 1e6), full);
  }
  return 0;
}
