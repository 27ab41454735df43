// BertModel::forward_packed (the text encoder on real tokens only, packed variable-length attention)
// against BertModel::forward in float64: the same states at real positions, zeros at padding, the
// same parameter gradients for a loss that reads real positions only, and the fallbacks.
#include <doctest/doctest.h>

#include "autograd/ops.h"
#include "models/bert.h"
#include "tests/common/compare.h"

using namespace pe;

namespace {

BertConfig tiny_bert() {
  BertConfig c;
  c.vocab_size = 23;
  c.hidden_size = 12;
  c.num_layers = 2;
  c.num_heads = 3;
  c.intermediate_size = 20;
  c.max_position_embeddings = 16;
  c.add_pooling_layer = false;
  return c;
}

// Rows of lengths 5, 2, 7 (one full), 1 in L = 7; pad id 0 after each row's tokens.
struct Batch {
  Tensor ids, tt, mask;
  std::vector<int64_t> m;
};
Batch batch(Generator& gen) {
  const int64_t B = 4, L = 7;
  const int64_t len[B] = {5, 2, 7, 1};
  std::vector<int64_t> ids(size_t(B * L), 0), tt(size_t(B * L), 0), m(size_t(B * L), 0);
  Tensor r = rand({B * L}, gen, DType::F64);
  std::vector<double> u = r.to_double_vector();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < len[b]; ++l) {
      ids[size_t(b * L + l)] = 1 + int64_t(u[size_t(b * L + l)] * 21.99);
      tt[size_t(b * L + l)] = l % 2;
      m[size_t(b * L + l)] = 1;
    }
  ids[size_t(0 * L + 3)] = 0;  // a [PAD] id inside a real span: its row must still get no gradient
  return {Tensor::from_vector(ids, {B, L}), Tensor::from_vector(tt, {B, L}), Tensor::from_vector(m, {B, L}), m};
}

}  // namespace

TEST_SUITE("unit") {
  TEST_CASE("BERT packed forward equals the padded forward at real positions (f64) - zeros at padding - same gradients") {
    Generator gen(7);
    BertModel model(tiny_bert(), gen, {DType::F64, Device::cpu()});
    Batch bt = batch(gen);
    const int64_t B = 4, L = 7, d = 12;
    Tensor wsum = randn({B, L, d}, gen, DType::F64);
    Tensor mask3 = bt.mask.to(DType::F64).view({B, L, 1});

    auto run = [&](bool packed, std::vector<Tensor>& states, std::map<std::string, std::vector<double>>& grads) {
      for (const std::string& n : model.params().names()) model.params().get(n).zero_grad();
      BertOutput o = packed ? model.forward_packed(bt.ids, bt.tt, bt.mask, true) : model.forward(bt.ids, bt.tt, bt.mask, true);
      states = o.hidden_states;
      REQUIRE(states.size() == 3);
      CHECK(o.last_hidden_state.to_double_vector() == states.back().to_double_vector());
      // A loss over real positions only (what every ProtST reader does).
      Tensor loss = sum(mul(mul(o.last_hidden_state, mask3), wsum));
      loss.backward();
      for (const std::string& n : model.params().names()) {
        Tensor g = model.params().get(n).grad();
        grads[n] = g.defined() ? g.to_double_vector() : std::vector<double>();
      }
    };
    std::vector<Tensor> sp, su;
    std::map<std::string, std::vector<double>> gp, gu;
    run(false, su, gu);
    run(true, sp, gp);
    for (size_t s = 0; s < sp.size(); ++s) {
      CAPTURE(s);
      std::vector<double> a = sp[s].to_double_vector(), b = su[s].to_double_vector();
      double worst = 0, scale = 0;
      for (size_t i = 0; i < a.size(); ++i) {
        const bool real = bt.m[i / size_t(d)] != 0;
        if (real) {
          worst = std::max(worst, std::fabs(a[i] - b[i]));
          scale = std::max(scale, std::fabs(b[i]));
        } else {
          CHECK(a[i] == 0.0);  // padding: zeros
        }
      }
      CHECK(worst <= 1e-12 * scale);
    }
    // Relative to each tensor's largest gradient, floored at 1e-8 of the largest of all: the attention
    // key biases' gradient is zero in exact arithmetic (round-off ~1e-20 is all they get).
    double global = 0;
    for (const auto& [name, g] : gu)
      for (double x : g) global = std::max(global, std::fabs(x));
    REQUIRE(global > 0);
    for (const auto& [name, g] : gu) {
      CAPTURE(name);
      REQUIRE(gp.at(name).size() == g.size());
      double worst = 0, scale = 1e-8 * global;
      for (size_t i = 0; i < g.size(); ++i) {
        worst = std::max(worst, std::fabs(gp.at(name)[i] - g[i]));
        scale = std::max(scale, std::fabs(g[i]));
      }
      CHECK(worst <= 1e-11 * scale);
    }
    // HF's padding_idx rule: the [PAD] row of the word embeddings gets no gradient, packed or not.
    const std::vector<double>& gw = gp.at("embeddings.word_embeddings.weight");
    for (int64_t j = 0; j < d; ++j) CHECK(gw[size_t(j)] == 0.0);
  }

  TEST_CASE("BERT packed forward falls back to the padded forward for a mask that is not a prefix, or with no padding") {
    Generator gen(8);
    BertModel model(tiny_bert(), gen, {DType::F64, Device::cpu()});
    Batch bt = batch(gen);
    std::vector<int64_t> m = bt.m;
    m[size_t(1 * 7 + 4)] = 1;  // row 1: 1 1 0 0 1 0 0 (a hole)
    Tensor holey = Tensor::from_vector(m, {4, 7});
    Tensor a = model.forward_packed(bt.ids, bt.tt, holey).last_hidden_state;
    Tensor b = model.forward(bt.ids, bt.tt, holey).last_hidden_state;
    CHECK(a.to_double_vector() == b.to_double_vector());  // the same computation, padding values included
    Tensor full = Tensor::ones({4, 7}, DType::I64);
    CHECK(model.forward_packed(bt.ids, bt.tt, full).last_hidden_state.to_double_vector() ==
          model.forward(bt.ids, bt.tt, full).last_hidden_state.to_double_vector());
  }
}
