#pragma once
// The generative arms' decoder (issue #12): a pre-LayerNorm Transformer decoder conditioned on the
// other modality by cross-attention, as Prot2Text's GPT-2 decoder attends to ESM states.
//
//   x = tok_emb[ids] + pos_emb[0..L)
//   per layer:  x += SelfAttn(LN1(x))            causal, over the decoder's own tokens
//               x += CrossAttn(LN2(x), memory)   keys/values from the encoder states (padding masked)
//               x += W2 gelu(W1 LN3(x))
//   h = LN_f(x);  logits = h tok_emb^T           (output head tied to the input embedding)
//
// memory [B, Lm, memory_dim] is what the decoder reads: an encoder's last hidden states (ESM for the
// describe arm, BERT for design), projected to the decoder width once (memory_proj).
//
// Prefix conditioning (prefix_length P > 0, as ClipCap's prefix for GPT-2): the memory is one pooled
// embedding per row ([B, 1, memory_dim], e.g. a ProtST joint-space embedding, or the one the
// conversion MLP imputes when the other modality is missing). prefix_proj maps it to P vectors of
// the decoder width that go before the tokens; the layers have no cross-attention then:
//   x = [prefix_proj(e).view(P, d) ; tok_emb[ids] + pos_emb[0..L)]     (the prefix has no position)
//   per layer:  x += SelfAttn(LN1(x)) (causal over prefix and tokens);  x += W2 gelu(W1 LN3(x))
//   h = LN_f(x)[P:]
// The same class serves both arms; only the vocabulary differs (WordPiece for describe, the ESM
// alphabet for design).
#include <memory>
#include <string>
#include <vector>

#include "models/layers.h"

namespace pe {

class DecodeSession;  // decoders/generate.h

struct DecoderConfig {
  int64_t vocab_size = 0;          // the target tokenizer's vocabulary
  int64_t hidden_size = 256, num_layers = 4, num_heads = 4, intermediate_size = 1024;
  int64_t max_positions = 512;     // longest sequence including the start token
  int64_t memory_dim = 0;          // width of the conditioning states (or of the pooled embedding)
  int64_t prefix_length = 0;       // 0: cross-attention to memory; P > 0: P prefix vectors from memory [B, 1, .]
  double layer_norm_eps = 1e-5;
  int64_t bos_id = 0, eos_id = 0, pad_id = 0;  // start, end and padding tokens of the target vocabulary
  int64_t head_dim() const { return hidden_size / num_heads; }
  // Throws pe::Error naming `source` and the field for a size out of range or inconsistent ids.
  void validate(const std::string& source) const;
  std::string to_json() const;
  static DecoderConfig from_json_text(const std::string& text, const std::string& source);
  double approx_parameters() const;
};

// A teacher-forced batch: ids [B, L] i64 begin with bos and end with eos then pad; the model predicts
// ids[:, 1:] from ids[:, :-1]. Rows shorter than L are right-padded with pad_id.
struct DecoderLoss {
  Tensor loss;          // mean next-token cross-entropy over real target tokens (differentiable)
  int64_t tokens = 0;   // real target tokens counted
  double accuracy = 0;  // top-1 next-token agreement over those tokens
};

class Decoder {
 public:
  Decoder(const DecoderConfig& cfg, Generator& gen, const InitSpec& spec = {});
  const DecoderConfig& config() const { return cfg_; }
  ParamStore& params() { return ps_; }
  const ParamStore& params() const { return ps_; }

  // Final hidden states [B, L, d] of ids [B, L] attending causally to themselves and to memory
  // [B, Lm, memory_dim] (memory_mask [B, Lm], nonzero = real; undefined = all real). Prefix mode:
  // memory [B, 1, memory_dim], no mask.
  Tensor hidden(const Tensor& ids, const Tensor& memory, const Tensor& memory_mask) const;
  // Tied output head: logits [..., V] of hidden [..., d].
  Tensor logits(const Tensor& hidden) const;
  // Next-token loss of a teacher-forced batch (see DecoderLoss): the logits are formed only for the
  // real target positions.
  DecoderLoss loss(const Tensor& ids, const Tensor& memory, const Tensor& memory_mask) const;

  // Step-by-step decoding with a key/value cache per layer (autograd/kv_cache.h): one row per memory
  // row; the memory's cross-attention keys and values are computed once; each step costs one
  // position, not the whole prefix. Equals make_recompute_session (generate.h) step for step.
  std::unique_ptr<DecodeSession> session(const Tensor& memory, const Tensor& memory_mask) const;

 private:
  friend class CachedDecodeSession;
  struct Attn {
    Linear q, k, v, o;
  };
  struct Layer {
    LayerNorm ln_self, ln_cross, ln_mlp;
    Attn self, cross;
    Linear fc1, fc2;
  };
  DecoderConfig cfg_;
  ParamStore ps_;
  Tensor tok_emb_, pos_emb_;
  Linear memory_proj_;  // cross-attention mode
  Linear prefix_proj_;  // prefix mode: memory_dim -> prefix_length * hidden_size
  // The prefix [B, P, d] of memory [B, 1, memory_dim] (prefix mode).
  Tensor prefix(const Tensor& memory) const;
  std::vector<Layer> layers_;
  LayerNorm ln_f_;
};

}  // namespace pe
