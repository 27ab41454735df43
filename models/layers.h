#pragma once
// Building blocks shared by the models: a named parameter store (the HF tensor names are the keys,
// so checkpoints load and save by name), Linear, LayerNorm and the ReLU MLP of ProtST.
#include <map>
#include <string>
#include <vector>

#include "autograd/ops.h"

namespace pe {

// Parameters (and buffers, which never take gradients) by their checkpoint names, in creation order.
class ParamStore {
 public:
  Tensor add(const std::string& name, Tensor t, bool trainable = true);
  Tensor add_buffer(const std::string& name, Tensor t) { return add(name, std::move(t), false); }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  Tensor get(const std::string& name) const;
  const std::vector<std::string>& names() const { return order_; }
  bool is_buffer(const std::string& name) const;
  // Trainable tensors, optionally only those whose name starts with prefix.
  std::vector<Tensor> parameters(const std::string& prefix = "") const;
  // Freezes (no gradient, no backward work) or unfreezes every trainable tensor under prefix.
  void set_trainable(const std::string& prefix, bool on);
  int64_t numel(const std::string& prefix = "") const;
  // Adds every entry of `other` under `prefix` (the tensors are shared, not copied).
  void merge(const std::string& prefix, const ParamStore& other);
  // Overwrites a tensor's values in place (shape must match), keeping every handle valid.
  void assign(const std::string& name, const Tensor& value);

 private:
  std::vector<std::string> order_;
  std::map<std::string, Tensor> index_;
  std::map<std::string, bool> buffer_;
};

struct InitSpec {
  DType dtype = DType::F32;
  Device device = Device::cpu();
  bool random_init = true;  // false: zeros, for a model whose every weight is loaded next (saves the draws)
};
// Normal(0, std) weights, or zeros when !spec.random_init.
Tensor init_normal(const Shape& shape, Generator& gen, const InitSpec& spec, double std);

struct Linear {
  Tensor weight, bias;  // weight [out, in] as in PyTorch; bias may be undefined
  Tensor operator()(const Tensor& x) const { return linear(x, weight, bias); }
  // act(this(x)) for act Gelu or Relu, fused (linear_act).
  Tensor act(const Tensor& x, UnaryOp op) const { return linear_act(x, weight, bias, op); }
  // residual + this(x), fused when no gradient is recorded (linear_residual).
  Tensor residual(const Tensor& x, const Tensor& res) const { return linear_residual(x, weight, bias, res); }
};
// HF-style init: weight ~ N(0, std), bias 0.
Linear make_linear(ParamStore& ps, const std::string& name, int64_t in, int64_t out, bool bias, double std,
                   Generator& gen, const InitSpec& spec);

struct LayerNorm {
  Tensor weight, bias;
  double eps = 1e-5;
  Tensor operator()(const Tensor& x) const { return layer_norm(x, weight, bias, eps); }
  // LayerNorm(x + residual) in one kernel (post-LN blocks).
  Tensor add(const Tensor& x, const Tensor& residual) const { return add_layer_norm(x, residual, weight, bias, eps); }
};
LayerNorm make_layer_norm(ParamStore& ps, const std::string& name, int64_t dim, double eps, const InitSpec& spec);

// torchdrug layers.MLP(in, [hidden..., out]) with ReLU between layers (not after the last),
// names "<name>.layers.<i>.{weight,bias}". PyTorch default init (uniform ±1/sqrt(in)).
struct MLP {
  std::vector<Linear> layers;
  Tensor operator()(const Tensor& x) const;
};
MLP make_mlp(ParamStore& ps, const std::string& name, int64_t in, const std::vector<int64_t>& dims, Generator& gen,
             const InitSpec& spec);

// softmax(scale * q k^T + mask) v for q [B, Lq, H, D], k, v [B, Lk, H, D]; key_mask [B, Lk]
// (nonzero = real key) or undefined. Query rows with no real key give zeros. Returns [B, Lq, H, D].
// causal: query i also sees only the keys j <= i + (Lk - Lq) (bottom-right aligned, as
// AttentionLayout::causal in kernels/backend.h).
// The fused flash-style kernel (autograd/fused.h), in bf16 under AutocastBf16 on CUDA, unless fused
// kernels are switched off (PE_FUSED=0): then the composition below.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_mask, double scale,
                 bool causal = false);
// The packed variable-length form (flash_attention_varlen, non-causal, the same cu for queries and
// keys: self-attention of each packed sequence), under the same autocast rule as attention(). Only
// with the fused kernels on (fused_attention); callers fall back to the padded layout otherwise.
Tensor attention_varlen(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& cu, int64_t max_len,
                        double scale);
// The composition reference, on any device: matmul, a large negative additive bias at masked keys
// (the key mask, and with causal the keys above the diagonal), softmax, matmul; rows that see no key
// are zeroed.
Tensor attention_reference(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_mask, double scale,
                           bool causal = false);

// Where the real tokens of a padded batch go when it is packed (the encoders' forward_packed):
// attention_mask [B, L] (nonzero = real). keep: flat index b * L + l of every real token in order; pos:
// its position l; seq: its row b; cu [B + 1]: cumulative row lengths; max_len: the longest row.
// ok is false when a row is not a run of ones followed by zeros, or when nothing is padding: then the
// padded forward is the one to run.
struct PackedLayout {
  bool ok = false;
  std::vector<int64_t> keep, pos, seq, cu;
  int64_t max_len = 0, total = 0;
};
PackedLayout packed_layout(const Tensor& attention_mask);

// Whether models use the fused kernels (attention, InfoNCE, masked cross-entropy) on CUDA.
// Default on; the environment variable PE_FUSED=0 selects the compositions (for debugging a kernel
// against its reference on the same device).
bool fused_kernels(const Device& d);
// Whether attention() uses the fused (flash-style) kernel: on CUDA as fused_kernels(), and on the
// CPU too, where the blocked kernel (kernels/cpu/fused.cpp) avoids the [B, H, L, L] tensors and the
// strided copies of the composition. PE_FUSED=0 turns it off on both.
bool fused_attention(const Device& d);

}  // namespace pe
