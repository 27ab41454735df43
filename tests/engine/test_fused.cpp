// The fused ops (autograd/fused.h) on the CPU against their composition references in float64:
// attention() of models/layers.h, info_nce and masked_cross_entropy of losses/losses.h. Random
// (never zero) inputs, odd sizes, masks with empty and full rows, lengths 1 to 1024, Lq != Lk,
// scale 1 and 1/sqrt(D); packed variable-length batches against the padded result; float64
// central-difference gradient checks at small sizes.
#include <doctest/doctest.h>

#include "tests/common/compare.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "autograd/fused.h"
#include "autograd/gradcheck.h"
#include "autograd/kv_cache.h"
#include "losses/losses.h"
#include "kernels/cpu/cpu_api.h"
#include "models/layers.h"

using namespace pe;
using pe::testing::rel_err;

namespace {


Tensor leaf(const Shape& s, Generator& gen, double std = 1.0) {
  return randn(s, gen, DType::F64, Device::cpu(), 0.0, std).requires_grad_(true);
}

// Key mask [B, Lk]: kind 0 none, 1 random with batch 0 empty and batch 1 full, 2 prefix lengths.
Tensor make_mask(int kind, int64_t B, int64_t Lk, Generator& gen) {
  if (kind == 0) return Tensor();
  std::vector<double> m(size_t(B * Lk));
  for (int64_t b = 0; b < B; ++b) {
    int64_t len = 1 + gen.randint(0, Lk);  // prefix length in [1, Lk]
    for (int64_t j = 0; j < Lk; ++j) {
      double v = kind == 1 ? double(gen.randint(0, 10) < 6) : double(j < len);
      if (kind == 1 && b == 0) v = 0;
      if (kind == 1 && b == 1) v = 1;
      m[size_t(b * Lk + j)] = v;
    }
  }
  return Tensor::from_vector(m, {B, Lk});
}

struct AttnCase {
  int64_t B, Lq, Lk, H, D;
  int mask;
  bool inv_sqrt;  // scale 1/sqrt(D), else 1
};

void grads_equal(const std::vector<Tensor>& xs, const std::vector<Tensor>& ga, double tol) {
  for (size_t i = 0; i < xs.size(); ++i) {
    INFO("gradient of input ", i);
    CHECK(rel_err(xs[i].grad(), ga[i]) <= tol);
  }
}

std::vector<Tensor> take_grads(const std::vector<Tensor>& xs) {
  std::vector<Tensor> g;
  for (const Tensor& x : xs) {
    g.push_back(x.grad());
    x.zero_grad();
  }
  return g;
}

}  // namespace

TEST_SUITE("unit") {
  TEST_CASE("flash_attention matches the attention() composition in float64") {
    const AttnCase cases[] = {
        {2, 5, 7, 3, 8, 1, false},     {1, 1, 1, 1, 24, 0, true},     {3, 17, 33, 2, 32, 1, true},
        {2, 64, 48, 2, 64, 2, false},  {2, 9, 130, 1, 128, 1, true},  {2, 1024, 1024, 1, 24, 2, true},
        {1, 1024, 3, 2, 16, 0, false}, {1, 1, 1024, 1, 64, 2, false},
    };
    Generator gen(11);
    for (const AttnCase& c : cases) {
      INFO("B ", c.B, " Lq ", c.Lq, " Lk ", c.Lk, " H ", c.H, " D ", c.D, " mask ", c.mask, " inv_sqrt ", c.inv_sqrt);
      double scale = c.inv_sqrt ? 1.0 / std::sqrt(double(c.D)) : 1.0;
      // Scale 1 with large D would make every softmax one-hot; keep the logits moderate.
      double std_ = c.inv_sqrt ? 1.0 : std::pow(double(c.D), -0.25);
      Tensor q = leaf({c.B, c.Lq, c.H, c.D}, gen, std_), k = leaf({c.B, c.Lk, c.H, c.D}, gen, std_);
      Tensor v = leaf({c.B, c.Lk, c.H, c.D}, gen);
      Tensor mask = make_mask(c.mask, c.B, c.Lk, gen);
      Tensor w = add(rand({c.B, c.Lq, c.H, c.D}, gen, DType::F64), 0.5);
      Tensor ref = attention_reference(q, k, v, mask, scale);
      sum(mul(ref, w)).backward();
      std::vector<Tensor> gref = take_grads({q, k, v});
      Tensor got = flash_attention(q, k, v, mask, scale);
      CHECK(rel_err(got, ref) <= 1e-12);
      sum(mul(got, w)).backward();
      grads_equal({q, k, v}, gref, 1e-11);
      if (c.mask == 1) {  // batch 0 has no real key: zeros, no gradient
        CHECK(std::abs(sum(abs(got.select(0, 0))).item()) == 0.0);
        CHECK(std::abs(sum(abs(q.grad().select(0, 0))).item()) == 0.0);
      }
    }
  }

  TEST_CASE("CPU attention: the blocked path equals the plain loops in float64 and the reference in float32") {
    // Query blocks are 128 rows: lengths above that (and odd ones) exercise several blocks.
    const AttnCase cases[] = {
        {2, 300, 257, 3, 24, 1, true}, {1, 129, 5, 2, 8, 2, false}, {3, 7, 1, 1, 16, 1, true}, {2, 1, 200, 4, 20, 2, true},
        {1, 140, 150, 2, 32, 2, true},  // head dims 16 / 24 / 32: the f32 register kernels (attn_small.h)
    };
    Generator gen(17);
    for (const AttnCase& c : cases) {
      INFO("B ", c.B, " Lq ", c.Lq, " Lk ", c.Lk, " H ", c.H, " D ", c.D, " mask ", c.mask);
      double scale = c.inv_sqrt ? 1.0 / std::sqrt(double(c.D)) : 1.0;
      double std_ = c.inv_sqrt ? 1.0 : std::pow(double(c.D), -0.25);
      Tensor q = leaf({c.B, c.Lq, c.H, c.D}, gen, std_), k = leaf({c.B, c.Lk, c.H, c.D}, gen, std_);
      Tensor v = leaf({c.B, c.Lk, c.H, c.D}, gen);
      Tensor mask = make_mask(c.mask, c.B, c.Lk, gen);
      Tensor w = add(rand({c.B, c.Lq, c.H, c.D}, gen, DType::F64), 0.5);
      bool old = cpu::set_simple_attention(true);
      Tensor simple = flash_attention(q, k, v, mask, scale);
      sum(mul(simple, w)).backward();
      std::vector<Tensor> gsimple = take_grads({q, k, v});
      cpu::set_simple_attention(false);
      Tensor blocked = flash_attention(q, k, v, mask, scale);
      CHECK(rel_err(blocked, simple) <= 1e-13);
      sum(mul(blocked, w)).backward();
      // With one key the q and k gradients vanish in exact arithmetic; judge every gradient against
      // the problem's gradient scale (that of v), not against its own zero.
      double gscale = 1e-30;
      for (double x : gsimple[2].to_double_vector()) gscale = std::max(gscale, std::abs(x));
      std::vector<Tensor> ins = {q, k, v};
      for (size_t i = 0; i < 3; ++i) {
        INFO("gradient of input ", i);
        CHECK(rel_err(ins[i].grad(), gsimple[i], gscale) <= 1e-12);
      }
      // float32 blocked against the float64 result (fp32 tolerance, scaled to the magnitude).
      Tensor q32 = q.detach().to(DType::F32).requires_grad_(true), k32 = k.detach().to(DType::F32).requires_grad_(true);
      Tensor v32 = v.detach().to(DType::F32).requires_grad_(true);
      Tensor o32 = flash_attention(q32, k32, v32, mask, scale);
      CHECK(rel_err(o32, simple) <= 1e-5);
      sum(mul(o32, w.to(DType::F32))).backward();
      std::vector<Tensor> ins32 = {q32, k32, v32};
      for (size_t i = 0; i < 3; ++i) {
        INFO("float32 gradient of input ", i);
        CHECK(rel_err(ins32[i].grad(), gsimple[i], gscale) <= 2e-5);
      }
      cpu::set_simple_attention(old);
    }
  }

  TEST_CASE("flash_attention takes key masks of any dtype and rejects bad shapes") {
    Generator gen(12);
    Tensor q = leaf({2, 3, 1, 8}, gen), k = leaf({2, 4, 1, 8}, gen), v = leaf({2, 4, 1, 8}, gen);
    Tensor mask = Tensor::from_vector(std::vector<double>{1, 0, 2, 1, 0, 0, 1, 1}, {2, 4});
    Tensor a = flash_attention(q, k, v, mask, 0.5);
    Tensor b = flash_attention(q, k, v, mask.to(DType::I64), 0.5);
    Tensor c = flash_attention(q, k, v, mask.to(DType::Bool), 0.5);
    CHECK(rel_err(b, a) == 0.0);
    CHECK(rel_err(c, a) == 0.0);
    CHECK_THROWS_AS(flash_attention(q, k.narrow(3, 0, 4), v, Tensor(), 1.0), Error);
    CHECK_THROWS_AS(flash_attention(q, k, v, mask.narrow(1, 0, 3), 1.0), Error);
  }

  TEST_CASE("flash_attention_varlen equals the padded attention on the same data") {
    Generator gen(13);
    const int64_t H = 2, D = 24;
    struct Lens {
      std::vector<int64_t> q, k;
      bool i32;
    };
    const Lens sets[] = {{{5, 1, 12}, {7, 3, 1}, true}, {{1}, {1}, false}, {{40, 9, 17, 2}, {33, 40, 1, 8}, false}};
    for (const Lens& ls : sets) {
      int64_t B = int64_t(ls.q.size());
      int64_t Lq = *std::max_element(ls.q.begin(), ls.q.end()), Lk = *std::max_element(ls.k.begin(), ls.k.end());
      double scale = 1.0 / std::sqrt(double(D));
      Tensor q = leaf({B, Lq, H, D}, gen), k = leaf({B, Lk, H, D}, gen), v = leaf({B, Lk, H, D}, gen);
      std::vector<double> mask(size_t(B * Lk)), wq(size_t(B * Lq));
      std::vector<int64_t> qrows, krows, cq{0}, ck{0};
      for (int64_t b = 0; b < B; ++b) {
        for (int64_t j = 0; j < Lk; ++j) mask[size_t(b * Lk + j)] = j < ls.k[size_t(b)];
        for (int64_t i = 0; i < ls.q[size_t(b)]; ++i) {
          qrows.push_back(b * Lq + i);
          wq[size_t(b * Lq + i)] = 1;
        }
        for (int64_t j = 0; j < ls.k[size_t(b)]; ++j) krows.push_back(b * Lk + j);
        cq.push_back(cq.back() + ls.q[size_t(b)]);
        ck.push_back(ck.back() + ls.k[size_t(b)]);
      }
      Tensor qi = Tensor::from_vector(qrows, {int64_t(qrows.size())});
      Tensor ki = Tensor::from_vector(krows, {int64_t(krows.size())});
      // Loss weights vanish on padded query rows, so both layouts see the same loss.
      Tensor w = mul(add(rand({B, Lq, H, D}, gen, DType::F64), 0.5), Tensor::from_vector(wq, {B, Lq, 1, 1}));
      Tensor pad = flash_attention(q, k, v, Tensor::from_vector(mask, {B, Lk}), scale);
      sum(mul(pad, w)).backward();
      std::vector<Tensor> gpad = take_grads({q, k, v});

      Tensor cu_q = Tensor::from_vector(cq, {B + 1}), cu_k = Tensor::from_vector(ck, {B + 1});
      if (ls.i32) {
        cu_q = cu_q.to(DType::I32);
        cu_k = cu_k.to(DType::I32);
      }
      auto pack = [&](const Tensor& x, const Tensor& idx, int64_t L) {
        return index_select(x.reshape({B * L, H, D}), 0, idx);
      };
      Tensor packed =
          flash_attention_varlen(pack(q, qi, Lq), pack(k, ki, Lk), pack(v, ki, Lk), cu_q, cu_k, 0, 0, scale);
      CHECK(rel_err(packed, pack(pad.detach(), qi, Lq)) <= 1e-13);
      sum(mul(packed, pack(w, qi, Lq))).backward();
      grads_equal({q, k, v}, gpad, 1e-12);
    }
  }

  TEST_CASE("flash_attention_varlen rejects bad cumulative lengths") {
    Generator gen(14);
    Tensor q = leaf({6, 1, 8}, gen), k = leaf({5, 1, 8}, gen), v = leaf({5, 1, 8}, gen);
    Tensor good_q = Tensor::from_vector(std::vector<int64_t>{0, 2, 6}, {3});
    Tensor good_k = Tensor::from_vector(std::vector<int64_t>{0, 4, 5}, {3});
    CHECK_NOTHROW(flash_attention_varlen(q, k, v, good_q, good_k, 0, 0, 1.0));
    CHECK(rel_err(flash_attention_varlen(q, k, v, good_q, good_k.to(DType::I32), 0, 0, 1.0),
                  flash_attention_varlen(q, k, v, good_q, good_k, 0, 0, 1.0)) == 0.0);  // mixed index types
    CHECK_THROWS_AS(
        flash_attention_varlen(q, k, v, Tensor::from_vector(std::vector<int64_t>{0, 2, 5}, {3}), good_k, 0, 0, 1.0),
        Error);  // does not reach Tq
    CHECK_THROWS_AS(
        flash_attention_varlen(q, k, v, Tensor::from_vector(std::vector<int64_t>{0, 7, 6}, {3}), good_k, 0, 0, 1.0),
        Error);                                                                          // decreasing
    CHECK_THROWS_AS(flash_attention_varlen(q, k, v, good_q, good_k, 2, 0, 1.0), Error);  // max_q below 4
    CHECK_THROWS_AS(
        flash_attention_varlen(q, k, v, good_q, Tensor::from_vector(std::vector<int64_t>{0, 5}, {2}), 0, 0, 1.0),
        Error);  // different batch
  }

  TEST_CASE("fused_info_nce matches info_nce in float64") {
    struct Case {
      int64_t B, D;
      bool groups;
      double logit_scale;
    };
    const Case cases[] = {{1, 5, false, 2.6592}, {7, 16, true, 2.6592}, {64, 33, false, 4.0},
                          {300, 16, true, 3.1},  {9, 8, false, 5.5},    {33, 12, true, 7.0}};
    const double max_scale = std::log(100.0);
    Generator gen(21);
    for (const Case& c : cases) {
      INFO("B ", c.B, " D ", c.D, " groups ", c.groups, " logit scale ", c.logit_scale);
      Tensor praw = leaf({c.B, c.D}, gen), traw = leaf({c.B, c.D}, gen);
      Tensor s = Tensor::scalar(c.logit_scale, DType::F64).requires_grad_(true);
      Tensor group;
      if (c.groups) {
        std::vector<int64_t> g(size_t(c.B));
        for (auto& x : g) x = gen.randint(0, std::max<int64_t>(1, c.B / 2));
        group = Tensor::from_vector(g, {c.B});
      }
      InfoNceResult ref = info_nce(l2_normalize(praw), l2_normalize(traw), s, max_scale, group);
      ref.loss.backward();
      std::vector<Tensor> gref = take_grads({praw, traw, s});
      FusedInfoNce got = fused_info_nce_terms(l2_normalize(praw), l2_normalize(traw), s, max_scale, group);
      CHECK(rel_err(got.loss, ref.loss) <= 1e-13);
      CHECK(rel_err(got.p2t, ref.p2t) <= 1e-13);
      CHECK(rel_err(got.t2p, ref.t2p) <= 1e-13);
      CHECK(rel_err(got.scale, ref.scale) <= 1e-15);
      got.loss.backward();
      grads_equal({praw, traw}, gref, 1e-11);
      if (c.logit_scale > max_scale)
        CHECK(s.grad().item() == 0.0);
      else
        CHECK(rel_err(s.grad(), gref[2]) <= 1e-11);
    }
  }

  TEST_CASE("info_nce_direction over simulated ranks equals fused_info_nce") {
    Generator gen(22);
    const int64_t N = 12, D = 7, ranks = 3, R = N / ranks;
    for (bool groups : {false, true}) {
      INFO("groups ", groups);
      Tensor praw = leaf({N, D}, gen), traw = leaf({N, D}, gen);
      Tensor s = Tensor::scalar(2.0, DType::F64).requires_grad_(true);
      Tensor group =
          groups ? Tensor::from_vector(std::vector<int64_t>{0, 1, 2, 0, 3, 4, 4, 5, 6, 7, 1, 8}, {N}) : Tensor();
      Tensor ref = fused_info_nce(l2_normalize(praw), l2_normalize(traw), s, std::log(100.0), group);
      ref.backward();
      std::vector<Tensor> gref = take_grads({praw, traw, s});
      Tensor P = l2_normalize(praw), T = l2_normalize(traw);
      Tensor total;
      for (int64_t r = 0; r < ranks; ++r) {
        Tensor lr = add(info_nce_direction(P.narrow(0, r * R, R), T, s, std::log(100.0), group, r * R),
                        info_nce_direction(T.narrow(0, r * R, R), P, s, std::log(100.0), group, r * R));
        total = total.defined() ? add(total, lr) : lr;
      }
      total = mul(total, 1.0 / double(ranks));
      CHECK(rel_err(total, ref) <= 1e-13);
      total.backward();
      grads_equal({praw, traw, s}, gref, 1e-11);
    }
  }

  TEST_CASE("fused_masked_cross_entropy matches masked_cross_entropy in float64") {
    struct Case {
      int64_t N, M, d, V;
      bool bias;
    };
    const Case cases[] = {
        {50, 13, 24, 33, true}, {9, 1, 5, 3, false}, {200, 31, 16, 1000, true}, {40, 7, 16, 30522, true}};
    Generator gen(31);
    for (const Case& c : cases) {
      INFO("N ", c.N, " M ", c.M, " d ", c.d, " V ", c.V, " bias ", c.bias);
      Tensor hidden = leaf({c.N, c.d}, gen), W = leaf({c.V, c.d}, gen, 0.3);
      Tensor b = c.bias ? leaf({c.V}, gen) : Tensor();
      std::vector<int64_t> rows(size_t(c.N)), tg(size_t(c.M));
      for (int64_t i = 0; i < c.N; ++i) rows[size_t(i)] = i;
      for (int64_t i = 0; i < c.M; ++i) {
        std::swap(rows[size_t(i)], rows[size_t(i + gen.randint(0, c.N - i))]);
        tg[size_t(i)] = gen.randint(0, c.V);
      }
      rows.resize(size_t(c.M));
      Tensor index = Tensor::from_vector(rows, {c.M}), targets = Tensor::from_vector(tg, {c.M});
      auto head = [&](const Tensor& h) { return linear(h, W, b); };
      MaskedCeResult ref = masked_cross_entropy(hidden, index, targets, head);
      ref.loss.backward();
      std::vector<Tensor> params{hidden, W};
      if (c.bias) params.push_back(b);
      std::vector<Tensor> gref = take_grads(params);
      Tensor got = fused_masked_cross_entropy(index_select(hidden, 0, index), W, b, targets);
      CHECK(rel_err(got, ref.loss) <= 1e-13);
      got.backward();
      grads_equal(params, gref, 1e-11);
    }
  }

  TEST_CASE("fused_masked_cross_entropy with no rows and with bad targets") {
    Generator gen(32);
    Tensor h = leaf({0, 4}, gen), W = leaf({5, 4}, gen);
    Tensor z = fused_masked_cross_entropy(h, W, Tensor(), Tensor::from_vector(std::vector<int64_t>{}, {0}));
    CHECK(z.item() == 0.0);
    z.backward();
    CHECK(sum(abs(W.grad())).item() == 0.0);
    Tensor h2 = leaf({2, 4}, gen);
    CHECK_THROWS_AS(fused_masked_cross_entropy(h2, W, Tensor(), Tensor::from_vector(std::vector<int64_t>{1, 5}, {2})),
                    Error);
    CHECK_THROWS_AS(fused_masked_cross_entropy(h2, W, Tensor(), Tensor::from_vector(std::vector<int64_t>{1}, {1})),
                    Error);
    CHECK_THROWS_AS(fused_masked_cross_entropy(h2, leaf({5, 3}, gen), Tensor(),
                                               Tensor::from_vector(std::vector<int64_t>{1, 2}, {2})),
                    Error);
  }
}

TEST_SUITE("gradcheck") {
  TEST_CASE("flash_attention gradcheck with an empty and a partial key mask") {
    Generator gen(41);
    Tensor mask = Tensor::from_vector(std::vector<double>{1, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1}, {3, 4});
    for (double scale : {1.0, 1.0 / std::sqrt(8.0)}) {
      std::vector<Tensor> xs{leaf({3, 3, 2, 8}, gen), leaf({3, 4, 2, 8}, gen), leaf({3, 4, 2, 8}, gen)};
      auto f = [&](const std::vector<Tensor>& x) { return flash_attention(x[0], x[1], x[2], mask, scale); };
      GradcheckResult r = gradcheck(f, xs);
      INFO(r.detail, " max abs err ", r.max_abs_err);
      CHECK(r.ok);
    }
  }

  TEST_CASE("flash_attention_varlen gradcheck") {
    Generator gen(42);
    std::vector<Tensor> xs{leaf({6, 2, 8}, gen), leaf({5, 2, 8}, gen), leaf({5, 2, 8}, gen)};
    Tensor cu_q = Tensor::from_vector(std::vector<int32_t>{0, 1, 1, 6}, {4});
    Tensor cu_k = Tensor::from_vector(std::vector<int32_t>{0, 3, 4, 5}, {4});
    auto f = [&](const std::vector<Tensor>& x) {
      return flash_attention_varlen(x[0], x[1], x[2], cu_q, cu_k, 0, 0, 0.7);
    };
    GradcheckResult r = gradcheck(f, xs);
    INFO(r.detail, " max abs err ", r.max_abs_err);
    CHECK(r.ok);
  }

  TEST_CASE("fused_info_nce gradcheck with groups and the logit scale") {
    Generator gen(43);
    Tensor group = Tensor::from_vector(std::vector<int64_t>{3, 1, 3, 0, 2}, {5});
    for (bool grouped : {false, true}) {
      std::vector<Tensor> xs{leaf({5, 4}, gen), leaf({5, 4}, gen),
                             Tensor::scalar(1.3, DType::F64).requires_grad_(true)};
      auto f = [&](const std::vector<Tensor>& x) {
        return fused_info_nce(l2_normalize(x[0]), l2_normalize(x[1]), x[2], std::log(100.0),
                              grouped ? group : Tensor());
      };
      GradcheckResult r = gradcheck(f, xs);
      INFO("grouped ", grouped, " ", r.detail, " max abs err ", r.max_abs_err);
      CHECK(r.ok);
    }
  }

  TEST_CASE("info_nce_direction gradcheck with a row offset") {
    Generator gen(44);
    Tensor group = Tensor::from_vector(std::vector<int64_t>{0, 1, 0, 2, 1, 3}, {6});
    for (bool grouped : {false, true}) {
      std::vector<Tensor> xs{leaf({3, 4}, gen), leaf({6, 4}, gen),
                             Tensor::scalar(0.8, DType::F64).requires_grad_(true)};
      auto f = [&](const std::vector<Tensor>& x) {
        return info_nce_direction(x[0], x[1], x[2], 4.0, grouped ? group : Tensor(), 2);
      };
      GradcheckResult r = gradcheck(f, xs);
      INFO("grouped ", grouped, " ", r.detail, " max abs err ", r.max_abs_err);
      CHECK(r.ok);
    }
  }

  TEST_CASE("fused_masked_cross_entropy gradcheck") {
    Generator gen(45);
    Tensor targets = Tensor::from_vector(std::vector<int64_t>{8, 0, 3, 3}, {4});
    for (bool with_bias : {true, false}) {
      std::vector<Tensor> xs{leaf({4, 6}, gen), leaf({9, 6}, gen), leaf({9}, gen)};
      auto f = [&](const std::vector<Tensor>& x) {
        return fused_masked_cross_entropy(x[0], x[1], with_bias ? x[2] : Tensor(), targets);
      };
      if (!with_bias) xs[2].requires_grad_(false);
      GradcheckResult r = gradcheck(f, xs);
      INFO("bias ", with_bias, " ", r.detail, " max abs err ", r.max_abs_err);
      CHECK(r.ok);
    }
  }
}

// ------------------------------------------------------------------ causal attention
TEST_SUITE("unit") {
  TEST_CASE("causal flash_attention matches the causal attention() composition in float64") {
    // Lq == Lk, Lq < Lk (the queries are the last positions), Lq > Lk (the first Lq - Lk rows see no
    // key), key masks, and lengths across the 128-row query blocks of the CPU kernel.
    const AttnCase cases[] = {
        {2, 5, 5, 3, 8, 1, false},   {1, 1, 1, 1, 7, 0, true},      {2, 17, 33, 2, 9, 2, true},
        {2, 40, 13, 2, 16, 1, true}, {1, 300, 300, 2, 24, 2, true}, {2, 130, 257, 1, 32, 0, false},
        {1, 257, 129, 1, 12, 0, true},
    };
    Generator gen(61);
    for (const AttnCase& c : cases) {
      INFO("B ", c.B, " Lq ", c.Lq, " Lk ", c.Lk, " H ", c.H, " D ", c.D, " mask ", c.mask);
      double scale = c.inv_sqrt ? 1.0 / std::sqrt(double(c.D)) : 1.0;
      double std_ = c.inv_sqrt ? 1.0 : std::pow(double(c.D), -0.25);
      Tensor q = leaf({c.B, c.Lq, c.H, c.D}, gen, std_), k = leaf({c.B, c.Lk, c.H, c.D}, gen, std_);
      Tensor v = leaf({c.B, c.Lk, c.H, c.D}, gen);
      Tensor mask = make_mask(c.mask, c.B, c.Lk, gen);
      Tensor w = add(rand({c.B, c.Lq, c.H, c.D}, gen, DType::F64), 0.5);
      Tensor ref = attention_reference(q, k, v, mask, scale, true);
      sum(mul(ref, w)).backward();
      std::vector<Tensor> gref = take_grads({q, k, v});
      Tensor got = flash_attention(q, k, v, mask, scale, true);
      CHECK(rel_err(got, ref) <= 1e-12);
      sum(mul(got, w)).backward();
      grads_equal({q, k, v}, gref, 1e-11);
      // Not the non-causal result (without prefix masks, which may hide the same keys).
      if (c.Lk > 1 && c.mask != 2) CHECK(rel_err(flash_attention(q, k, v, mask, scale), got) > 1e-3);
      if (c.Lq > c.Lk) {  // the first Lq - Lk query rows see no key: zeros, no gradient
        Tensor none = got.narrow(1, 0, c.Lq - c.Lk);
        CHECK(sum(abs(none)).item() == 0.0);
        CHECK(sum(abs(q.grad().narrow(1, 0, c.Lq - c.Lk))).item() == 0.0);
      }
      q.zero_grad();
      k.zero_grad();
      v.zero_grad();
    }
  }

  TEST_CASE("CPU causal attention: the blocked path equals the plain loops in float64 and the reference in float32") {
    const AttnCase cases[] = {
        {2, 300, 300, 2, 24, 1, true}, {1, 129, 200, 2, 8, 2, false}, {2, 200, 129, 1, 16, 0, true},
        {3, 7, 1, 1, 16, 1, true},     {1, 1, 300, 2, 20, 2, true},   {1, 256, 256, 1, 5, 0, true},
    };
    Generator gen(62);
    for (const AttnCase& c : cases) {
      INFO("B ", c.B, " Lq ", c.Lq, " Lk ", c.Lk, " H ", c.H, " D ", c.D, " mask ", c.mask);
      double scale = c.inv_sqrt ? 1.0 / std::sqrt(double(c.D)) : 1.0;
      double std_ = c.inv_sqrt ? 1.0 : std::pow(double(c.D), -0.25);
      Tensor q = leaf({c.B, c.Lq, c.H, c.D}, gen, std_), k = leaf({c.B, c.Lk, c.H, c.D}, gen, std_);
      Tensor v = leaf({c.B, c.Lk, c.H, c.D}, gen);
      Tensor mask = make_mask(c.mask, c.B, c.Lk, gen);
      Tensor w = add(rand({c.B, c.Lq, c.H, c.D}, gen, DType::F64), 0.5);
      bool old = cpu::set_simple_attention(true);
      Tensor simple = flash_attention(q, k, v, mask, scale, true);
      sum(mul(simple, w)).backward();
      std::vector<Tensor> gsimple = take_grads({q, k, v});
      cpu::set_simple_attention(false);
      Tensor blocked = flash_attention(q, k, v, mask, scale, true);
      CHECK(rel_err(blocked, simple) <= 1e-13);
      sum(mul(blocked, w)).backward();
      double gscale = 1e-30;
      for (double x : gsimple[2].to_double_vector()) gscale = std::max(gscale, std::abs(x));
      std::vector<Tensor> ins = {q, k, v};
      for (size_t i = 0; i < 3; ++i) {
        INFO("gradient of input ", i);
        CHECK(rel_err(ins[i].grad(), gsimple[i], gscale) <= 1e-12);
      }
      Tensor q32 = q.detach().to(DType::F32).requires_grad_(true), k32 = k.detach().to(DType::F32).requires_grad_(true);
      Tensor v32 = v.detach().to(DType::F32).requires_grad_(true);
      Tensor o32 = flash_attention(q32, k32, v32, mask, scale, true);
      CHECK(rel_err(o32, simple) <= 1e-5);
      sum(mul(o32, w.to(DType::F32))).backward();
      std::vector<Tensor> ins32 = {q32, k32, v32};
      for (size_t i = 0; i < 3; ++i) {
        INFO("float32 gradient of input ", i);
        CHECK(rel_err(ins32[i].grad(), gsimple[i], gscale) <= 2e-5);
      }
      cpu::set_simple_attention(old);
    }
  }

  TEST_CASE("causal flash_attention_varlen equals the padded causal attention") {
    Generator gen(63);
    const int64_t H = 2, D = 12;
    const double scale = 1.0 / std::sqrt(double(D));
    // Self-attention (nq == nk per sequence): one padded batch with prefix key masks and Lq == Lk
    // gives every real query the same keys as the packed layout.
    for (bool simple : {false, true}) {
      INFO("simple loops ", simple);
      bool old = cpu::set_simple_attention(simple);
      const std::vector<int64_t> lens{5, 1, 140, 37};
      const int64_t B = int64_t(lens.size()), L = 140;
      Tensor q = leaf({B, L, H, D}, gen), k = leaf({B, L, H, D}, gen), v = leaf({B, L, H, D}, gen);
      std::vector<double> mask(size_t(B * L)), wq(size_t(B * L));
      std::vector<int64_t> rows, cu{0};
      for (int64_t b = 0; b < B; ++b) {
        for (int64_t j = 0; j < L; ++j) mask[size_t(b * L + j)] = j < lens[size_t(b)];
        for (int64_t i = 0; i < lens[size_t(b)]; ++i) {
          rows.push_back(b * L + i);
          wq[size_t(b * L + i)] = 1;
        }
        cu.push_back(cu.back() + lens[size_t(b)]);
      }
      Tensor idx = Tensor::from_vector(rows, {int64_t(rows.size())});
      auto pack = [&](const Tensor& x) { return index_select(x.reshape({B * L, H, D}), 0, idx); };
      Tensor w = mul(add(rand({B, L, H, D}, gen, DType::F64), 0.5), Tensor::from_vector(wq, {B, L, 1, 1}));
      Tensor pad = flash_attention(q, k, v, Tensor::from_vector(mask, {B, L}), scale, true);
      sum(mul(pad, w)).backward();
      std::vector<Tensor> gpad = take_grads({q, k, v});
      Tensor cu_t = Tensor::from_vector(cu, {B + 1});
      Tensor packed = flash_attention_varlen(pack(q), pack(k), pack(v), cu_t, cu_t, 0, 0, scale, true);
      CHECK(rel_err(packed, pack(pad.detach())) <= 1e-13);
      sum(mul(packed, pack(w))).backward();
      grads_equal({q, k, v}, gpad, 1e-12);
      cpu::set_simple_attention(old);
    }
    // nq != nk: each sequence against the composition on that sequence alone (bottom-right aligned
    // with its own lengths); a sequence without keys gives zeros.
    const std::vector<int64_t> nq{5, 1, 12, 0, 3, 140, 200, 2}, nk{7, 3, 1, 4, 0, 200, 140, 2};
    const int64_t B = int64_t(nq.size());
    std::vector<int64_t> cq{0}, ck{0};
    for (int64_t b = 0; b < B; ++b) {
      cq.push_back(cq.back() + nq[size_t(b)]);
      ck.push_back(ck.back() + nk[size_t(b)]);
    }
    Tensor q = leaf({cq.back(), H, D}, gen), k = leaf({ck.back(), H, D}, gen), v = leaf({ck.back(), H, D}, gen);
    Tensor out = flash_attention_varlen(q, k, v, Tensor::from_vector(cq, {B + 1}).to(DType::I32),
                                        Tensor::from_vector(ck, {B + 1}).to(DType::I32), 0, 0, scale, true);
    for (int64_t b = 0; b < B; ++b) {
      INFO("sequence ", b, " nq ", nq[size_t(b)], " nk ", nk[size_t(b)]);
      if (nq[size_t(b)] == 0) continue;
      Tensor got = out.narrow(0, cq[size_t(b)], nq[size_t(b)]);
      if (nk[size_t(b)] == 0) {
        CHECK(sum(abs(got)).item() == 0.0);
        continue;
      }
      auto seq = [&](const Tensor& x, int64_t r0, int64_t n) { return x.detach().narrow(0, r0, n).unsqueeze(0); };
      Tensor ref = attention_reference(seq(q, cq[size_t(b)], nq[size_t(b)]), seq(k, ck[size_t(b)], nk[size_t(b)]),
                                       seq(v, ck[size_t(b)], nk[size_t(b)]), Tensor(), scale, true);
      CHECK(rel_err(got.unsqueeze(0), ref) <= 1e-12);
    }
  }
}

TEST_SUITE("gradcheck") {
  TEST_CASE("causal flash_attention gradcheck: Lq == Lk, Lq < Lk, Lq > Lk, with a key mask") {
    Generator gen(71);
    struct Case {
      int64_t Lq, Lk;
      bool mask;
    };
    for (const Case& c : {Case{4, 4, false}, Case{3, 5, true}, Case{5, 3, false}, Case{4, 4, true}}) {
      INFO("Lq ", c.Lq, " Lk ", c.Lk, " mask ", c.mask);
      std::vector<Tensor> xs{leaf({2, c.Lq, 2, 6}, gen), leaf({2, c.Lk, 2, 6}, gen), leaf({2, c.Lk, 2, 6}, gen)};
      Tensor mask;
      if (c.mask) {
        std::vector<double> m(size_t(2 * c.Lk), 1.0);
        m[1] = 0;             // row 0: a hole
        m[size_t(c.Lk)] = 0;  // row 1: its first key masked
        mask = Tensor::from_vector(m, {2, c.Lk});
      }
      for (bool simple : {false, true}) {
        bool old = cpu::set_simple_attention(simple);
        auto f = [&](const std::vector<Tensor>& x) { return flash_attention(x[0], x[1], x[2], mask, 0.6, true); };
        GradcheckResult r = gradcheck(f, xs);
        INFO("simple loops ", simple, " ", r.detail, " max abs err ", r.max_abs_err);
        CHECK(r.ok);
        cpu::set_simple_attention(old);
      }
    }
  }

  TEST_CASE("causal flash_attention_varlen gradcheck") {
    Generator gen(72);
    std::vector<Tensor> xs{leaf({9, 2, 6}, gen), leaf({8, 2, 6}, gen), leaf({8, 2, 6}, gen)};
    Tensor cu_q = Tensor::from_vector(std::vector<int32_t>{0, 1, 5, 9}, {4});  // nq 1, 4, 4
    Tensor cu_k = Tensor::from_vector(std::vector<int32_t>{0, 3, 5, 8}, {4});  // nk 3, 2, 3
    auto f = [&](const std::vector<Tensor>& x) {
      return flash_attention_varlen(x[0], x[1], x[2], cu_q, cu_k, 0, 0, 0.7, true);
    };
    GradcheckResult r = gradcheck(f, xs);
    INFO(r.detail, " max abs err ", r.max_abs_err);
    CHECK(r.ok);
  }
}

// ------------------------------------------------------------------ the decode step with a KV cache
namespace {

// Rows positions[b] .. positions[b]+n-1 of sequence b of x [B, T, H, D] (host f64 data) as [B, n, H, D].
Tensor rows_at(const Tensor& x, const std::vector<int64_t>& positions, int64_t n) {
  const int64_t B = x.size(0), H = x.size(2), D = x.size(3);
  std::vector<Tensor> parts;
  for (int64_t b = 0; b < B; ++b) parts.push_back(x.select(0, b).narrow(0, positions[size_t(b)], n).contiguous());
  std::vector<double> all;
  for (const Tensor& p : parts) {
    std::vector<double> v = p.to_double_vector();
    all.insert(all.end(), v.begin(), v.end());
  }
  return Tensor::from_vector(all, {B, n, H, D});
}

// What a decode step must give for row b: causal attention over the row's first `len` tokens
// (the composition reference on one sequence), its last n query rows: [1, n, H, D].
Tensor full_causal_tail(const Tensor& q, const Tensor& k, const Tensor& v, int64_t b, int64_t len, int64_t n,
                        double scale) {
  auto seq = [&](const Tensor& x) { return x.narrow(0, b, 1).narrow(1, 0, len); };
  return attention_reference(seq(q), seq(k), seq(v), Tensor(), scale, true).narrow(1, len - n, n);
}

}  // namespace

TEST_SUITE("unit") {
  TEST_CASE("KV-cache decoding equals causal attention recomputed over the whole prefix at every step") {
    // Three rows with prompts of different lengths share one batched cache (capacity 4 at first, so
    // it grows during the prefill and again during the steps); then single-token steps and one step
    // of three tokens. Every step's output is compared row by row with causal attention over the
    // row's whole prefix (the composition reference).
    const int64_t B = 3, H = 2, D = 13, T = 24;
    const std::vector<int64_t> prompt{5, 1, 9};
    const double scale = 1.0 / std::sqrt(double(D));
    Generator gen(64);
    Tensor Q = randn({B, T, H, D}, gen, DType::F64), K = randn({B, T, H, D}, gen, DType::F64);
    Tensor V = randn({B, T, H, D}, gen, DType::F64);
    struct Mode {
      DType dt;
      bool simple;
      double tol;
    };
    for (const Mode& mode : {Mode{DType::F64, false, 1e-12}, Mode{DType::F64, true, 1e-12},
                             Mode{DType::F32, false, 1e-5}, Mode{DType::F32, true, 1e-5}}) {
      INFO("dtype ", std::string(dtype_name(mode.dt)), " simple loops ", mode.simple);
      bool old = cpu::set_simple_attention(mode.simple);
      KvCache cache(B, H, D, mode.dt, Device::cpu(), 4);
      const int64_t P = *std::max_element(prompt.begin(), prompt.end());
      std::vector<int64_t> zero(size_t(B), 0);
      cache.append(rows_at(K, zero, P).to(mode.dt), rows_at(V, zero, P).to(mode.dt), prompt);
      CHECK(cache.lengths() == prompt);
      CHECK(cache.capacity() == 9);  // max(2 * 4, 9)
      int64_t grown = 0, last_cap = cache.capacity();
      for (int step = 0; step < 12; ++step) {
        const int64_t n = step == 6 ? 3 : 1;
        std::vector<int64_t> pos = cache.lengths();
        cache.append(rows_at(K, pos, n).to(mode.dt), rows_at(V, pos, n).to(mode.dt));
        if (cache.capacity() != last_cap) {
          CHECK(cache.capacity() == 2 * last_cap);
          last_cap = cache.capacity();
          ++grown;
        }
        Tensor got = cache.attend(rows_at(Q, pos, n).to(mode.dt), scale);
        CHECK(got.dtype() == mode.dt);
        for (int64_t b = 0; b < B; ++b) {
          INFO("step ", step, " row ", b, " length ", cache.length(b));
          CHECK(cache.length(b) == pos[size_t(b)] + n);
          Tensor ref = full_causal_tail(Q, K, V, b, cache.length(b), n, scale);
          CHECK(rel_err(got.narrow(0, b, 1), ref) <= mode.tol);
        }
      }
      CHECK(grown >= 1);
      // Rows that added nothing keep their length; clear() empties every row.
      std::vector<int64_t> before = cache.lengths();
      cache.append(rows_at(K, zero, 1), rows_at(V, zero, 1), {0, 1, 0});
      CHECK(cache.length(0) == before[0]);
      CHECK(cache.length(1) == before[1] + 1);
      cache.clear();
      CHECK(cache.lengths() == std::vector<int64_t>(size_t(B), 0));
      cpu::set_simple_attention(old);
    }
  }

  TEST_CASE("attention_decode: lengths below the step, empty rows, and bad arguments") {
    Generator gen(65);
    const int64_t B = 3, Lnew = 3, Lmax = 6, H = 2, D = 5;
    Tensor q = randn({B, Lnew, H, D}, gen, DType::F64), k = randn({B, Lmax, H, D}, gen, DType::F64);
    Tensor v = randn({B, Lmax, H, D}, gen, DType::F64);
    // Row 0: 6 keys; row 1: 2 keys, so its first query sees none; row 2: none at all.
    Tensor len = Tensor::from_vector(std::vector<int32_t>{6, 2, 0}, {B});
    Tensor out = attention_decode(q, k, v, len, 0.5);
    // Row 0's queries are positions 3, 4, 5 of a 6-token causal attention.
    Tensor ref0 = attention_reference(q.narrow(0, 0, 1), k.narrow(0, 0, 1), v.narrow(0, 0, 1), Tensor(), 0.5, true);
    CHECK(rel_err(out.narrow(0, 0, 1), ref0) <= 1e-12);  // Lq = 3 < Lk = 6: bottom-right aligned
    Tensor ref1 = attention_reference(q.narrow(0, 1, 1), k.narrow(0, 1, 1).narrow(1, 0, 2),
                                      v.narrow(0, 1, 1).narrow(1, 0, 2), Tensor(), 0.5, true);
    CHECK(rel_err(out.narrow(0, 1, 1), ref1) <= 1e-12);  // Lq = 3 > Lk = 2: query 0 sees no key
    CHECK(sum(abs(out.narrow(0, 1, 1).narrow(1, 0, 1))).item() == 0.0);
    CHECK(sum(abs(out.narrow(0, 2, 1))).item() == 0.0);
    // The same through attention_forward with causal on the whole cache of row 0.
    AttentionLayout L;
    L.scale = 0.5;
    L.causal = true;
    Tensor o = Tensor::empty({1, Lnew, H, D}, DType::F64), lse = Tensor::empty({1, Lnew, H}, DType::F64);
    cpu_backend().attention_forward(q.narrow(0, 0, 1).contiguous(), k.narrow(0, 0, 1).contiguous(),
                                    v.narrow(0, 0, 1).contiguous(), L, o, lse);
    CHECK(rel_err(out.narrow(0, 0, 1), o) <= 1e-13);
    CHECK_THROWS_AS(attention_decode(q, k, v, Tensor::from_vector(std::vector<int32_t>{7, 0, 0}, {B}), 1.0), Error);
    CHECK_THROWS_AS(attention_decode(q, k, v, Tensor::from_vector(std::vector<int32_t>{1, 1}, {2}), 1.0), Error);
    CHECK_THROWS_AS(attention_decode(q, k.narrow(3, 0, 4).contiguous(), v, len, 1.0), Error);
    KvCache cache(B, H, D, DType::F64, Device::cpu(), 2);
    CHECK_THROWS_AS(cache.append(k.narrow(2, 0, 1), v.narrow(2, 0, 1)), Error);            // wrong heads
    CHECK_THROWS_AS(cache.append(k, v, std::vector<int64_t>{1, 7, 0}), Error);             // count > Lnew
    CHECK_THROWS_AS(cache.append(k, v, std::vector<int64_t>{1, 1}), Error);                // counts for 2 rows
  }
}
