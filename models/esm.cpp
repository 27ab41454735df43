#include "models/esm.h"

#include <algorithm>
#include <cmath>

#include "models/checkpoint.h"

namespace pe {

EsmConfig EsmConfig::from_json_file(const std::string& path) { return from_json_text(read_text_file(path), path); }

EsmModel::EsmModel(const EsmConfig& cfg, Generator& gen, const InitSpec& spec) : cfg_(cfg) {
  const double std = 0.02;  // HF initializer_range
  int64_t d = cfg.hidden_size;
  word_emb_ = ps_.add("esm.embeddings.word_embeddings.weight", init_normal({cfg.vocab_size, d}, gen, spec, std));
  for (int64_t i = 0; i < cfg.num_layers; ++i) {
    std::string p = "esm.encoder.layer." + std::to_string(i) + ".";
    Layer L;
    L.q = make_linear(ps_, p + "attention.self.query", d, d, true, std, gen, spec);
    L.k = make_linear(ps_, p + "attention.self.key", d, d, true, std, gen, spec);
    L.v = make_linear(ps_, p + "attention.self.value", d, d, true, std, gen, spec);
    L.o = make_linear(ps_, p + "attention.output.dense", d, d, true, std, gen, spec);
    L.ln_attn = make_layer_norm(ps_, p + "attention.LayerNorm", d, cfg.layer_norm_eps, spec);
    L.up = make_linear(ps_, p + "intermediate.dense", d, cfg.intermediate_size, true, std, gen, spec);
    L.down = make_linear(ps_, p + "output.dense", cfg.intermediate_size, d, true, std, gen, spec);
    L.ln_ffn = make_layer_norm(ps_, p + "LayerNorm", d, cfg.layer_norm_eps, spec);
    layers_.push_back(L);
  }
  ln_after_ = make_layer_norm(ps_, "esm.encoder.emb_layer_norm_after", d, cfg.layer_norm_eps, spec);
  // The contact head is part of EsmForMaskedLM checkpoints; kept (untrained) so saves round-trip.
  ps_.add_buffer("esm.contact_head.regression.weight", Tensor::zeros({1, cfg.num_layers * cfg.num_heads}, spec.dtype, spec.device));
  ps_.add_buffer("esm.contact_head.regression.bias", Tensor::zeros({1}, spec.dtype, spec.device));
  lm_dense_ = make_linear(ps_, "lm_head.dense", d, d, true, std, gen, spec);
  lm_ln_ = make_layer_norm(ps_, "lm_head.layer_norm", d, cfg.layer_norm_eps, spec);
  lm_bias_ = ps_.add("lm_head.bias", Tensor::zeros({cfg.vocab_size}, spec.dtype, spec.device));
}

Tensor EsmModel::embed(const Tensor& ids, const Tensor& seq_of_token, const Tensor& mask_counts,
                       const Tensor& lengths) const {
  Tensor x = embedding(word_emb_, ids);  // [..., d]
  if (!cfg_.token_dropout) return x;
  DType dt = word_emb_.dtype();
  Device dev = word_emb_.device();
  // Zero <mask> embeddings and rescale by (1 - 0.15*0.8) / (1 - observed mask ratio over real tokens).
  Tensor not_mask = add(neg(eq(ids.to(dt), Tensor::scalar(double(cfg_.mask_token_id), dt, dev))), 1.0);
  Tensor ratio = div(mask_counts, lengths);
  Tensor scale = div(Tensor::scalar(1.0 - 0.15 * 0.8, dt, dev), add(neg(ratio), 1.0));  // [B]
  if (!seq_of_token.defined()) {
    const int64_t B = ids.size(0);
    return mul(mul(x, not_mask.view({B, ids.size(1), 1})), scale.view({B, 1, 1}));
  }
  // Packed: one factor per token (0 or its sequence's scale; the product is exact, so x is rounded once
  // as in the padded form).
  return mul(x, mul(not_mask, index_select(scale, 0, seq_of_token)).view({ids.size(0), 1}));
}

Tensor EsmModel::layer_forward(const Layer& layer, const Tensor& x_in, const Attend& attend) const {
  const double qscale = 1.0 / std::sqrt(double(cfg_.head_dim()));
  Tensor h = layer.ln_attn(x_in);
  Tensor x = layer.o.residual(attend(mul(layer.q(h), qscale), layer.k(h), layer.v(h)), x_in);
  return layer.down.residual(layer.up.act(layer.ln_ffn(x), UnaryOp::Gelu), x);
}

EsmOutput EsmModel::forward(const Tensor& ids, const Tensor& attention_mask, bool lm_head,
                            bool keep_hidden_states) const {
  PE_CHECK(ids.dim() == 2 && ids.dtype() == DType::I64, "EsmModel: ids must be i64 [B, L], got ", ids.str());
  PE_CHECK(attention_mask.shape() == ids.shape(), "EsmModel: attention mask ", attention_mask.str(),
           " does not match ids ", ids.str());
  int64_t B = ids.size(0), L = ids.size(1), d = cfg_.hidden_size, H = cfg_.num_heads, hd = cfg_.head_dim();
  DType dt = word_emb_.dtype();
  Device dev = word_emb_.device();
  Tensor mask = attention_mask.to(dev).to(dt);  // [B, L]
  Tensor x;
  if (cfg_.token_dropout) {
    Tensor is_mask = eq(ids.to(dev).to(dt), Tensor::scalar(double(cfg_.mask_token_id), dt, dev));  // [B, L]
    x = embed(ids.to(dev), Tensor(), sum(mul(is_mask, mask), {1}), sum(mask, {1}));
  } else {
    x = embed(ids.to(dev), Tensor(), Tensor(), Tensor());
  }
  x = mul(x, mask.view({B, L, 1}));
  EsmOutput out;
  if (keep_hidden_states) out.hidden_states.push_back(x);
  const Attend attend = [&](const Tensor& q, const Tensor& k, const Tensor& v) {
    Tensor qr = rotary(q.view({B, L, H, hd}), cfg_.rope_theta);
    Tensor kr = rotary(k.view({B, L, H, hd}), cfg_.rope_theta);
    return attention(qr, kr, v.view({B, L, H, hd}), mask, 1.0).reshape({B, L, d});
  };
  for (const Layer& layer : layers_) {
    x = layer_forward(layer, x, attend);
    if (keep_hidden_states) out.hidden_states.push_back(x);
  }
  out.last_hidden_state = ln_after_(x);
  if (lm_head) out.logits = lm_logits(out.last_hidden_state);
  return out;
}

EsmOutput EsmModel::forward_packed(const Tensor& ids, const Tensor& attention_mask, bool lm_head,
                                   bool keep_hidden_states) const {
  PE_CHECK(ids.dim() == 2 && ids.dtype() == DType::I64, "EsmModel: ids must be i64 [B, L], got ", ids.str());
  PE_CHECK(attention_mask.shape() == ids.shape(), "EsmModel: attention mask ", attention_mask.str(),
           " does not match ids ", ids.str());
  const int64_t B = ids.size(0), L = ids.size(1), d = cfg_.hidden_size, H = cfg_.num_heads, hd = cfg_.head_dim();
  DType dt = word_emb_.dtype();
  Device dev = word_emb_.device();
  if (!fused_attention(dev)) return forward(ids, attention_mask, lm_head, keep_hidden_states);
  const PackedLayout pl = packed_layout(attention_mask);
  if (!pl.ok) return forward(ids, attention_mask, lm_head, keep_hidden_states);
  const std::vector<int64_t>&keep = pl.keep, &pos = pl.pos, &cu = pl.cu;
  const int64_t T = pl.total, max_len = pl.max_len;
  // Token dropout's per-sequence statistics: <mask> count and length of each row.
  const std::vector<int64_t> id = ids.to(Device::cpu()).to_int_vector();
  std::vector<double> counts(size_t(B), 0.0), lengths(size_t(B), 0.0);
  for (int64_t t = 0; t < T; ++t) counts[size_t(pl.seq[size_t(t)])] += id[size_t(keep[size_t(t)])] == cfg_.mask_token_id;
  for (int64_t b = 0; b < B; ++b) lengths[size_t(b)] = double(cu[size_t(b + 1)] - cu[size_t(b)]);
  Tensor keep_t = Tensor::from_vector(keep, {T}).to(dev);
  Tensor x = embed(index_select(ids.to(dev).reshape({B * L}), 0, keep_t), Tensor::from_vector(pl.seq, {T}).to(dev),
                   Tensor::from_vector(counts, {B}).to(dt).to(dev), Tensor::from_vector(lengths, {B}).to(dt).to(dev));
  // Back to [B, L, d] with zeros at padding (the gradient of a padded position is dropped).
  auto unpack = [&](const Tensor& y) {
    return index_add(Tensor::zeros({B * L, d}, y.dtype(), dev), 0, keep_t, y).view({B, L, d});
  };
  EsmOutput out;
  if (keep_hidden_states) out.hidden_states.push_back(unpack(x));
  const Tensor cu_t = Tensor::from_vector(cu, {B + 1});
  const Tensor pos_t = Tensor::from_vector(pos, {T}).to(dev);
  const Attend attend = [&](const Tensor& q, const Tensor& k, const Tensor& v) {
    Tensor qr = rotary(q.view({T, H, hd}), cfg_.rope_theta, pos_t);
    Tensor kr = rotary(k.view({T, H, hd}), cfg_.rope_theta, pos_t);
    return attention_varlen(qr, kr, v.view({T, H, hd}), cu_t, max_len, 1.0).reshape({T, d});
  };
  for (const Layer& layer : layers_) {
    x = layer_forward(layer, x, attend);
    if (keep_hidden_states) out.hidden_states.push_back(unpack(x));
  }
  Tensor last = ln_after_(x);  // [T, d]
  out.last_hidden_state = unpack(last);
  if (lm_head) out.logits = index_add(Tensor::zeros({B * L, cfg_.vocab_size}, last.dtype(), dev), 0, keep_t,
                                      lm_logits(last)).view({B, L, cfg_.vocab_size});
  return out;
}

Tensor EsmModel::lm_logits(const Tensor& hidden) const {
  Tensor h = lm_ln_(lm_dense_.act(hidden, UnaryOp::Gelu));
  return linear(h, word_emb_, lm_bias_);  // decoder tied to the word embedding
}

LoadReport EsmModel::load(const std::string& path) {
  LoadOptions opt;
  opt.prefixes = {""};
  opt.ignore = {"inv_freq", "lm_head.decoder.weight", "position_ids"};
  opt.optional = {"contact_head"};
  return load_checkpoint(ps_, path, opt);
}

Tensor rotary_inv_freq(int64_t head_dim, double theta) {
  PE_CHECK(head_dim > 0 && head_dim % 2 == 0, "rotary_inv_freq: head_dim ", head_dim, " must be even and positive");
  Tensor t = Tensor::empty({head_dim / 2}, DType::F32);
  float* p = t.data<float>();
  // As HF: 1 / theta^(arange(0, head_dim, 2) / head_dim), in float32.
  for (int64_t j = 0; j < head_dim / 2; ++j)
    p[j] = 1.0f / std::pow(static_cast<float>(theta), static_cast<float>(2 * j) / static_cast<float>(head_dim));
  return t;
}

void EsmModel::save_pretrained(const std::string& dir, DType as) const {
  make_dirs(dir);
  // Published ESM-2 files also carry each layer's rotary inv_freq buffer (HF registers it as a
  // persistent buffer); without it from_pretrained reports missing keys.
  auto tensors = named_tensors(ps_);
  const Tensor inv_freq = rotary_inv_freq(cfg_.head_dim(), cfg_.rope_theta);
  for (int64_t i = 0; i < cfg_.num_layers; ++i)
    tensors.emplace_back("esm.encoder.layer." + std::to_string(i) + ".attention.self.rotary_embeddings.inv_freq",
                         inv_freq);
  save_tensors(dir + "/model.safetensors", tensors, {{"format", "pt"}}, &as);
  write_text_atomic(dir + "/config.json", cfg_.to_json());
}

}  // namespace pe
