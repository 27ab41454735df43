// The JSON side of the encoder configurations (EsmConfig, BertConfig): config.json parsing,
// validation and writing. Kept apart from the models so that it builds with protst_data alone
// (the config.json fuzz harness, tests/fuzz/fuzz_config.cpp, links only this file).
#include <cmath>
#include <nlohmann/json.hpp>

#include "models/bert.h"
#include "models/config_json.h"
#include "models/esm.h"

namespace pe {

using json = nlohmann::json;

// ---------------------------------------------------------------- ESM-2

EsmConfig EsmConfig::from_json_text(const std::string& text, const std::string& path) {
  JsonConfig j(text, path);
  EsmConfig c;
  auto get = [&](const char* key, auto& field) { j.get(key, field); };
  get("vocab_size", c.vocab_size);
  get("hidden_size", c.hidden_size);
  get("num_hidden_layers", c.num_layers);
  get("num_attention_heads", c.num_heads);
  get("intermediate_size", c.intermediate_size);
  get("layer_norm_eps", c.layer_norm_eps);
  get("token_dropout", c.token_dropout);
  get("mask_token_id", c.mask_token_id);
  get("pad_token_id", c.pad_token_id);
  get("max_position_embeddings", c.max_position_embeddings);
  get("rope_theta", c.rope_theta);
  std::string pos = j.value("position_embedding_type", std::string("rotary"));
  PE_CHECK(pos == "rotary", "config ", path, ": position_embedding_type '", pos, "' is not supported (ESM-2 uses rotary)");
  PE_CHECK(!j.value("emb_layer_norm_before", false), "config ", path, ": emb_layer_norm_before=true (ESM-1b) is not supported");
  c.validate(path);
  return c;
}

void EsmConfig::validate(const std::string& source) const {
  check_encoder_fields(source, vocab_size, hidden_size, num_layers, num_heads, intermediate_size, max_position_embeddings,
                       layer_norm_eps, pad_token_id);
  check_config_int(source, "mask_token_id", mask_token_id, 0, vocab_size - 1);
  check_config_real(source, "rope_theta", rope_theta, 1e-6, 1e12);
}

double EsmConfig::approx_parameters() const {
  double d = double(hidden_size), L = double(num_layers), I = double(intermediate_size);
  return double(vocab_size) * d + double(max_position_embeddings) * d + L * (4 * d * d + 2 * d * I + 9 * d + I) + d * d;
}

std::string EsmConfig::to_json() const {
  json j = {{"architectures", {"EsmForMaskedLM"}},
            {"model_type", "esm"},
            {"vocab_size", vocab_size},
            {"hidden_size", hidden_size},
            {"num_hidden_layers", num_layers},
            {"num_attention_heads", num_heads},
            {"intermediate_size", intermediate_size},
            {"hidden_act", "gelu"},
            {"layer_norm_eps", layer_norm_eps},
            {"token_dropout", token_dropout},
            {"mask_token_id", mask_token_id},
            {"pad_token_id", pad_token_id},
            {"cls_token_id", 0},
            {"eos_token_id", 2},
            {"max_position_embeddings", max_position_embeddings},
            {"position_embedding_type", "rotary"},
            {"rope_theta", rope_theta},
            {"emb_layer_norm_before", false},
            {"tie_word_embeddings", true},
            {"hidden_dropout_prob", 0.0},
            {"attention_probs_dropout_prob", 0.0}};
  return j.dump(2) + "\n";
}

// ---------------------------------------------------------------- BERT

BertConfig BertConfig::from_json_text(const std::string& text, const std::string& path) {
  JsonConfig j(text, path);
  BertConfig c;
  auto get = [&](const char* key, auto& field) { j.get(key, field); };
  get("vocab_size", c.vocab_size);
  get("hidden_size", c.hidden_size);
  get("num_hidden_layers", c.num_layers);
  get("num_attention_heads", c.num_heads);
  get("intermediate_size", c.intermediate_size);
  get("max_position_embeddings", c.max_position_embeddings);
  get("type_vocab_size", c.type_vocab_size);
  get("pad_token_id", c.pad_token_id);
  get("layer_norm_eps", c.layer_norm_eps);
  std::string act = j.value("hidden_act", std::string("gelu"));
  PE_CHECK(act == "gelu", "config ", path, ": hidden_act '", act, "' is not supported (BERT uses exact gelu)");
  std::string pos = j.value("position_embedding_type", std::string("absolute"));
  PE_CHECK(pos == "absolute", "config ", path, ": position_embedding_type '", pos, "' is not supported");
  c.validate(path);
  return c;
}

void BertConfig::validate(const std::string& source) const {
  check_encoder_fields(source, vocab_size, hidden_size, num_layers, num_heads, intermediate_size, max_position_embeddings,
                       layer_norm_eps, pad_token_id);
  check_config_int(source, "type_vocab_size", type_vocab_size, 1, 1024);
}

double BertConfig::approx_parameters() const {
  double d = double(hidden_size), L = double(num_layers), I = double(intermediate_size);
  return double(vocab_size) * d + double(max_position_embeddings) * d + L * (4 * d * d + 2 * d * I + 9 * d + I) + d * d;
}

std::string BertConfig::to_json() const {
  json j = {{"architectures", {"BertModel"}},
            {"model_type", "bert"},
            {"vocab_size", vocab_size},
            {"hidden_size", hidden_size},
            {"num_hidden_layers", num_layers},
            {"num_attention_heads", num_heads},
            {"intermediate_size", intermediate_size},
            {"hidden_act", "gelu"},
            {"max_position_embeddings", max_position_embeddings},
            {"type_vocab_size", type_vocab_size},
            {"pad_token_id", pad_token_id},
            {"layer_norm_eps", layer_norm_eps},
            {"position_embedding_type", "absolute"},
            {"hidden_dropout_prob", 0.0},
            {"attention_probs_dropout_prob", 0.0}};
  return j.dump(2) + "\n";
}

}  // namespace pe
