// Softmax row pieces for f32 on the CPU: the row maximum and exp(s - max) with its sum, in one pass each.
// The attention's softmax is 10 % of an ESM-2 8M embedding at one thread (2.5 billion exponentials in
// the benchmark's 256 proteins); Eigen's packet exp handles the whole float range (four-way split
// ldexp, NaN/inf fix-ups), about 30 instructions per 8 values, plus a second pass for the sum.
// Here the argument is known to be <= 0 (s - max), so 2^m never overflows, and the exp, the
// store and the sum are one loop: about 18 instructions per 8 values with AVX2 + FMA.
//
// exp_nonpos_f32: Cephes' degree-5 polynomial on r = x - m ln 2 (|r| <= ln2 / 2, the same polynomial
// and error as Eigen's and glibc-class accuracy, ~1 ulp), times 2^m built in the exponent bits.
// Arguments below -86 (exp < 5e-38, below f32 resolution next to the row maximum exp(0) = 1) and
// -inf (masked keys) give exactly 0; NaN gives NaN (so a NaN logit, or +inf - +inf, propagates to the
// sum and the output as in the reference). Valid for x <= 88 (the backward's s - lse may be a rounding
// above 0).
// Without AVX2 + FMA (the portable build) the same functions run Eigen's vectorised expressions.
#pragma once

#include <Eigen/Core>

#include <cmath>
#include <cstdint>
#include <limits>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define PE_CPU_VEC_EXP_AVX2 1
#endif

namespace pe::cpu {

#if PE_CPU_VEC_EXP_AVX2
// exp(x) for 8 values x <= 88 (x < -86 and -inf -> 0, NaN -> NaN).
inline __m256 exp_nonpos_f32x8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-86.0f);
  const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
  // 1.5 * 2^23: adding it rounds x log2 e to the nearest integer m, held in the low mantissa bits.
  const __m256 magic = _mm256_set1_ps(12582912.0f);
  const __m256 ln2_hi = _mm256_set1_ps(0.693359375f);
  const __m256 ln2_lo = _mm256_set1_ps(-2.12194440e-4f);
  const __m256 tiny = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);  // exp below 5e-38 (and -inf): exactly 0
  __m256 xc = _mm256_max_ps(x, lo);
  __m256 t = _mm256_fmadd_ps(xc, log2e, magic);
  __m256 m = _mm256_sub_ps(t, magic);
  __m256 r = _mm256_fnmadd_ps(m, ln2_hi, xc);
  r = _mm256_fnmadd_ps(m, ln2_lo, r);
  // Cephes expf: 1 + r + r^2 (p5 + r (p4 + r (p3 + r (p2 + r (p1 + r p0))))), Estrin-paired.
  const __m256 r2 = _mm256_mul_ps(r, r);
  __m256 a = _mm256_fmadd_ps(_mm256_set1_ps(1.9875691500E-4f), r, _mm256_set1_ps(1.3981999507E-3f));
  __m256 b = _mm256_fmadd_ps(_mm256_set1_ps(8.3334519073E-3f), r, _mm256_set1_ps(4.1665795894E-2f));
  __m256 c = _mm256_fmadd_ps(_mm256_set1_ps(1.6666665459E-1f), r, _mm256_set1_ps(5.0000001201E-1f));
  a = _mm256_fmadd_ps(a, r2, b);
  a = _mm256_fmadd_ps(a, r2, c);
  __m256 y = _mm256_fmadd_ps(a, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // 2^m: m sits in the low bits of t's mantissa; shifted into the exponent field (two's complement,
  // modulo 2^32) and added to y's bits. y is in [0.7, 1.5] and -124 <= m <= 127, so the result is
  // normal.
  __m256i scale = _mm256_slli_epi32(_mm256_castps_si256(t), 23);
  y = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(y), scale));
  y = _mm256_andnot_ps(tiny, y);
  return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

// y[i] = exp(x[i] - shift) for the last rest < 8 values of a row, through the same function (padded
// with -inf, whose exp is 0); returns the 8 lanes (the padding lanes 0). y may be x.
inline __m256 exp_tail_f32x8(const float* x, float* y, int64_t rest, __m256 shift) {
  alignas(32) float buf[8];
  for (int64_t i = 0; i < 8; ++i) buf[i] = i < rest ? x[i] : -std::numeric_limits<float>::infinity();
  const __m256 e = exp_nonpos_f32x8(_mm256_sub_ps(_mm256_load_ps(buf), shift));
  _mm256_store_ps(buf, e);
  for (int64_t i = 0; i < rest; ++i) y[i] = buf[i];
  return e;
}
#endif

// y[j] = exp(x[j]) for j < n, x[j] <= 88 (x < -86 and -inf -> 0, NaN -> NaN); y may be x.
inline void exp_f32(const float* x, float* y, int64_t n) {
  int64_t j = 0;
#if PE_CPU_VEC_EXP_AVX2
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(y + j, exp_nonpos_f32x8(_mm256_loadu_ps(x + j)));
  if (j < n) exp_tail_f32x8(x + j, y + j, n - j, _mm256_setzero_ps());
#else
  for (; j < n; ++j) y[j] = std::exp(x[j]);
#endif
}

// Largest value of s[0 .. n) (-inf for n = 0; NaN values are skipped: exp_shift_sum_f32 propagates them).
inline float row_max_f32(const float* s, int64_t n) {
  int64_t j = 0;
  float mx = -std::numeric_limits<float>::infinity();
#if PE_CPU_VEC_EXP_AVX2
  if (n >= 8) {
    __m256 vm = _mm256_set1_ps(mx);
    for (; j + 8 <= n; j += 8) vm = _mm256_max_ps(_mm256_loadu_ps(s + j), vm);  // a NaN load keeps vm
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, vm);
    for (float v : lanes) mx = v > mx ? v : mx;
  }
#endif
  for (; j < n; ++j) mx = s[j] > mx ? s[j] : mx;
  return mx;
}

// s[j] = exp(s[j] - mx) for j < n, returning the sum of the new values. Needs s[j] - mx <= 88 (mx the
// row maximum or the log-sum-exp).
inline float exp_shift_sum_f32(float* s, int64_t n, float mx) {
#if PE_CPU_VEC_EXP_AVX2
  const __m256 vmx = _mm256_set1_ps(mx);
  __m256 acc = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 e = exp_nonpos_f32x8(_mm256_sub_ps(_mm256_loadu_ps(s + j), vmx));
    _mm256_storeu_ps(s + j, e);
    acc = _mm256_add_ps(acc, e);
  }
  if (j < n) acc = _mm256_add_ps(acc, exp_tail_f32x8(s + j, s + j, n - j, vmx));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc);
  return ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
#else
  Eigen::Map<Eigen::ArrayXf> row(s, Eigen::Index(n));
  row = (row - mx).exp();
  return row.sum();
#endif
}

}  // namespace pe::cpu
