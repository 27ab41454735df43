// The f32 attention's two products for the small head dimensions of ESM-2 (16 for 8M, 24 for 35M, 32
// for 150M) with AVX2 + FMA, in registers:
//   S = scale Q K^T   (attn_qk_small: K packed once per sequence and head in tiles of 16 keys, each
//                      [D, 16], zero-padded; a register tile of 6 query rows x 16 keys, D unrolled)
//   O = diag(inv) P V (attn_pv_small: a tile of R query rows x the whole head, one pass over the keys,
//                      P read in place, V packed contiguous, the softmax's 1 / sum applied at the end)
// oneDNN's sgemm runs these shapes (K = 16..32 for the first, N = 16..32 for the second) at about 40 %
// of its peak on this core: it packs a whole operand block for a product only 2-4 vectors deep or
// wide. Both kernels form the same sums as a GEMM (f32 products, f32 accumulation in d or key order).
#pragma once

#include <cstdint>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#include "kernels/cpu/avx2_util.h"
#define PE_CPU_ATTN_SMALL_AVX2 1
#endif

namespace pe::cpu {

// Whether the kernels below take head dimension D on this build (AVX2 + FMA and D in {16, 24, 32}).
inline bool attn_small_supported(int64_t D) {
#if PE_CPU_ATTN_SMALL_AVX2
  return D == 16 || D == 24 || D == 32;
#else
  (void)D;
  return false;
#endif
}

// Keys of the packed K panel: nk rounded up to the 16-key tile.
inline int64_t attn_small_keys_padded(int64_t nk) { return (nk + 15) / 16 * 16; }

// K's rows j < nk (row stride ld) packed for attn_qk_small, tile by tile of 16 keys, each tile d-major:
// Kp[(j / 16) * 16 D + d * 16 + j % 16] = K[j * ld + d]; keys nk <= j < attn_small_keys_padded(nk) are 0.
// Every tile the kernel reads is then one contiguous 16 D block (a row-major K^T with its row stride
// a multiple of 256 bytes maps every d of a tile onto the same few L1 sets).
// V's rows j < nk (row stride ld) as one contiguous [nk, D] block: the heads of a [tokens, H * D] row
// are H * D * 4 bytes apart, and at 1,280 bytes (8M: 20 x 16) the keys of one head fall on 16 of
// L1's 64 sets, so attn_pv_small would reload them from L2 for every tile of query rows.
inline void attn_pack_v(const float* V, int64_t ld, int64_t nk, int64_t D, float* Vp) {
  for (int64_t j = 0; j < nk; ++j)
    for (int64_t d = 0; d < D; ++d) Vp[j * D + d] = V[j * ld + d];
}

#if PE_CPU_ATTN_SMALL_AVX2
namespace detail {
using avx2::in_register;

// The loops over r, k and d unroll fully (the pragmas make GCC do it before it decides where the
// accumulators live: without them it kept them in memory and stored all of them every step).
template <int R, int D>
inline void qk_tile(const float* Q, int64_t ldq, const float* Kp, float* S, int64_t lds, __m256 sc) {
  __m256 acc[R][2];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
#pragma GCC unroll 32
  for (int d = 0; d < D; ++d) {
    __m256 k0 = _mm256_loadu_ps(Kp + d * 16), k1 = _mm256_loadu_ps(Kp + d * 16 + 8);
    in_register(k0);
    in_register(k1);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m256 q = _mm256_broadcast_ss(Q + r * ldq + d);
      acc[r][0] = _mm256_fmadd_ps(q, k0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(q, k1, acc[r][1]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    _mm256_storeu_ps(S + r * lds, _mm256_mul_ps(acc[r][0], sc));
    _mm256_storeu_ps(S + r * lds + 8, _mm256_mul_ps(acc[r][1], sc));
  }
}

template <int R, int D>
inline void qk_rows(const float* Q, int64_t ldq, const float* Kp, int64_t tiles, float* S, int64_t lds, __m256 sc) {
  for (int64_t t = 0; t < tiles; ++t) qk_tile<R, D>(Q, ldq, Kp + t * 16 * D, S + t * 16, lds, sc);
}

template <int D>
inline void qk_all(const float* Q, int64_t ldq, const float* Kp, int64_t nk, float* S, int64_t lds, int64_t n,
                   float scale) {
  const __m256 sc = _mm256_set1_ps(scale);
  const int64_t tiles = attn_small_keys_padded(nk) / 16;
  int64_t i = 0;
  for (; i + 6 <= n; i += 6) qk_rows<6, D>(Q + i * ldq, ldq, Kp, tiles, S + i * lds, lds, sc);
  switch (n - i) {
    case 5: qk_rows<5, D>(Q + i * ldq, ldq, Kp, tiles, S + i * lds, lds, sc); break;
    case 4: qk_rows<4, D>(Q + i * ldq, ldq, Kp, tiles, S + i * lds, lds, sc); break;
    case 3: qk_rows<3, D>(Q + i * ldq, ldq, Kp, tiles, S + i * lds, lds, sc); break;
    case 2: qk_rows<2, D>(Q + i * ldq, ldq, Kp, tiles, S + i * lds, lds, sc); break;
    case 1: qk_rows<1, D>(Q + i * ldq, ldq, Kp, tiles, S + i * lds, lds, sc); break;
    default: break;
  }
}

template <int R, int NV>
inline void pv_tile(const float* P, int64_t ldp, const float* V, int64_t ldv, float* O, int64_t ldo, int64_t nk,
                    const float* inv) {
  __m256 acc[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int k = 0; k < NV; ++k) acc[r][k] = _mm256_setzero_ps();
  for (int64_t j = 0; j < nk; ++j) {
    __m256 v[NV];
#pragma GCC unroll 16
    for (int k = 0; k < NV; ++k) {
      v[k] = _mm256_loadu_ps(V + j * ldv + 8 * k);
      in_register(v[k]);
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m256 p = _mm256_broadcast_ss(P + r * ldp + j);
#pragma GCC unroll 16
      for (int k = 0; k < NV; ++k) acc[r][k] = _mm256_fmadd_ps(p, v[k], acc[r][k]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    const __m256 s = _mm256_set1_ps(inv[r]);
#pragma GCC unroll 16
    for (int k = 0; k < NV; ++k) _mm256_storeu_ps(O + r * ldo + 8 * k, _mm256_mul_ps(acc[r][k], s));
  }
}

template <int R, int NV>
inline void pv_all(const float* P, int64_t ldp, const float* V, int64_t ldv, float* O, int64_t ldo, int64_t n,
                   int64_t nk, const float* inv) {
  int64_t i = 0;
  for (; i + R <= n; i += R) pv_tile<R, NV>(P + i * ldp, ldp, V, ldv, O + i * ldo, ldo, nk, inv + i);
  for (; i < n; ++i) pv_tile<1, NV>(P + i * ldp, ldp, V, ldv, O + i * ldo, ldo, nk, inv + i);
}
}  // namespace detail
#endif

#if PE_CPU_ATTN_SMALL_AVX2
namespace detail {
// Kp's 8 keys j0 .. j0+7 (inside one tile) at dims d0 .. d0+7 from 8 rows of K: one 8 x 8 register
// transpose, each of its rows (dims d0 + d) stored 16 floats apart in the tile.
inline void pack_k_8x8(const float* K, int64_t ld, float* dst) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(K + i * ld);
  avx2::transpose8(r, t);
  for (int i = 0; i < 8; ++i) _mm256_storeu_ps(dst + i * 16, t[i]);
}
}  // namespace detail
#endif

// K's rows j < nk (row stride ld) packed for attn_qk_small, tile by tile of 16 keys, each tile d-major:
// Kp[(j / 16) * 16 D + d * 16 + j % 16] = K[j * ld + d]; keys nk <= j < attn_small_keys_padded(nk) are 0.
// Every tile the kernel reads is then one contiguous 16 D block (a row-major K^T with its row stride
// a multiple of 256 bytes maps every d of a tile onto the same few L1 sets).
inline void attn_pack_k(const float* K, int64_t ld, int64_t nk, int64_t D, float* Kp) {
  const int64_t padded = attn_small_keys_padded(nk);
  int64_t j = 0;
#if PE_CPU_ATTN_SMALL_AVX2
  if (D % 8 == 0)
    for (; j + 8 <= nk; j += 8)
      for (int64_t d = 0; d < D; d += 8) detail::pack_k_8x8(K + j * ld + d, ld, Kp + (j / 16) * 16 * D + d * 16 + j % 16);
#endif
  for (; j < padded; ++j) {
    float* col = Kp + (j / 16) * 16 * D + j % 16;
    if (j < nk)
      for (int64_t d = 0; d < D; ++d) col[d * 16] = K[j * ld + d];
    else
      for (int64_t d = 0; d < D; ++d) col[d * 16] = 0.0f;
  }
}

// S[i * lds + j] = scale * sum_d Q[i * ldq + d] K[j, d] for i < n and every j < attn_small_keys_padded(nk)
// (keys past nk: whatever the panel holds there, 0 from attn_pack_k); Kp from attn_pack_k (of at least
// nk keys), lds >= attn_small_keys_padded(nk). D as attn_small_supported says.
inline void attn_qk_small(const float* Q, int64_t ldq, const float* Kp, int64_t nk, float* S, int64_t lds, int64_t n,
                          int64_t D, float scale) {
#if PE_CPU_ATTN_SMALL_AVX2
  switch (D) {
    case 16: detail::qk_all<16>(Q, ldq, Kp, nk, S, lds, n, scale); return;
    case 24: detail::qk_all<24>(Q, ldq, Kp, nk, S, lds, n, scale); return;
    case 32: detail::qk_all<32>(Q, ldq, Kp, nk, S, lds, n, scale); return;
    default: break;
  }
#endif
  // Any other D (or no AVX2): plain loops, the same sums.
  const int64_t padded = attn_small_keys_padded(nk);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < padded; ++j) {
      float a = 0.0f;
      for (int64_t d = 0; d < D; ++d) a += Q[i * ldq + d] * Kp[(j / 16) * 16 * D + d * 16 + j % 16];
      S[i * lds + j] = a * scale;
    }
}

// O[i * ldo + d] = inv[i] * sum_j P[i * ldp + j] V[j * ldv + d] for i < n, j < nk, d < D; D as
// attn_small_supported says.
inline void attn_pv_small(const float* P, int64_t ldp, const float* V, int64_t ldv, float* O, int64_t ldo, int64_t n,
                          int64_t nk, int64_t D, const float* inv) {
#if PE_CPU_ATTN_SMALL_AVX2
  // R x D/8 accumulators + D/8 vectors of V + one broadcast: at most the 16 registers.
  switch (D) {
    case 16: detail::pv_all<6, 2>(P, ldp, V, ldv, O, ldo, n, nk, inv); return;
    case 24: detail::pv_all<4, 3>(P, ldp, V, ldv, O, ldo, n, nk, inv); return;
    case 32: detail::pv_all<2, 4>(P, ldp, V, ldv, O, ldo, n, nk, inv); return;
    default: break;
  }
#endif
  for (int64_t i = 0; i < n; ++i) {
    float* o = O + i * ldo;
    for (int64_t d = 0; d < D; ++d) o[d] = 0.0f;
    for (int64_t j = 0; j < nk; ++j) {
      const float p = P[i * ldp + j];
      for (int64_t d = 0; d < D; ++d) o[d] += p * V[j * ldv + d];
    }
    for (int64_t d = 0; d < D; ++d) o[d] *= inv[i];
  }
}

}  // namespace pe::cpu
