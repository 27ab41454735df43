// kernels/cpu/attn_small.h (the f32 attention's Q K^T and P V for head dims 16 / 24 / 32) against
// float64 sums: every row count through the register tiles and their tails, key counts through the
// 16-key tiles of the packed K and their zero padding, strided rows as the attention passes them (one head inside
// [tokens, heads * D]), outputs poisoned with NaN beforehand so a skipped element shows, and nothing
// written outside the output rows. Head dims the kernels do not take run the plain loops: same checks.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/attn_small.h"

using namespace pe::cpu;

namespace {
std::vector<float> randv(size_t n, std::mt19937& g) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}
const float kNaN = std::numeric_limits<float>::quiet_NaN();
}  // namespace

TEST_SUITE("unit") {
  TEST_CASE("attn_qk_small equals float64 scale Q K^T with zero padded keys") {
    std::mt19937 g(5);
    for (int64_t D : {16, 24, 32, 20}) {
      const int64_t H = 3, HD = H * D, h = 1;  // one head of a [tokens, H * D] layout
      for (int64_t n : {1, 2, 5, 6, 7, 12, 13, 130}) {
        for (int64_t nk : {1, 3, 15, 16, 17, 40, 257}) {
          INFO("D ", D, " n ", n, " nk ", nk);
          std::vector<float> q = randv(size_t(n * HD), g), k = randv(size_t(nk * HD), g);
          const int64_t ldk = attn_small_keys_padded(nk);
          CHECK(ldk % 16 == 0);
          CHECK(ldk >= nk);
          CHECK(ldk < nk + 16);
          std::vector<float> kp(size_t(D * ldk) + 7, kNaN);
          attn_pack_k(k.data() + h * D, HD, nk, D, kp.data());
          CHECK(std::isnan(kp.back()));  // nothing packed past the padded keys
          const int64_t lds = ldk + 5;  // a row stride wider than the panel: the gap stays untouched
          std::vector<float> S(size_t(n * lds), kNaN);
          const float scale = 0.37f;
          attn_qk_small(q.data() + h * D, HD, kp.data(), nk, S.data(), lds, n, D, scale);
          double worst = 0;
          bool pad_zero = true, gap_untouched = true;
          for (int64_t i = 0; i < n; ++i) {
            for (int64_t j = 0; j < nk; ++j) {
              double ref = 0, mag = 0;
              for (int64_t d = 0; d < D; ++d) {
                double p = double(q[size_t(i * HD + h * D + d)]) * double(k[size_t(j * HD + h * D + d)]);
                ref += p;
                mag += std::abs(p);
              }
              ref *= double(scale);
              worst = std::max(worst, std::abs(double(S[size_t(i * lds + j)]) - ref) / (mag * double(scale)));
            }
            for (int64_t j = nk; j < ldk; ++j) pad_zero &= S[size_t(i * lds + j)] == 0.0f;
            for (int64_t j = ldk; j < lds; ++j) gap_untouched &= std::isnan(S[size_t(i * lds + j)]);
          }
          CHECK(worst <= 4e-7 * double(D));  // f32 accumulation over D products, relative to sum |q k|
          CHECK(pad_zero);
          CHECK(gap_untouched);
        }
      }
    }
  }

  TEST_CASE("attn_pv_small equals float64 diag(inv) P V and writes only the head's columns") {
    std::mt19937 g(9);
    for (int64_t D : {16, 24, 32, 20}) {
      const int64_t H = 3, HD = H * D, h = 2;
      for (int64_t n : {1, 2, 3, 4, 5, 6, 7, 11, 13, 129}) {
        for (int64_t nk : {1, 2, 17, 64, 300}) {
          INFO("D ", D, " n ", n, " nk ", nk);
          const int64_t ldp = attn_small_keys_padded(nk) + 3;
          std::vector<float> p = randv(size_t(n * ldp), g), v = randv(size_t(nk * HD), g), inv = randv(size_t(n), g);
          for (float& x : p) x = std::abs(x);  // softmax numerators are >= 0
          std::vector<float> o(size_t(n * HD), kNaN), vp(size_t(nk * D) + 3, kNaN);
          attn_pack_v(v.data() + h * D, HD, nk, D, vp.data());
          CHECK(std::isnan(vp.back()));
          attn_pv_small(p.data(), ldp, vp.data(), D, o.data() + h * D, HD, n, nk, D, inv.data());
          double worst = 0;
          bool others_untouched = true;
          for (int64_t i = 0; i < n; ++i) {
            for (int64_t d = 0; d < D; ++d) {
              double ref = 0, mag = 0;
              for (int64_t j = 0; j < nk; ++j) {
                double t = double(p[size_t(i * ldp + j)]) * double(v[size_t(j * HD + h * D + d)]);
                ref += t;
                mag += std::abs(t);
              }
              double got = double(o[size_t(i * HD + h * D + d)]);
              worst = std::max(worst, std::abs(got - ref * double(inv[size_t(i)])) / (mag * std::abs(double(inv[size_t(i)]))));
            }
            for (int64_t c = 0; c < HD; ++c)
              if (c < h * D || c >= (h + 1) * D) others_untouched &= std::isnan(o[size_t(i * HD + c)]);
          }
          CHECK(worst <= 2e-7 * std::sqrt(double(nk)) + 5e-7);  // f32 sums over nk terms, relative to sum |p v|
          CHECK(others_untouched);
        }
      }
    }
  }

  TEST_CASE("attn_small_supported names the head dims with register kernels") {
#if PE_CPU_ATTN_SMALL_AVX2
    for (int64_t D : {16, 24, 32}) CHECK(attn_small_supported(D));
#endif
    for (int64_t D : {0, 8, 20, 40, 64}) CHECK_FALSE(attn_small_supported(D));
  }
}
