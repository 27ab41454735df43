#pragma once
// BERT exactly as transformers' BertModel computes it: word + absolute position + token type
// embeddings, embedding LayerNorm, post-LN layers, erf GELU, optional tanh pooler. Loads BertModel
// and BertForMaskedLM (e.g. PubMedBERT: "bert." prefix, "cls.*" head ignored) checkpoints.
#include <functional>
#include <string>
#include <vector>

#include "models/checkpoint.h"

namespace pe {

struct BertConfig {
  int64_t vocab_size = 30522, hidden_size = 768, num_layers = 12, num_heads = 12, intermediate_size = 3072;
  int64_t max_position_embeddings = 512, type_vocab_size = 2, pad_token_id = 0;
  double layer_norm_eps = 1e-12;
  bool add_pooling_layer = true;
  static BertConfig from_json_file(const std::string& path);
  // `source` names the origin in error messages.
  static BertConfig from_json_text(const std::string& text, const std::string& source);
  // Throws pe::Error naming `source` and the field when a size is out of range (zero heads, a
  // hidden size not divisible by the heads, ...). from_json_text calls it.
  void validate(const std::string& source) const;
  // Parameter count (to state the memory a configuration needs before allocating it).
  double approx_parameters() const;
  std::string to_json() const;
  int64_t head_dim() const { return hidden_size / num_heads; }
};

struct BertOutput {
  Tensor last_hidden_state;           // [B, L, d]
  std::vector<Tensor> hidden_states;  // embeddings and each layer's output
  Tensor pooler_output;               // [B, d] when the pooler exists
};

class BertModel {
 public:
  BertModel(const BertConfig& cfg, Generator& gen, const InitSpec& spec = {});
  // ids, token_type_ids (may be undefined = zeros), attention_mask: [B, L] i64.
  BertOutput forward(const Tensor& ids, const Tensor& token_type_ids, const Tensor& attention_mask,
                     bool keep_hidden_states = false) const;
  // The same on the real tokens only: the batch's rows are packed into one [T, d] sequence (T = the
  // number of mask ones) and attention runs on the packed variable-length layout, so no linear layer,
  // LayerNorm or GELU works on padding. Every row's mask must be a prefix (1..1 0..0, right padding);
  // otherwise, or where the fused attention kernels are off (PE_FUSED=0), it falls back to forward().
  // Real positions equal forward()'s; padding positions are zero in every returned state (forward()
  // computes values there, as transformers does, that nothing should read). No pooler output.
  BertOutput forward_packed(const Tensor& ids, const Tensor& token_type_ids, const Tensor& attention_mask,
                            bool keep_hidden_states = false) const;
  const BertConfig& config() const { return cfg_; }
  ParamStore& params() { return ps_; }
  const ParamStore& params() const { return ps_; }
  LoadReport load(const std::string& path);
  void save_pretrained(const std::string& dir, DType as = DType::F32) const;

 private:
  struct Layer {
    Linear q, k, v, o, up, down;
    LayerNorm ln_attn, ln_ffn;
  };
  // The attention of one layer: q, k, v projections [..., d] to its output [..., d] (padded or packed).
  using Attend = std::function<Tensor(const Tensor&, const Tensor&, const Tensor&)>;
  // Word (with HF's padding_idx rule), position and token-type embeddings, then LayerNorm; ids and
  // token_type_ids of one shape, pos_ids broadcastable against them.
  Tensor embed(const Tensor& ids, const Tensor& pos_ids, const Tensor& token_type_ids) const;
  // One post-LN layer (attention, then the GELU MLP), the same for the padded and packed layouts.
  Tensor layer_forward(const Layer& layer, const Tensor& x, const Attend& attend) const;
  BertConfig cfg_;
  ParamStore ps_;
  Tensor word_emb_, pos_emb_, type_emb_;
  LayerNorm ln_emb_;
  std::vector<Layer> layers_;
  Linear pooler_;
};

}  // namespace pe
