#include "models/bert.h"

#include <algorithm>
#include <cmath>

#include "models/checkpoint.h"

namespace pe {

BertConfig BertConfig::from_json_file(const std::string& path) { return from_json_text(read_text_file(path), path); }

BertModel::BertModel(const BertConfig& cfg, Generator& gen, const InitSpec& spec) : cfg_(cfg) {
  const double std = 0.02;
  int64_t d = cfg.hidden_size;
  word_emb_ = ps_.add("embeddings.word_embeddings.weight", init_normal({cfg.vocab_size, d}, gen, spec, std));
  pos_emb_ = ps_.add("embeddings.position_embeddings.weight",
                     init_normal({cfg.max_position_embeddings, d}, gen, spec, std));
  type_emb_ = ps_.add("embeddings.token_type_embeddings.weight",
                      init_normal({cfg.type_vocab_size, d}, gen, spec, std));
  ln_emb_ = make_layer_norm(ps_, "embeddings.LayerNorm", d, cfg.layer_norm_eps, spec);
  for (int64_t i = 0; i < cfg.num_layers; ++i) {
    std::string p = "encoder.layer." + std::to_string(i) + ".";
    Layer L;
    L.q = make_linear(ps_, p + "attention.self.query", d, d, true, std, gen, spec);
    L.k = make_linear(ps_, p + "attention.self.key", d, d, true, std, gen, spec);
    L.v = make_linear(ps_, p + "attention.self.value", d, d, true, std, gen, spec);
    L.o = make_linear(ps_, p + "attention.output.dense", d, d, true, std, gen, spec);
    L.ln_attn = make_layer_norm(ps_, p + "attention.output.LayerNorm", d, cfg.layer_norm_eps, spec);
    L.up = make_linear(ps_, p + "intermediate.dense", d, cfg.intermediate_size, true, std, gen, spec);
    L.down = make_linear(ps_, p + "output.dense", cfg.intermediate_size, d, true, std, gen, spec);
    L.ln_ffn = make_layer_norm(ps_, p + "output.LayerNorm", d, cfg.layer_norm_eps, spec);
    layers_.push_back(L);
  }
  if (cfg.add_pooling_layer) pooler_ = make_linear(ps_, "pooler.dense", d, d, true, std, gen, spec);
}

Tensor BertModel::embed(const Tensor& ids, const Tensor& pos_ids, const Tensor& token_type_ids) const {
  DType dt = word_emb_.dtype();
  Device dev = word_emb_.device();
  // HF builds word embeddings with padding_idx: the [PAD] row never receives a gradient.
  Shape col = ids.shape();
  col.push_back(1);
  Tensor w = embedding(word_emb_, ids);
  Tensor not_pad = add(neg(eq(ids.to(dt), Tensor::scalar(double(cfg_.pad_token_id), dt, dev))), 1.0).view(col);
  w = add(mul(w, not_pad), mul(embedding(word_emb_.detach(), ids), add(neg(not_pad), 1.0)));
  return ln_emb_(add(add(w, embedding(pos_emb_, pos_ids)), embedding(type_emb_, token_type_ids)));
}

Tensor BertModel::layer_forward(const Layer& layer, const Tensor& x, const Attend& attend) const {
  Tensor a = attend(layer.q(x), layer.k(x), layer.v(x));
  Tensor y = layer.ln_attn.add(layer.o(a), x);  // post-LN: LayerNorm(sublayer(x) + x), the add fused in
  return layer.ln_ffn.add(layer.down(layer.up.act(y, UnaryOp::Gelu)), y);
}

BertOutput BertModel::forward(const Tensor& ids, const Tensor& token_type_ids, const Tensor& attention_mask,
                              bool keep_hidden_states) const {
  PE_CHECK(ids.dim() == 2 && ids.dtype() == DType::I64, "BertModel: ids must be i64 [B, L], got ", ids.str());
  PE_CHECK(attention_mask.shape() == ids.shape(), "BertModel: attention mask ", attention_mask.str(),
           " does not match ids ", ids.str());
  int64_t B = ids.size(0), L = ids.size(1), d = cfg_.hidden_size, H = cfg_.num_heads, hd = cfg_.head_dim();
  PE_CHECK(L <= cfg_.max_position_embeddings, "BertModel: sequence length ", L, " exceeds max_position_embeddings ",
           cfg_.max_position_embeddings);
  Device dev = word_emb_.device();
  Tensor mask = attention_mask.to(dev).to(word_emb_.dtype());
  Tensor tt = token_type_ids.defined() ? token_type_ids.to(dev) : Tensor::zeros({B, L}, DType::I64, dev);
  Tensor x = embed(ids.to(dev), Tensor::arange(L, DType::I64, dev).view({1, L}), tt);
  BertOutput out;
  if (keep_hidden_states) out.hidden_states.push_back(x);
  const double scale = 1.0 / std::sqrt(double(hd));
  const Attend attend = [&](const Tensor& q, const Tensor& k, const Tensor& v) {
    return attention(q.view({B, L, H, hd}), k.view({B, L, H, hd}), v.view({B, L, H, hd}), mask, scale).reshape({B, L, d});
  };
  for (const Layer& layer : layers_) {
    x = layer_forward(layer, x, attend);
    if (keep_hidden_states) out.hidden_states.push_back(x);
  }
  out.last_hidden_state = x;
  if (cfg_.add_pooling_layer) out.pooler_output = tanh(pooler_(x.select(1, 0)));
  return out;
}

BertOutput BertModel::forward_packed(const Tensor& ids, const Tensor& token_type_ids, const Tensor& attention_mask,
                                     bool keep_hidden_states) const {
  PE_CHECK(ids.dim() == 2 && ids.dtype() == DType::I64, "BertModel: ids must be i64 [B, L], got ", ids.str());
  PE_CHECK(attention_mask.shape() == ids.shape(), "BertModel: attention mask ", attention_mask.str(),
           " does not match ids ", ids.str());
  const int64_t B = ids.size(0), L = ids.size(1), d = cfg_.hidden_size, H = cfg_.num_heads, hd = cfg_.head_dim();
  Device dev = word_emb_.device();
  if (!fused_attention(dev)) return forward(ids, token_type_ids, attention_mask, keep_hidden_states);
  const PackedLayout pl = packed_layout(attention_mask);
  if (!pl.ok) return forward(ids, token_type_ids, attention_mask, keep_hidden_states);
  const std::vector<int64_t>&keep = pl.keep, &pos = pl.pos, &cu = pl.cu;
  const int64_t T = pl.total, max_len = pl.max_len;
  PE_CHECK(max_len <= cfg_.max_position_embeddings, "BertModel: sequence length ", max_len,
           " exceeds max_position_embeddings ", cfg_.max_position_embeddings);
  Tensor keep_t = Tensor::from_vector(keep, {T}).to(dev);
  Tensor tt = token_type_ids.defined() ? index_select(token_type_ids.to(dev).reshape({B * L}), 0, keep_t)
                                       : Tensor::zeros({T}, DType::I64, dev);
  Tensor x = embed(index_select(ids.to(dev).reshape({B * L}), 0, keep_t), Tensor::from_vector(pos, {T}).to(dev), tt);
  // Back to [B, L, d] with zeros at padding (the gradient of a padded position is dropped).
  auto unpack = [&](const Tensor& y) {
    return index_add(Tensor::zeros({B * L, d}, y.dtype(), dev), 0, keep_t, y).view({B, L, d});
  };
  BertOutput out;
  if (keep_hidden_states) out.hidden_states.push_back(unpack(x));
  const Tensor cu_t = Tensor::from_vector(cu, {B + 1});
  const double scale = 1.0 / std::sqrt(double(hd));
  const Attend attend = [&](const Tensor& q, const Tensor& k, const Tensor& v) {
    return attention_varlen(q.view({T, H, hd}), k.view({T, H, hd}), v.view({T, H, hd}), cu_t, max_len, scale)
        .reshape({T, d});
  };
  for (const Layer& layer : layers_) {
    x = layer_forward(layer, x, attend);
    if (keep_hidden_states) out.hidden_states.push_back(unpack(x));
  }
  out.last_hidden_state = keep_hidden_states ? out.hidden_states.back() : unpack(x);
  return out;
}

LoadReport BertModel::load(const std::string& path) {
  LoadOptions opt;
  opt.prefixes = {"", "bert."};
  opt.ignore = {"cls.", "position_ids"};
  opt.optional = {"pooler."};  // BertForMaskedLM checkpoints have no pooler
  return load_checkpoint(ps_, path, opt);
}

void BertModel::save_pretrained(const std::string& dir, DType as) const {
  make_dirs(dir);
  save_tensors(dir + "/model.safetensors", named_tensors(ps_), {{"format", "pt"}}, &as);
  write_text_atomic(dir + "/config.json", cfg_.to_json());
}

}  // namespace pe
