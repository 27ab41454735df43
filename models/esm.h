#pragma once
// ESM-2 exactly as transformers' EsmForMaskedLM computes it (see tests/fixtures/hf/README.md):
// token dropout (also in eval), pre-LN layers, q scaled by head_dim^-0.5 before rotate-half rotary,
// final emb_layer_norm_after, LM head dense -> gelu -> LayerNorm -> decoder tied to the word embedding.
#include <functional>
#include <string>
#include <vector>

#include "models/checkpoint.h"

namespace pe {

struct EsmConfig {
  int64_t vocab_size = 33, hidden_size = 320, num_layers = 6, num_heads = 20, intermediate_size = 1280;
  double layer_norm_eps = 1e-5;
  bool token_dropout = true;
  int64_t mask_token_id = 32, pad_token_id = 1, max_position_embeddings = 1026;
  double rope_theta = 10000.0;
  // Reads a Hugging Face config.json; refuses what this implementation does not compute.
  static EsmConfig from_json_file(const std::string& path);
  // `source` names the origin in error messages.
  static EsmConfig from_json_text(const std::string& text, const std::string& source);
  // Throws pe::Error naming `source` and the field when a size is out of range (zero heads, a
  // hidden size not divisible by the heads, ...). from_json_text calls it.
  void validate(const std::string& source) const;
  // Parameter count (to state the memory a configuration needs before allocating it).
  double approx_parameters() const;
  std::string to_json() const;  // a config.json that EsmForMaskedLM.from_pretrained accepts
  int64_t head_dim() const { return hidden_size / num_heads; }
};

// The rotary inverse frequencies HF stores per layer: float32 [head_dim / 2],
// 1 / theta^(arange(0, head_dim, 2) / head_dim).
Tensor rotary_inv_freq(int64_t head_dim, double theta = 10000.0);

struct EsmOutput {
  Tensor last_hidden_state;           // after emb_layer_norm_after: [B, L, d]
  std::vector<Tensor> hidden_states;  // embeddings and each layer's output (before the final LN)
  Tensor logits;                      // [B, L, vocab] when requested
};

class EsmModel {
 public:
  EsmModel(const EsmConfig& cfg, Generator& gen, const InitSpec& spec = {});
  // ids, attention_mask: [B, L] i64 (mask 1 = real token). Padded positions are computed as HF does.
  EsmOutput forward(const Tensor& ids, const Tensor& attention_mask, bool lm_head = true,
                    bool keep_hidden_states = false) const;
  // The same model on the real tokens only: the rows are packed back to back (no work on padding),
  // rotary positions restart at 0 in each sequence, attention is the variable-length kernel. Outputs
  // have forward's [B, L, ...] shapes with zeros at padded positions (HF computes values there that
  // nothing should read). Falls back to forward when a mask row is not a run of ones followed by
  // zeros, when nothing is padding, or when the fused attention is off (PE_FUSED=0).
  EsmOutput forward_packed(const Tensor& ids, const Tensor& attention_mask, bool lm_head = true,
                           bool keep_hidden_states = false) const;
  // The LM head on hidden states of any leading shape [..., d] -> [..., vocab].
  Tensor lm_logits(const Tensor& hidden) const;
  const EsmConfig& config() const { return cfg_; }
  ParamStore& params() { return ps_; }
  const ParamStore& params() const { return ps_; }
  // HF checkpoint (folder, file or index). Contact-head and rotary inv_freq tensors are accepted.
  LoadReport load(const std::string& path);
  // Writes model.safetensors + config.json into `dir` (created if missing), loadable by HF.
  void save_pretrained(const std::string& dir, DType as = DType::F32) const;

 private:
  struct Layer {
    LayerNorm ln_attn, ln_ffn;
    Linear q, k, v, o, up, down;
  };
  // (q scaled, k, v) as [tokens..., d] -> attention output [tokens..., d]: rotary and the attention
  // kernel of the padded or the packed layout.
  using Attend = std::function<Tensor(const Tensor&, const Tensor&, const Tensor&)>;
  // Word embeddings with ESM's token dropout: <mask> rows zeroed and every row of sequence b scaled by
  // (1 - 0.15 * 0.8) / (1 - mask_count_b / length_b). ids: [N] or [B, L] on the model's device;
  // seq_of_token: the sequence of each token ([N] i64, packed) or undefined (padded: row b of ids);
  // counts/lengths: per sequence [B] in the model dtype.
  Tensor embed(const Tensor& ids, const Tensor& seq_of_token, const Tensor& mask_counts, const Tensor& lengths) const;
  // Pre-LN layer: x + o(attn(LN(x))), then + down(gelu(up(LN(.)))).
  Tensor layer_forward(const Layer& layer, const Tensor& x, const Attend& attend) const;
  EsmConfig cfg_;
  ParamStore ps_;
  Tensor word_emb_;
  std::vector<Layer> layers_;
  LayerNorm ln_after_, lm_ln_;
  Linear lm_dense_;
  Tensor lm_bias_;
};

}  // namespace pe
