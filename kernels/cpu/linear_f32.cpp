// linear_f32 (linear_f32.h): C = act(A W^T + bias) + residual with AVX2 + FMA.
//
// Blocking (BLIS's, with this core's sizes: 32 KB L1, 512 KB L2):
//   for each block of K (kc <= 512, equal parts: one pass for ESM-2's K = 320 / 480, four of 480 for
//   the FFN's 1,920) the whole of W's rows for that block is packed once, shared by the threads, in
//   panels of 16 output columns, k-major ([kc, 16] contiguous: the register tile's two B vectors per k);
//   each thread takes blocks of mc rows of A (packed into [kc, 6] slivers, mc * kc * 4 bytes in L2) and
//   runs the 6 x 16 register tile over every (16-column panel, 6-row sliver) pair, the panel staying
//   in L1 while the slivers stream from L2. The tile's first K block stores, later ones add; after the
//   last one the epilogue runs on the tile (in L1). The next tile's C rows are prefetched: without it
//   each tile waited on six cache misses (61 against 77 GFLOP/CPU-s at 2400 x 1920 x 480).
// Edges: partial slivers and panels are zero-padded in the packing; partial tiles go through a
// 6 x 16 buffer and only their valid part is written.
#include "kernels/cpu/linear_f32.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#include "kernels/cpu/avx2_util.h"
#define PE_CPU_LINEAR_AVX2 1
#endif

namespace pe::cpu {

namespace {
std::atomic<bool>& linear_flag() {
  static std::atomic<bool> on([] {
#if PE_CPU_LINEAR_AVX2
    const char* e = std::getenv("PE_CPU_LINEAR");
    return !(e && std::string(e) == "onednn");
#else
    return false;
#endif
  }());
  return on;
}
}  // namespace

bool linear_f32_enabled() { return linear_flag().load(); }
bool set_linear_f32_enabled(bool on) {
#if !PE_CPU_LINEAR_AVX2
  PE_CHECK(!on, "set_linear_f32_enabled: this build has no AVX2 + FMA (the portable build)");
#endif
  return linear_flag().exchange(on);
}

#if PE_CPU_LINEAR_AVX2
namespace {
constexpr int64_t kMR = 6, kNR = 16, kMaxKC = 512, kMaxNC = 4096;

// Growable 64-byte-aligned float buffer (per thread: A's slivers; the calling thread's: W's panels).
struct AlignedBuf {
  float* p = nullptr;
  size_t n = 0;
  float* get(size_t want) {
    if (want > n) {
      std::free(p);
      n = want;
      p = static_cast<float*>(std::aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64));
      PE_CHECK(p, "linear_f32: out of memory for a ", n * sizeof(float), "-byte packing buffer");
    }
    return p;
  }
  ~AlignedBuf() { std::free(p); }
};

using avx2::in_register;
using avx2::transpose8;

// W's rows j0 .. j0+nn-1 (nn <= 16), columns pc .. pc+kc-1, as a [kc, 16] panel: dst[k * 16 + jj] =
// W[(j0 + jj) ldw + pc + k], 0 for jj >= nn.
void pack_w_panel(const float* W, int64_t ldw, int64_t j0, int64_t nn, int64_t pc, int64_t kc, float* dst) {
  int64_t k0 = 0;
  if (nn == kNR) {
    __m256 r[8], t[8];
    for (; k0 + 8 <= kc; k0 += 8)
      for (int64_t half = 0; half < 2; ++half) {
        const float* w = W + (j0 + 8 * half) * ldw + pc + k0;
        for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(w + i * ldw);
        transpose8(r, t);
        for (int i = 0; i < 8; ++i) _mm256_store_ps(dst + (k0 + i) * kNR + 8 * half, t[i]);
      }
  }
  for (int64_t k = k0; k < kc; ++k)
    for (int64_t jj = 0; jj < kNR; ++jj) dst[k * kNR + jj] = jj < nn ? W[(j0 + jj) * ldw + pc + k] : 0.0f;
}

// A's rows i0 .. i0+mm-1 (mm <= 6), columns pc .. pc+kc-1, as a [kc, 6] sliver: dst[k * 6 + r] =
// A[(i0 + r) lda + pc + k], 0 for r >= mm. Full slivers go 8 k at a time through the transpose (rows 6
// and 7 zero), each k's 8 lanes stored at dst + 6 k in increasing k, so lanes 6 and 7 land where the
// next k's store (or the scalar tail) overwrites them: dst needs 2 floats of slack past 6 kc.
void pack_a_sliver(const float* A, int64_t lda, int64_t i0, int64_t mm, int64_t pc, int64_t kc, float* dst) {
  int64_t k0 = 0;
  if (mm == kMR) {
    __m256 r[8], t[8];
    r[6] = r[7] = _mm256_setzero_ps();
    for (; k0 + 8 <= kc; k0 += 8) {
      const float* a = A + i0 * lda + pc + k0;
      for (int i = 0; i < 6; ++i) r[i] = _mm256_loadu_ps(a + i * lda);
      transpose8(r, t);
      for (int i = 0; i < 8; ++i) _mm256_storeu_ps(dst + (k0 + i) * kMR, t[i]);
    }
  }
  for (int64_t k = k0; k < kc; ++k)
    for (int64_t r = 0; r < kMR; ++r) dst[k * kMR + r] = r < mm ? A[(i0 + r) * lda + pc + k] : 0.0f;
}

constexpr float kInvSqrt2f = 0.70710678118654752440f;

// erf for 8 floats: Eigen's generic_fast_erf_float (the rational approximation behind Eigen's
// Array::erf, which the unfused bias_act runs), the same operations in the same order.
inline __m256 erf_f32x8(__m256 a) {
  const __m256 x = _mm256_max_ps(_mm256_min_ps(_mm256_set1_ps(4.0f), a), _mm256_set1_ps(-4.0f));
  const __m256 x2 = _mm256_mul_ps(x, x);
  __m256 p = _mm256_fmadd_ps(x2, _mm256_set1_ps(-2.72614225801306e-10f), _mm256_set1_ps(2.77068142495902e-08f));
  p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-2.10102402082508e-06f));
  p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-5.69250639462346e-05f));
  p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-7.34990630326855e-04f));
  p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-2.95459980854025e-03f));
  p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-1.60960333262415e-02f));
  p = _mm256_mul_ps(x, p);
  __m256 q = _mm256_fmadd_ps(x2, _mm256_set1_ps(-1.45660718464996e-05f), _mm256_set1_ps(-2.13374055278905e-04f));
  q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(-1.68282697438203e-03f));
  q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(-7.37332916720468e-03f));
  q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(-1.42647390514189e-02f));
  return _mm256_div_ps(p, q);
}

// 0.5 x (1 + erf(x / sqrt 2)), evaluated as the unfused expression is: (0.5 x) (1 + erf(x s)).
inline __m256 gelu_f32x8(__m256 x) {
  const __m256 e = erf_f32x8(_mm256_mul_ps(x, _mm256_set1_ps(kInvSqrt2f)));
  return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

// The activation of 8 values (none, GELU, ReLU).
inline __m256 act_f32x8(__m256 x, LinearAct act) {
  if (act == LinearAct::Gelu) return gelu_f32x8(x);
  if (act == LinearAct::Relu) return _mm256_max_ps(x, _mm256_setzero_ps());
  return x;
}

// The epilogue of one full 6 x 16 tile, pointers already at the tile's first row and column.
struct TileEpilogue {
  const float* bias;
  float* pre;
  int64_t ld_pre;
  const float* residual;
  int64_t ld_res;
  LinearAct act;
};

// The 6 x 16 tile: C (row stride ldc) = (accumulate ? C : 0) + sum_k Ap[k, :]^T Bp[k, :], then the
// epilogue in registers when ep is given (the last K block of a full tile). next: the next tile's C,
// prefetched (its rows are usually not in cache).
inline void tile_6x16(int64_t kc, const float* __restrict Ap, const float* __restrict Bp, float* C, int64_t ldc,
                      bool accumulate, const float* next, const TileEpilogue* ep) {
  __m256 c[kMR][2];
#pragma GCC unroll 6
  for (int r = 0; r < kMR; ++r) c[r][0] = c[r][1] = _mm256_setzero_ps();
#pragma GCC unroll 6
  for (int r = 0; r < kMR; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(next + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(next + r * ldc + 15), _MM_HINT_T0);
  }
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    __m256 b0 = _mm256_load_ps(Bp + k * kNR), b1 = _mm256_load_ps(Bp + k * kNR + 8);
    in_register(b0);
    in_register(b1);
#pragma GCC unroll 6
    for (int r = 0; r < kMR; ++r) {
      const __m256 a = _mm256_broadcast_ss(Ap + k * kMR + r);
      c[r][0] = _mm256_fmadd_ps(a, b0, c[r][0]);
      c[r][1] = _mm256_fmadd_ps(a, b1, c[r][1]);
    }
  }
  if (accumulate) {
#pragma GCC unroll 6
    for (int r = 0; r < kMR; ++r) {
      c[r][0] = _mm256_add_ps(c[r][0], _mm256_loadu_ps(C + r * ldc));
      c[r][1] = _mm256_add_ps(c[r][1], _mm256_loadu_ps(C + r * ldc + 8));
    }
  }
  if (ep) {
    if (ep->bias) {
      const __m256 b0 = _mm256_loadu_ps(ep->bias), b1 = _mm256_loadu_ps(ep->bias + 8);
#pragma GCC unroll 6
      for (int r = 0; r < kMR; ++r) {
        c[r][0] = _mm256_add_ps(c[r][0], b0);
        c[r][1] = _mm256_add_ps(c[r][1], b1);
      }
    }
    if (ep->pre) {
#pragma GCC unroll 6
      for (int r = 0; r < kMR; ++r) {
        _mm256_storeu_ps(ep->pre + r * ep->ld_pre, c[r][0]);
        _mm256_storeu_ps(ep->pre + r * ep->ld_pre + 8, c[r][1]);
      }
    }
    if (ep->act != LinearAct::None) {
#pragma GCC unroll 6
      for (int r = 0; r < kMR; ++r) {
        c[r][0] = act_f32x8(c[r][0], ep->act);
        c[r][1] = act_f32x8(c[r][1], ep->act);
      }
    }
    if (ep->residual) {
#pragma GCC unroll 6
      for (int r = 0; r < kMR; ++r) {
        c[r][0] = _mm256_add_ps(c[r][0], _mm256_loadu_ps(ep->residual + r * ep->ld_res));
        c[r][1] = _mm256_add_ps(c[r][1], _mm256_loadu_ps(ep->residual + r * ep->ld_res + 8));
      }
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < kMR; ++r) {
    _mm256_storeu_ps(C + r * ldc, c[r][0]);
    _mm256_storeu_ps(C + r * ldc + 8, c[r][1]);
  }
}

// The epilogue on rows i0 .. i0+mm-1, columns j0 .. j0+nn-1 of C (the finished product) of a partial
// tile, 8 columns at a time through the same vector functions and the rest one by one in lanes of a
// padded vector.
void epilogue(const LinearEpilogue& ep, float* C, int64_t ldc, int64_t i0, int64_t mm, int64_t j0, int64_t nn) {
  alignas(32) float v[8], b[8], res[8];
  for (int64_t r = 0; r < mm; ++r) {
    float* c = C + (i0 + r) * ldc + j0;
    for (int64_t q = 0; q < nn; q += 8) {
      const int64_t w = std::min<int64_t>(8, nn - q);
      for (int64_t t = 0; t < 8; ++t) {
        v[t] = t < w ? c[q + t] : 0.0f;
        b[t] = ep.bias && t < w ? ep.bias[j0 + q + t] : 0.0f;
        res[t] = ep.residual && t < w ? ep.residual[(i0 + r) * ep.ld_res + j0 + q + t] : 0.0f;
      }
      __m256 x = _mm256_load_ps(v);
      if (ep.bias) x = _mm256_add_ps(x, _mm256_load_ps(b));
      if (ep.pre) {
        _mm256_store_ps(v, x);
        for (int64_t t = 0; t < w; ++t) ep.pre[(i0 + r) * ep.ld_pre + j0 + q + t] = v[t];
      }
      x = act_f32x8(x, ep.act);
      if (ep.residual) x = _mm256_add_ps(x, _mm256_load_ps(res));
      _mm256_store_ps(v, x);
      for (int64_t t = 0; t < w; ++t) c[q + t] = v[t];
    }
  }
}

bool has_epilogue(const LinearEpilogue& ep) {
  return ep.bias || ep.pre || ep.residual || ep.act != LinearAct::None;
}
}  // namespace
#endif

void linear_f32(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* W, int64_t ldw, float* C,
                int64_t ldc, const LinearEpilogue& ep) {
  PE_CHECK(linear_f32_enabled(), "linear_f32: not available in this build or turned off (PE_CPU_LINEAR)");
  PE_CHECK(M >= 0 && N >= 0 && K >= 0, "linear_f32: negative size ", M, " x ", N, " x ", K);
#if PE_CPU_LINEAR_AVX2
  if (M == 0 || N == 0) return;
  const bool epi = has_epilogue(ep);
  if (K == 0) {  // the product is 0: only the epilogue
    for (int64_t i = 0; i < M; ++i) std::fill_n(C + i * ldc, N, 0.0f);
    if (epi) epilogue(ep, C, ldc, 0, M, 0, N);
    return;
  }
  // K in equal blocks of at most kMaxKC (a multiple of 8 where K allows, for the vector packing).
  const int64_t kblocks = (K + kMaxKC - 1) / kMaxKC;
  int64_t KC = (K + kblocks - 1) / kblocks;
  if (kblocks > 1) KC = std::min(kMaxKC, (KC + 7) / 8 * 8);
  const int64_t NC = std::min(N, kMaxNC);
  const bool parallel = !omp_in_parallel() && omp_get_max_threads() > 1 && double(M) * double(N) * double(K) > 4e6;
  const int64_t threads = parallel ? omp_get_max_threads() : 1;
  // Row blocks of <= 144 rows (a multiple of 6), as many as a multiple of the thread count.
  int64_t mblocks = (M + 143) / 144;
  mblocks = (mblocks + threads - 1) / threads * threads;
  const int64_t MC = std::max<int64_t>(kMR, ((M + mblocks - 1) / mblocks + kMR - 1) / kMR * kMR);
  mblocks = (M + MC - 1) / MC;
  static thread_local AlignedBuf wbuf;
  float* Wp = wbuf.get(size_t((NC + kNR - 1) / kNR * kNR * KC));
  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = std::min(NC, N - jc), panels = (nc + kNR - 1) / kNR;
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = std::min(KC, K - pc);
      const bool first = pc == 0, last = pc + kc == K;
#pragma omp parallel if (parallel)
      {
#pragma omp for schedule(static)
        for (int64_t p = 0; p < panels; ++p)
          pack_w_panel(W, ldw, jc + p * kNR, std::min(kNR, nc - p * kNR), pc, kc, Wp + p * kNR * kc);
        static thread_local AlignedBuf abuf;
        float* Ap = abuf.get(size_t((MC + kMR - 1) / kMR * kMR * kc + 8));
        alignas(32) float tmp[kMR * kNR];
#pragma omp for schedule(static)
        for (int64_t blk = 0; blk < mblocks; ++blk) {
          const int64_t ic = blk * MC, mc = std::min(MC, M - ic);
          for (int64_t i = 0; i < mc; i += kMR) pack_a_sliver(A, lda, ic + i, std::min(kMR, mc - i), pc, kc, Ap + i * kc);
          for (int64_t p = 0; p < panels; ++p) {
            const int64_t j = p * kNR, nn = std::min(kNR, nc - j);
            for (int64_t i = 0; i < mc; i += kMR) {
              const int64_t mm = std::min(kMR, mc - i);
              float* c = C + (ic + i) * ldc + jc + j;
              // Prefetch target: the next sliver's tile, or the next panel's first tile of this block.
              const float* next = i + kMR < mc ? c + kMR * ldc : (p + 1 < panels ? C + ic * ldc + jc + j + kNR : c);
              if (mm == kMR && nn == kNR) {
                TileEpilogue te;
                if (last && epi) {
                  const int64_t row = ic + i, col = jc + j;
                  te = {ep.bias ? ep.bias + col : nullptr, ep.pre ? ep.pre + row * ep.ld_pre + col : nullptr, ep.ld_pre,
                        ep.residual ? ep.residual + row * ep.ld_res + col : nullptr, ep.ld_res, ep.act};
                }
                tile_6x16(kc, Ap + i * kc, Wp + p * kNR * kc, c, ldc, !first, next, last && epi ? &te : nullptr);
              } else {
                tile_6x16(kc, Ap + i * kc, Wp + p * kNR * kc, tmp, kNR, false, next, nullptr);
                for (int64_t r = 0; r < mm; ++r)
                  for (int64_t q = 0; q < nn; ++q) c[r * ldc + q] = (first ? 0.0f : c[r * ldc + q]) + tmp[r * kNR + q];
                if (last && epi) epilogue(ep, C, ldc, ic + i, mm, jc + j, nn);
              }
            }
          }
        }
      }
    }
  }
#else
  (void)A, (void)lda, (void)W, (void)ldw, (void)C, (void)ldc, (void)ep;
#endif
}

}  // namespace pe::cpu
