// EsmModel::forward_packed (the protein encoder on real tokens only: packed rows, rotary positions
// restarting in each sequence, variable-length attention) against EsmModel::forward in float64: the
// same states and logits at real positions, zeros at padding, the same parameter gradients for a loss
// that reads real positions only (token dropout with <mask> tokens included), and the fallbacks. The
// packed rotary op is also checked against the padded one directly, forward and backward.
#include <doctest/doctest.h>

#include <map>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "models/esm.h"
#include "tests/common/compare.h"

using namespace pe;

namespace {

EsmConfig tiny_esm() {
  EsmConfig c;
  c.vocab_size = 33;
  c.hidden_size = 16;
  c.num_layers = 2;
  c.num_heads = 2;
  c.intermediate_size = 24;
  return c;
}

// Rows of lengths 6, 3, 9 (one full), 1 in L = 9; pad id 1 after each row's tokens; <mask> (32)
// tokens in rows 0 and 2 so that token dropout scales the rows differently.
struct Batch {
  Tensor ids, mask;
  std::vector<int64_t> m;
};
Batch batch(Generator& gen) {
  const int64_t B = 4, L = 9;
  const int64_t len[B] = {6, 3, 9, 1};
  std::vector<int64_t> ids(size_t(B * L), 1), m(size_t(B * L), 0);
  std::vector<double> u = rand({B * L}, gen, DType::F64).to_double_vector();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < len[b]; ++l) {
      ids[size_t(b * L + l)] = 4 + int64_t(u[size_t(b * L + l)] * 19.99);
      m[size_t(b * L + l)] = 1;
    }
  ids[size_t(0 * L + 2)] = 32;
  ids[size_t(2 * L + 1)] = 32;
  ids[size_t(2 * L + 7)] = 32;
  return {Tensor::from_vector(ids, {B, L}), Tensor::from_vector(m, {B, L}), m};
}

double max_abs(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s = std::max(s, std::fabs(x));
  return s;
}

}  // namespace

TEST_SUITE("unit") {
  TEST_CASE("rotary with per-token positions equals the padded rotary row by row (f64) - forward and backward") {
    Generator gen(3);
    const int64_t B = 3, L = 5, H = 2, D = 6;
    const int64_t len[B] = {5, 2, 4};
    Tensor x = randn({B, L, H, D}, gen, DType::F64);
    Tensor padded = rotary(x, 500.0);
    // Pack the real rows of x; positions restart at 0 in each sequence.
    std::vector<int64_t> keep, pos;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t l = 0; l < len[b]; ++l) {
        keep.push_back(b * L + l);
        pos.push_back(l);
      }
    const int64_t T = int64_t(keep.size());
    Tensor keep_t = Tensor::from_vector(keep, {T});
    Tensor xp = index_select(x.reshape({B * L, H, D}), 0, keep_t);
    Tensor packed = rotary(xp, 500.0, Tensor::from_vector(pos, {T}));
    CHECK(packed.shape() == Shape{T, H, D});
    std::vector<double> want = index_select(padded.reshape({B * L, H, D}), 0, keep_t).to_double_vector();
    std::vector<double> got = packed.to_double_vector();
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-14));
    // [B, L] positions on a 4-d tensor: positions l + 3 equal a padded rotary of a longer sequence.
    std::vector<int64_t> shifted(size_t(B * L));
    for (int64_t i = 0; i < B * L; ++i) shifted[size_t(i)] = i % L + 3;
    Tensor longer = Tensor::zeros({B, L + 3, H, D}, DType::F64);
    Tensor x_long = index_add(longer.reshape({B * (L + 3), H, D}), 0,
                              [&] {
                                std::vector<int64_t> dst;
                                for (int64_t b = 0; b < B; ++b)
                                  for (int64_t l = 0; l < L; ++l) dst.push_back(b * (L + 3) + l + 3);
                                return Tensor::from_vector(dst, {B * L});
                              }(),
                              x.reshape({B * L, H, D}))
                        .view({B, L + 3, H, D});
    std::vector<double> a = rotary(x, 500.0, Tensor::from_vector(shifted, {B, L})).to_double_vector();
    std::vector<double> b = rotary(x_long, 500.0).narrow(1, 3, L).contiguous().to_double_vector();
    for (size_t i = 0; i < a.size(); ++i) CHECK(a[i] == doctest::Approx(b[i]).epsilon(1e-14));
    // Gradient of the packed form against central differences.
    Tensor pos_t = Tensor::from_vector(pos, {T});
    Tensor w = randn({T, H, D}, gen, DType::F64);
    Tensor leaf = xp.detach().clone();
    leaf.requires_grad_(true);
    auto f = [&](const std::vector<Tensor>& in) { return sum(mul(rotary(in[0], 500.0, pos_t), w)); };
    GradcheckResult r = gradcheck(f, {leaf});
    CHECK_MESSAGE(r.ok, r.detail);
    // Wrong positions are refused with the tensor named.
    CHECK_THROWS_WITH_AS(rotary(xp, 500.0, Tensor::from_vector(pos, {T}).narrow(0, 0, T - 1)),
                         doctest::Contains("positions"), Error);
  }

  TEST_CASE("ESM packed forward equals the padded forward at real positions (f64) - zeros at padding - same gradients") {
    Generator gen(11);
    EsmModel model(tiny_esm(), gen, {DType::F64, Device::cpu()});
    Batch bt = batch(gen);
    const int64_t B = 4, L = 9, d = 16, V = 33;
    Tensor wsum = randn({B, L, d}, gen, DType::F64);
    Tensor wlog = randn({B, L, V}, gen, DType::F64);
    Tensor mask3 = bt.mask.to(DType::F64).view({B, L, 1});

    struct Run {
      std::vector<Tensor> states;
      Tensor last, logits;
      std::map<std::string, std::vector<double>> grads;
    };
    auto run = [&](bool packed) {
      Run r;
      for (const std::string& n : model.params().names()) model.params().get(n).zero_grad();
      EsmOutput o = packed ? model.forward_packed(bt.ids, bt.mask, true, true) : model.forward(bt.ids, bt.mask, true, true);
      REQUIRE(o.hidden_states.size() == 3);
      r.states = o.hidden_states;
      r.last = o.last_hidden_state;
      r.logits = o.logits;
      // A loss over real positions only (what every ProtST and embed reader does).
      Tensor loss = add(sum(mul(mul(o.last_hidden_state, mask3), wsum)), sum(mul(mul(o.logits, mask3), wlog)));
      loss.backward();
      for (const std::string& n : model.params().names()) {
        Tensor g = model.params().get(n).grad();
        r.grads[n] = g.defined() ? g.to_double_vector() : std::vector<double>();
      }
      return r;
    };
    Run pad = run(false), pk = run(true);
    auto compare = [&](const Tensor& packed_t, const Tensor& padded_t, int64_t width, const std::string& what) {
      CAPTURE(what);
      std::vector<double> a = packed_t.to_double_vector(), b = padded_t.to_double_vector();
      REQUIRE(a.size() == b.size());
      double worst = 0, scale = 0;
      for (size_t i = 0; i < a.size(); ++i) {
        if (bt.m[i / size_t(width)] != 0) {
          worst = std::max(worst, std::fabs(a[i] - b[i]));
          scale = std::max(scale, std::fabs(b[i]));
        } else {
          CHECK(a[i] == 0.0);  // padding: zeros
        }
      }
      REQUIRE(scale > 0);
      CHECK(worst <= 1e-12 * scale);
    };
    for (size_t s = 0; s < pk.states.size(); ++s) compare(pk.states[s], pad.states[s], d, "state " + std::to_string(s));
    compare(pk.last, pad.last, d, "last_hidden_state");
    compare(pk.logits, pad.logits, V, "logits");
    // Relative to each tensor's largest gradient, floored at 1e-8 of the largest of all.
    double global = 0;
    for (const auto& [name, g] : pad.grads) global = std::max(global, max_abs(g));
    REQUIRE(global > 0);
    for (const auto& [name, g] : pad.grads) {
      CAPTURE(name);
      REQUIRE(pk.grads.at(name).size() == g.size());
      double worst = 0, scale = 1e-8 * global;
      for (size_t i = 0; i < g.size(); ++i) {
        worst = std::max(worst, std::fabs(pk.grads.at(name)[i] - g[i]));
        scale = std::max(scale, std::fabs(g[i]));
      }
      CHECK(worst <= 1e-11 * scale);
    }
  }

  TEST_CASE("ESM packed forward in f32 matches the padded forward to f32 round-off") {
    Generator gen(12);
    EsmModel model(tiny_esm(), gen, {DType::F32, Device::cpu()});
    Batch bt = batch(gen);
    std::vector<double> a = model.forward_packed(bt.ids, bt.mask, false).last_hidden_state.to_double_vector();
    std::vector<double> b = model.forward(bt.ids, bt.mask, false).last_hidden_state.to_double_vector();
    double worst = 0, scale = 0;
    for (size_t i = 0; i < a.size(); ++i)
      if (bt.m[i / 16] != 0) {
        worst = std::max(worst, std::fabs(a[i] - b[i]));
        scale = std::max(scale, std::fabs(b[i]));
      }
    CHECK(worst <= 1e-5 * scale);
  }

  TEST_CASE("ESM packed forward falls back to the padded forward for a mask that is not a prefix, or with no padding") {
    Generator gen(13);
    EsmModel model(tiny_esm(), gen, {DType::F64, Device::cpu()});
    Batch bt = batch(gen);
    std::vector<int64_t> m = bt.m;
    m[size_t(1 * 9 + 5)] = 1;  // row 1: 1 1 1 0 0 1 0 0 0 (a hole)
    Tensor holey = Tensor::from_vector(m, {4, 9});
    CHECK(model.forward_packed(bt.ids, holey, false).last_hidden_state.to_double_vector() ==
          model.forward(bt.ids, holey, false).last_hidden_state.to_double_vector());
    Tensor full = Tensor::ones({4, 9}, DType::I64);
    CHECK(model.forward_packed(bt.ids, full, false).last_hidden_state.to_double_vector() ==
          model.forward(bt.ids, full, false).last_hidden_state.to_double_vector());
  }
}
