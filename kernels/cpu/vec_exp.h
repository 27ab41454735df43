// Softmax row pieces for f32 on the CPU: the row maximum, exp(s - max) with its sum, and the same in
// base 2, in one pass each. The attention's softmax was 10 % of an ESM-2 8M embedding at one thread
// (2.5 billion exponentials in the benchmark's 256 proteins); Eigen's packet exp handles the whole
// float range (four-way split ldexp, NaN/inf fix-ups), about 30 instructions per 8 values, plus a
// second pass for the sum. Here the argument is known to be small (s - max <= 0 plus a rounding), so
// the exp, the store and the sum are one loop.
//
// On this project's AMD core the loop is bound by the two FMA/multiply pipes, not by latency
// (unrolling does not help), so what counts is the number of multiply-class operations per 8 values:
//  - exp_f32x8 (natural base): Cephes' degree-5 polynomial on r = x - m ln 2 (|r| <= ln2 / 2, two-step
//    ln 2 for an exact reduction; ~1 ulp, the same polynomial and error as Eigen's), 11 of them.
//  - exp2_f32x8 (base 2): r = x - m is exact, a degree-6 minimax polynomial for 2^r on [-1/2, 1/2]
//    (relative error 9e-8 evaluated in f32), 8 of them: about 30 % faster. The attention folds log2 e
//    into its scale, so its scores are already in base 2 (exp(s) = 2^(s log2 e)).
// Both times 2^m as a float multiply by 2^m built in the exponent bits: m = -127 builds +0, so
// arguments below about -126.5 (base 2; -87.7 natural: results below f32's smallest normal 1.2e-38)
// and -inf (masked keys) give exactly 0, a little above that a subnormal (or 0 with flush-to-zero).
// The multiply also carries a NaN argument through (any payload), so a NaN logit, or +inf - +inf,
// propagates to the sum and the output as in the reference. The clamp max(lo, x) keeps NaN (the
// operand order matters: vmaxps returns its second operand when either is NaN).
// Valid up to x <= 88 (natural; the backward's s - lse may be a rounding above 0) and 127 (base 2).
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
namespace detail {
// 1.5 * 2^23: adding it rounds a float in [-2^22, 2^22] to the nearest integer m, held in the low
// mantissa bits of the sum.
inline __m256 round_magic() { return _mm256_set1_ps(12582912.0f); }

// 2^m for t = round_magic() + m, -127 <= m <= 127: m shifted into the exponent field (two's
// complement, modulo 2^32) plus the bias; m = -127 gives the bits of +0.
inline __m256 pow2_of_rounded(__m256 t) {
  return _mm256_castsi256_ps(
      _mm256_add_epi32(_mm256_slli_epi32(_mm256_castps_si256(t), 23), _mm256_set1_epi32(127 << 23)));
}
}  // namespace detail

// exp(x) for 8 values x <= 88 (x below about -87.7 and -inf -> 0, NaN -> NaN).
inline __m256 exp_f32x8(__m256 x) {
  const __m256 magic = detail::round_magic();
  const __m256 xc = _mm256_max_ps(_mm256_set1_ps(-88.0f), x);  // NaN stays NaN
  const __m256 t = _mm256_fmadd_ps(xc, _mm256_set1_ps(1.44269504088896341f), magic);
  const __m256 m = _mm256_sub_ps(t, magic);
  __m256 r = _mm256_fnmadd_ps(m, _mm256_set1_ps(0.693359375f), xc);
  r = _mm256_fnmadd_ps(m, _mm256_set1_ps(-2.12194440e-4f), r);
  // Cephes expf: 1 + r + r^2 (p5 + r (p4 + r (p3 + r (p2 + r (p1 + r p0))))), Estrin-paired.
  const __m256 r2 = _mm256_mul_ps(r, r);
  __m256 a = _mm256_fmadd_ps(_mm256_set1_ps(1.9875691500E-4f), r, _mm256_set1_ps(1.3981999507E-3f));
  __m256 b = _mm256_fmadd_ps(_mm256_set1_ps(8.3334519073E-3f), r, _mm256_set1_ps(4.1665795894E-2f));
  __m256 c = _mm256_fmadd_ps(_mm256_set1_ps(1.6666665459E-1f), r, _mm256_set1_ps(5.0000001201E-1f));
  a = _mm256_fmadd_ps(a, r2, b);
  a = _mm256_fmadd_ps(a, r2, c);
  const __m256 y = _mm256_fmadd_ps(a, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  return _mm256_mul_ps(y, detail::pow2_of_rounded(t));
}

// 2^x for 8 values x <= 127 (x below about -126.5 and -inf -> 0, NaN -> NaN).
inline __m256 exp2_f32x8(__m256 x) {
  const __m256 magic = detail::round_magic();
  const __m256 xc = _mm256_max_ps(_mm256_set1_ps(-127.0f), x);  // NaN stays NaN
  const __m256 t = _mm256_add_ps(xc, magic);
  const __m256 r = _mm256_sub_ps(xc, _mm256_sub_ps(t, magic));  // exact, |r| <= 1/2
  // 1 + r (c1 + c2 r + ... + c6 r^5), minimax for 2^r on [-1/2, 1/2] (relative, c0 = 1 fixed), Estrin.
  const __m256 r2 = _mm256_mul_ps(r, r);
  __m256 a = _mm256_fmadd_ps(_mm256_set1_ps(1.5353361959569156e-4f), r, _mm256_set1_ps(1.3398875016719103e-3f));
  __m256 b = _mm256_fmadd_ps(_mm256_set1_ps(9.6184369176626205e-3f), r, _mm256_set1_ps(5.5503323674201965e-2f));
  __m256 c = _mm256_fmadd_ps(_mm256_set1_ps(2.4022647738456726e-1f), r, _mm256_set1_ps(6.9314718246459961e-1f));
  a = _mm256_fmadd_ps(a, r2, b);
  a = _mm256_fmadd_ps(a, r2, c);
  const __m256 y = _mm256_fmadd_ps(a, r, _mm256_set1_ps(1.0f));
  return _mm256_mul_ps(y, detail::pow2_of_rounded(t));
}

// y[i] = f(x[i] - shift) for the last rest < 8 values of a row, through the same function (padded
// with -inf, whose exp is 0); returns the 8 lanes (the padding lanes 0). y may be x.
template <typename F>
inline __m256 tail_f32x8(F f, const float* x, float* y, int64_t rest, __m256 shift) {
  alignas(32) float buf[8];
  for (int64_t i = 0; i < 8; ++i) buf[i] = i < rest ? x[i] : -std::numeric_limits<float>::infinity();
  const __m256 e = f(_mm256_sub_ps(_mm256_load_ps(buf), shift));
  _mm256_store_ps(buf, e);
  for (int64_t i = 0; i < rest; ++i) y[i] = buf[i];
  return e;
}

namespace detail {
// s[j] = f(s[j] - shift) for j < n, returning the sum of the new values (8 lanes added pairwise).
template <typename F>
inline float shift_sum_f32(F f, float* s, int64_t n, float shift) {
  const __m256 vs = _mm256_set1_ps(shift);
  __m256 acc = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 e = f(_mm256_sub_ps(_mm256_loadu_ps(s + j), vs));
    _mm256_storeu_ps(s + j, e);
    acc = _mm256_add_ps(acc, e);
  }
  if (j < n) acc = _mm256_add_ps(acc, tail_f32x8(f, s + j, s + j, n - j, vs));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc);
  return ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
}
}  // namespace detail
#endif

// y[j] = exp(x[j]) for j < n, x[j] <= 88 (below about -87.7 and -inf -> 0, NaN -> NaN); y may be x.
inline void exp_f32(const float* x, float* y, int64_t n) {
  int64_t j = 0;
#if PE_CPU_VEC_EXP_AVX2
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(y + j, exp_f32x8(_mm256_loadu_ps(x + j)));
  if (j < n) tail_f32x8([](__m256 v) { return exp_f32x8(v); }, x + j, y + j, n - j, _mm256_setzero_ps());
#else
  for (; j < n; ++j) y[j] = std::exp(x[j]);
#endif
}

// Largest value of s[0 .. n) (-inf for n = 0; NaN values are skipped: the exp passes propagate them).
inline float row_max_f32(const float* s, int64_t n) {
  int64_t j = 0;
  float mx = -std::numeric_limits<float>::infinity();
#if PE_CPU_VEC_EXP_AVX2
  if (n >= 8) {
    // Four running maxima: one would wait on the previous max every 8 values.
    __m256 vm[4];
    for (__m256& v : vm) v = _mm256_set1_ps(mx);
    for (; j + 32 <= n; j += 32)
      for (int u = 0; u < 4; ++u) vm[u] = _mm256_max_ps(_mm256_loadu_ps(s + j + 8 * u), vm[u]);  // NaN keeps vm
    for (; j + 8 <= n; j += 8) vm[0] = _mm256_max_ps(_mm256_loadu_ps(s + j), vm[0]);
    const __m256 all = _mm256_max_ps(_mm256_max_ps(vm[0], vm[1]), _mm256_max_ps(vm[2], vm[3]));
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, all);
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
  return detail::shift_sum_f32([](__m256 x) { return exp_f32x8(x); }, s, n, mx);
#else
  Eigen::Map<Eigen::ArrayXf> row(s, Eigen::Index(n));
  row = (row - mx).exp();
  return row.sum();
#endif
}

// s[j] = 2^(s[j] - mx) for j < n, returning the sum of the new values. Needs s[j] - mx <= 127.
inline float exp2_shift_sum_f32(float* s, int64_t n, float mx) {
#if PE_CPU_VEC_EXP_AVX2
  return detail::shift_sum_f32([](__m256 x) { return exp2_f32x8(x); }, s, n, mx);
#else
  Eigen::Map<Eigen::ArrayXf> row(s, Eigen::Index(n));
  row = ((row - mx) * 0.693147180559945309f).exp();
  return row.sum();
#endif
}

}  // namespace pe::cpu
