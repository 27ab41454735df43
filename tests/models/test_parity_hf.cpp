// Our ESM-2 and BERT against tensors dumped from the real Hugging Face models
// (tests/fixtures/hf, made by scripts/make_hf_fixtures.py): hidden states, MLM logits and the
// gradient of sum(output * loss_weights) for every parameter, in float64 and float32.
#include <doctest/doctest.h>

#include "tests/common/compare.h"

#include <cmath>

#include "models/bert.h"
#include "models/esm.h"

using namespace pe;
using pe::testing::rel_err;

namespace {

std::string fixture_dir(const std::string& name) { return std::string(PE_SOURCE_DIR) + "/tests/fixtures/hf/" + name; }


// Gradient error relative to max(|this reference|, 1e-3 * largest reference gradient): some
// gradients are exactly zero in exact arithmetic (attention key biases shift every score of a row
// equally), and their float noise must be judged against the scale of the other gradients.
template <typename Model>
void check_grads(const Model& model, const SafetensorsCheckpoint& fx, double tol) {
  int checked = 0;
  double global = 0;
  for (const std::string& name : model.params().names())
    if (fx.contains("grad." + name))
      for (double v : read_tensor(fx, "grad." + name).to_double_vector()) global = std::max(global, std::abs(v));
  for (const std::string& name : model.params().names()) {
    std::string key = "grad." + name;
    if (!fx.contains(key)) continue;
    Tensor ref = read_tensor(fx, key);
    Tensor g = model.params().get(name).grad();
    if (!g.defined()) g = Tensor::zeros(ref.shape(), DType::F64);  // frozen buffers / unused heads
    INFO("gradient of ", name);
    std::vector<double> x = g.to_double_vector(), y = ref.to_double_vector();
    REQUIRE(x.size() == y.size());
    double mag = 1e-3 * global, err = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      mag = std::max(mag, std::abs(y[i]));
      err = std::max(err, std::abs(x[i] - y[i]));
    }
    CHECK(err / mag <= tol);
    ++checked;
  }
  CHECK(checked >= 20);
}

void esm_parity(const std::string& name, DType dt, double tol, double grad_tol) {
  std::string dir = fixture_dir(name);
  EsmConfig cfg = EsmConfig::from_json_file(dir + "/config.json");
  Generator gen(0);
  EsmModel model(cfg, gen, {dt, Device::cpu()});
  LoadReport rep = model.load(dir);
  CHECK(rep.loaded.size() == model.params().names().size());
  SafetensorsCheckpoint fx(dir + "/fixture.safetensors");
  Tensor ids = read_tensor(fx, "input_ids"), mask = read_tensor(fx, "attention_mask");
  EsmOutput out = model.forward(ids, mask, true, true);
  for (int64_t i = 0; i < cfg.num_layers; ++i) {
    INFO("hidden state ", i);
    CHECK(rel_err(out.hidden_states[size_t(i)], read_tensor(fx, "hidden_states." + std::to_string(i))) <= tol);
  }
  CHECK(rel_err(out.hidden_states.back(), read_tensor(fx, "last_layer_output")) <= tol);
  CHECK(rel_err(out.last_hidden_state, read_tensor(fx, "last_hidden_state")) <= tol);
  CHECK(rel_err(out.logits, read_tensor(fx, "logits")) <= tol);
  Tensor w = read_tensor(fx, "loss_weights").to(dt);
  Tensor loss = sum(mul(out.logits, w));
  CHECK(std::abs(loss.item() - read_tensor(fx, "loss").item()) <= tol * std::abs(read_tensor(fx, "loss").item()) + tol);
  loss.backward();
  check_grads(model, fx, grad_tol);
}

void bert_parity(DType dt, double tol, double grad_tol) {
  std::string dir = fixture_dir("bert_tiny");
  BertConfig cfg = BertConfig::from_json_file(dir + "/config.json");
  Generator gen(0);
  BertModel model(cfg, gen, {dt, Device::cpu()});
  model.load(dir);
  SafetensorsCheckpoint fx(dir + "/fixture.safetensors");
  BertOutput out = model.forward(read_tensor(fx, "input_ids"), read_tensor(fx, "token_type_ids"),
                                 read_tensor(fx, "attention_mask"), true);
  for (int64_t i = 0; i <= cfg.num_layers; ++i) {
    INFO("hidden state ", i);
    CHECK(rel_err(out.hidden_states[size_t(i)], read_tensor(fx, "hidden_states." + std::to_string(i))) <= tol);
  }
  CHECK(rel_err(out.last_hidden_state, read_tensor(fx, "last_hidden_state")) <= tol);
  CHECK(rel_err(out.pooler_output, read_tensor(fx, "pooler_output")) <= tol);
  Tensor loss = sum(mul(out.last_hidden_state, read_tensor(fx, "loss_weights").to(dt)));
  loss.backward();
  check_grads(model, fx, grad_tol);
}

}  // namespace

TEST_SUITE("parity") {
  TEST_CASE("ESM-2 (head dim 24) matches transformers in float64") { esm_parity("esm_tiny", DType::F64, 1e-9, 1e-8); }
  TEST_CASE("ESM-2 (head dim 32) matches transformers in float64") { esm_parity("esm_hd32", DType::F64, 1e-9, 1e-8); }
  TEST_CASE("ESM-2 matches transformers in float32") { esm_parity("esm_tiny", DType::F32, 1e-5, 1e-4); }
  TEST_CASE("BERT matches transformers in float64") { bert_parity(DType::F64, 1e-9, 1e-8); }
  TEST_CASE("BERT matches transformers in float32") { bert_parity(DType::F32, 1e-5, 1e-4); }
}
