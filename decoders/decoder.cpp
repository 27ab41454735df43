#include "decoders/decoder.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "autograd/graph.h"
#include "autograd/kv_cache.h"
#include "decoders/generate.h"
#include "losses/losses.h"
#include "models/config_json.h"

namespace pe {

// ------------------------------------------------------------------------------------------ config

void DecoderConfig::validate(const std::string& source) const {
  check_encoder_fields(source, vocab_size, hidden_size, num_layers, num_heads, intermediate_size, max_positions,
                       layer_norm_eps, pad_id);
  check_config_int(source, "memory_dim", memory_dim, 1, kMaxHidden);
  check_config_int(source, "prefix_length", prefix_length, 0, 1024);
  check_config_int(source, "bos_id", bos_id, 0, vocab_size - 1);
  check_config_int(source, "eos_id", eos_id, 0, vocab_size - 1);
  PE_CHECK(max_positions >= 2, "config ", source, ": field 'max_positions' is ", max_positions,
           ", must be at least 2 (the start token and one generated token)");
}

double DecoderConfig::approx_parameters() const {
  double d = double(hidden_size), I = double(intermediate_size);
  const double P = double(prefix_length);
  // Prefix mode: no cross-attention (4 d^2 + 6 d per layer fewer), prefix_proj instead of memory_proj.
  double per_layer = (P > 0 ? 4 : 8) * d * d + 2 * d * I + (P > 0 ? 3 : 9) * d + I;
  const double conditioning = P > 0 ? double(memory_dim) * P * d + P * d : double(memory_dim) * d + d;
  return double(vocab_size) * d + double(max_positions) * d + conditioning + double(num_layers) * per_layer;
}

std::string DecoderConfig::to_json() const {
  nlohmann::json j = {{"model_type", "protst_decoder"},
                      {"vocab_size", vocab_size},
                      {"hidden_size", hidden_size},
                      {"num_hidden_layers", num_layers},
                      {"num_attention_heads", num_heads},
                      {"intermediate_size", intermediate_size},
                      {"max_position_embeddings", max_positions},
                      {"memory_dim", memory_dim},
                      {"prefix_length", prefix_length},
                      {"layer_norm_eps", layer_norm_eps},
                      {"bos_token_id", bos_id},
                      {"eos_token_id", eos_id},
                      {"pad_token_id", pad_id}};
  return j.dump(2) + "\n";
}

DecoderConfig DecoderConfig::from_json_text(const std::string& text, const std::string& source) {
  JsonConfig j(text, source);
  std::string type = j.value("model_type", std::string());
  PE_CHECK(type == "protst_decoder", "config ", source, ": model_type '", type, "' is not a protst_decoder");
  DecoderConfig c;
  j.get("vocab_size", c.vocab_size);
  j.get("hidden_size", c.hidden_size);
  j.get("num_hidden_layers", c.num_layers);
  j.get("num_attention_heads", c.num_heads);
  j.get("intermediate_size", c.intermediate_size);
  j.get("max_position_embeddings", c.max_positions);
  j.get("memory_dim", c.memory_dim);
  j.get("prefix_length", c.prefix_length);  // absent in decoders written before prefix conditioning: 0
  j.get("layer_norm_eps", c.layer_norm_eps);
  j.get("bos_token_id", c.bos_id);
  j.get("eos_token_id", c.eos_id);
  j.get("pad_token_id", c.pad_id);
  c.validate(source);
  return c;
}

// ------------------------------------------------------------------------------------------- model

Decoder::Decoder(const DecoderConfig& cfg, Generator& gen, const InitSpec& spec) : cfg_(cfg) {
  cfg.validate("decoder");
  const double std = 0.02;  // GPT-2's initializer_range
  const int64_t d = cfg.hidden_size;
  // GPT-2 scales the residual projections by 1/sqrt(2 * layers) so the residual stream's variance
  // does not grow with depth.
  const double std_res = std / std::sqrt(2.0 * double(cfg.num_layers));
  tok_emb_ = ps_.add("decoder.embed_tokens.weight", init_normal({cfg.vocab_size, d}, gen, spec, std));
  pos_emb_ = ps_.add("decoder.embed_positions.weight", init_normal({cfg.max_positions, d}, gen, spec, std));
  const bool prefix_mode = cfg.prefix_length > 0;
  if (prefix_mode)
    prefix_proj_ = make_linear(ps_, "decoder.prefix_proj", cfg.memory_dim, cfg.prefix_length * d, true, std, gen, spec);
  else
    memory_proj_ = make_linear(ps_, "decoder.memory_proj", cfg.memory_dim, d, true, std, gen, spec);
  for (int64_t i = 0; i < cfg.num_layers; ++i) {
    const std::string p = "decoder.layers." + std::to_string(i) + ".";
    Layer L;
    L.ln_self = make_layer_norm(ps_, p + "self_attn_layer_norm", d, cfg.layer_norm_eps, spec);
    L.self.q = make_linear(ps_, p + "self_attn.q_proj", d, d, true, std, gen, spec);
    L.self.k = make_linear(ps_, p + "self_attn.k_proj", d, d, true, std, gen, spec);
    L.self.v = make_linear(ps_, p + "self_attn.v_proj", d, d, true, std, gen, spec);
    L.self.o = make_linear(ps_, p + "self_attn.out_proj", d, d, true, std_res, gen, spec);
    if (!prefix_mode) {
      L.ln_cross = make_layer_norm(ps_, p + "cross_attn_layer_norm", d, cfg.layer_norm_eps, spec);
      L.cross.q = make_linear(ps_, p + "cross_attn.q_proj", d, d, true, std, gen, spec);
      L.cross.k = make_linear(ps_, p + "cross_attn.k_proj", d, d, true, std, gen, spec);
      L.cross.v = make_linear(ps_, p + "cross_attn.v_proj", d, d, true, std, gen, spec);
      L.cross.o = make_linear(ps_, p + "cross_attn.out_proj", d, d, true, std_res, gen, spec);
    }
    L.ln_mlp = make_layer_norm(ps_, p + "final_layer_norm", d, cfg.layer_norm_eps, spec);
    L.fc1 = make_linear(ps_, p + "fc1", d, cfg.intermediate_size, true, std, gen, spec);
    L.fc2 = make_linear(ps_, p + "fc2", cfg.intermediate_size, d, true, std_res, gen, spec);
    layers_.push_back(L);
  }
  ln_f_ = make_layer_norm(ps_, "decoder.layer_norm", d, cfg.layer_norm_eps, spec);
}

Tensor Decoder::prefix(const Tensor& memory) const {
  const int64_t B = memory.size(0), P = cfg_.prefix_length;
  PE_CHECK(memory.dim() == 3 && memory.size(1) == 1 && memory.size(2) == cfg_.memory_dim, "Decoder: prefix memory ",
           memory.str(), " is not one pooled embedding per row [", B, ", 1, ", cfg_.memory_dim, "]");
  const Tensor e = memory.to(tok_emb_.device()).to(tok_emb_.dtype()).reshape({B, cfg_.memory_dim});
  return prefix_proj_(e).view({B, P, cfg_.hidden_size});
}

Tensor Decoder::hidden(const Tensor& ids, const Tensor& memory, const Tensor& memory_mask) const {
  PE_CHECK(ids.dim() == 2 && ids.dtype() == DType::I64, "Decoder: ids must be i64 [B, L], got ", ids.str());
  const int64_t B = ids.size(0), L = ids.size(1), d = cfg_.hidden_size, H = cfg_.num_heads, hd = cfg_.head_dim();
  PE_CHECK(L >= 1 && L <= cfg_.max_positions, "Decoder: sequence length ", L, " is outside [1, max_positions ",
           cfg_.max_positions, "]");
  PE_CHECK(memory.dim() == 3 && memory.size(0) == B && memory.size(2) == cfg_.memory_dim, "Decoder: memory ",
           memory.str(), " is not [", B, ", Lm, ", cfg_.memory_dim, "]");
  const int64_t Lm = memory.size(1);
  PE_CHECK(!memory_mask.defined() || memory_mask.shape() == Shape({B, Lm}), "Decoder: memory mask ",
           memory_mask.str(), " is not [", B, ", ", Lm, "]");
  const Device dev = tok_emb_.device();
  const DType dt = tok_emb_.dtype();
  Tensor x = add(embedding(tok_emb_, ids.to(dev)), embedding(pos_emb_, Tensor::arange(L, DType::I64, dev)).view({1, L, d}));
  const double scale = 1.0 / std::sqrt(double(hd));
  const int64_t P = cfg_.prefix_length;
  if (P > 0) {
    PE_CHECK(!memory_mask.defined(), "Decoder: a prefix decoder reads one pooled embedding per row, without a mask");
    x = concat({prefix(memory), x}, 1);  // [B, P + L, d]
    const int64_t T = P + L;
    for (const Layer& layer : layers_) {
      Tensor h = layer.ln_self(x);
      Tensor q = layer.self.q(h).view({B, T, H, hd}), k = layer.self.k(h).view({B, T, H, hd});
      Tensor v = layer.self.v(h).view({B, T, H, hd});
      x = add(x, layer.self.o(attention(q, k, v, Tensor(), scale, /*causal=*/true).reshape({B, T, d})));
      x = add(x, layer.fc2(gelu(layer.fc1(layer.ln_mlp(x)))));
    }
    return split(ln_f_(x), {P, L}, 1)[1];
  }
  Tensor mem = memory_proj_(memory.to(dev).to(dt));  // [B, Lm, d]
  Tensor mmask = memory_mask.defined() ? memory_mask.to(dev).to(dt) : Tensor();
  for (const Layer& layer : layers_) {
    Tensor h = layer.ln_self(x);
    Tensor q = layer.self.q(h).view({B, L, H, hd}), k = layer.self.k(h).view({B, L, H, hd});
    Tensor v = layer.self.v(h).view({B, L, H, hd});
    x = add(x, layer.self.o(attention(q, k, v, Tensor(), scale, /*causal=*/true).reshape({B, L, d})));
    h = layer.ln_cross(x);
    Tensor cq = layer.cross.q(h).view({B, L, H, hd});
    Tensor ck = layer.cross.k(mem).view({B, Lm, H, hd}), cv = layer.cross.v(mem).view({B, Lm, H, hd});
    x = add(x, layer.cross.o(attention(cq, ck, cv, mmask, scale).reshape({B, L, d})));
    x = add(x, layer.fc2(gelu(layer.fc1(layer.ln_mlp(x)))));
  }
  return ln_f_(x);
}

Tensor Decoder::logits(const Tensor& hidden) const { return linear(hidden, tok_emb_); }

DecoderLoss Decoder::loss(const Tensor& ids, const Tensor& memory, const Tensor& memory_mask) const {
  PE_CHECK(ids.dim() == 2 && ids.size(1) >= 2, "Decoder::loss: ids must be [B, L >= 2] (start token + targets), got ",
           ids.str());
  const int64_t B = ids.size(0), L = ids.size(1), d = cfg_.hidden_size;
  Tensor host = ids.to(Device::cpu());
  const int64_t* id = host.data<int64_t>();
  // Positions t (0 <= t < L-1) whose target ids[:, t+1] is a real token (not padding). Rows end with
  // eos then pads; the eos is a target (the model must learn to stop).
  std::vector<int64_t> rows, targets;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t + 1 < L; ++t) {
      int64_t y = id[b * L + t + 1];
      PE_CHECK(y >= 0 && y < cfg_.vocab_size, "Decoder::loss: token id ", y, " at row ", b, " position ", t + 1,
               " is outside the vocabulary [0, ", cfg_.vocab_size, ")");
      if (y == cfg_.pad_id) continue;
      rows.push_back(b * (L - 1) + t);
      targets.push_back(y);
    }
  Tensor inputs = host.narrow(1, 0, L - 1).contiguous();
  Tensor h = hidden(inputs, memory, memory_mask).reshape({B * (L - 1), d});
  const Device dev = h.device();
  Tensor index = Tensor::from_vector(rows, {int64_t(rows.size())}).to(dev);
  Tensor target = Tensor::from_vector(targets, {int64_t(targets.size())}).to(dev);
  struct Head {
    const Decoder* self;
    Tensor operator()(const Tensor& x) const { return self->logits(x); }
  };
  MaskedCeResult r = masked_cross_entropy(h, index, target, Head{this});
  DecoderLoss out;
  out.loss = r.loss;
  out.tokens = r.count;
  out.accuracy = r.accuracy;
  return out;
}

// ------------------------------------------------------------------------------ cached decoding

class CachedDecodeSession : public DecodeSession {
 public:
  CachedDecodeSession(const Decoder& dec, const Tensor& memory, const Tensor& memory_mask) : d_(dec) {
    const DecoderConfig& c = dec.config();
    PE_CHECK(memory.dim() == 3 && memory.size(2) == c.memory_dim, "decode session: memory ", memory.str(),
             " is not [B, Lm, ", c.memory_dim, "]");
    NoGradGuard ng;
    R_ = memory.size(0);
    const int64_t Lm = memory.size(1), H = c.num_heads, hd = c.head_dim();
    const Device dev = dec.tok_emb_.device();
    const DType dt = dec.tok_emb_.dtype();
    if (c.prefix_length > 0) {
      // Prefix mode: the prefix's keys and values go into the self-attention caches first (causal
      // among themselves, as in Decoder::hidden); token positions then count from 0 as there.
      PE_CHECK(!memory_mask.defined(), "decode session: a prefix decoder reads one pooled embedding per row, without a mask");
      const int64_t P = c.prefix_length, d = c.hidden_size;
      Tensor x = dec.prefix(memory);
      const double scale = 1.0 / std::sqrt(double(hd));
      for (const Decoder::Layer& layer : dec.layers_) {
        cache_.emplace_back(R_, H, hd, dt, dev, 64 + P);
        Tensor h = layer.ln_self(x);
        cache_.back().append(layer.self.k(h).view({R_, P, H, hd}), layer.self.v(h).view({R_, P, H, hd}));
        x = add(x, layer.self.o(cache_.back().attend(layer.self.q(h).view({R_, P, H, hd}), scale).reshape({R_, P, d})));
        x = add(x, layer.fc2(gelu(layer.fc1(layer.ln_mlp(x)))));
      }
      return;
    }
    Tensor mem = dec.memory_proj_(memory.to(dev).to(dt));
    if (memory_mask.defined()) mask_ = memory_mask.to(dev).to(dt);
    for (const Decoder::Layer& layer : dec.layers_) {
      ck_.push_back(layer.cross.k(mem).view({R_, Lm, H, hd}).contiguous());
      cv_.push_back(layer.cross.v(mem).view({R_, Lm, H, hd}).contiguous());
      cache_.emplace_back(R_, H, hd, dt, dev, 64);
    }
  }
  int64_t rows() const override { return R_; }
  int64_t vocab_size() const override { return d_.config().vocab_size; }

  std::vector<float> step(const std::vector<int64_t>& tokens) override {
    PE_CHECK(int64_t(tokens.size()) == R_, "decode session: ", tokens.size(), " tokens for ", R_, " rows");
    const DecoderConfig& c = d_.config();
    PE_CHECK(pos_ < c.max_positions, "decode: sequence of ", pos_ + 1, " tokens exceeds the decoder's ",
             c.max_positions, " positions (lower the maximum length)");
    NoGradGuard ng;
    const int64_t d = c.hidden_size, H = c.num_heads, hd = c.head_dim();
    const Device dev = d_.tok_emb_.device();
    const double scale = 1.0 / std::sqrt(double(hd));
    Tensor ids = Tensor::from_vector(tokens, {R_, 1}).to(dev);
    Tensor x = add(embedding(d_.tok_emb_, ids),
                   embedding(d_.pos_emb_, Tensor::from_vector(std::vector<int64_t>{pos_}, {1}).to(dev)).view({1, 1, d}));
    for (size_t l = 0; l < d_.layers_.size(); ++l) {
      const Decoder::Layer& layer = d_.layers_[l];
      Tensor h = layer.ln_self(x);
      Tensor q = layer.self.q(h).view({R_, 1, H, hd});
      cache_[l].append(layer.self.k(h).view({R_, 1, H, hd}), layer.self.v(h).view({R_, 1, H, hd}));
      x = add(x, layer.self.o(cache_[l].attend(q, scale).reshape({R_, 1, d})));
      if (c.prefix_length == 0) {
        h = layer.ln_cross(x);
        Tensor cq = layer.cross.q(h).view({R_, 1, H, hd});
        x = add(x, layer.cross.o(attention(cq, ck_[l], cv_[l], mask_, scale).reshape({R_, 1, d})));
      }
      x = add(x, layer.fc2(gelu(layer.fc1(layer.ln_mlp(x)))));
    }
    ++pos_;
    Tensor logits = d_.logits(d_.ln_f_(x).reshape({R_, d}));
    return logits.to(Device::cpu()).to(DType::F32).contiguous().to_float_vector();
  }

  void reorder(const std::vector<int64_t>& parent) override {
    for (int64_t p : parent)
      PE_CHECK(p >= 0 && p < R_, "decode session: reorder parent ", p, " outside [0, ", R_, ")");
    NoGradGuard ng;
    const Device dev = d_.tok_emb_.device();
    Tensor idx = Tensor::from_vector(parent, {int64_t(parent.size())}).to(dev);
    for (size_t l = 0; l < cache_.size(); ++l) {
      cache_[l].reorder(parent);
      if (l < ck_.size()) {  // cross-attention mode
        ck_[l] = index_select(ck_[l], 0, idx).contiguous();
        cv_[l] = index_select(cv_[l], 0, idx).contiguous();
      }
    }
    if (mask_.defined()) mask_ = index_select(mask_, 0, idx).contiguous();
    R_ = int64_t(parent.size());
  }

 private:
  const Decoder& d_;
  int64_t R_ = 0, pos_ = 0;
  Tensor mask_;
  std::vector<Tensor> ck_, cv_;
  std::vector<KvCache> cache_;
};

std::unique_ptr<DecodeSession> Decoder::session(const Tensor& memory, const Tensor& memory_mask) const {
  return std::make_unique<CachedDecodeSession>(*this, memory, memory_mask);
}

}  // namespace pe
