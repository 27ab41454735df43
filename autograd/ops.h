#pragma once
// Differentiable ops. Models call only these; each checks its inputs (errors name the op and the
// shapes), dispatches to the backend of its inputs' device and records its gradient.
// Shapes follow PyTorch conventions; negative dims count from the end.
#include <vector>

#include "autograd/graph.h"
#include "core/rng.h"
#include "kernels/backend.h"

namespace pe {

// ---- elementwise, broadcasting like NumPy
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);  // gradient to the larger (a on ties)
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor pow(const Tensor& a, double s);
Tensor clamp_min(const Tensor& a, double s);
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor rsqrt(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor relu(const Tensor& a);
Tensor gelu(const Tensor& a);  // exact erf form: x * Phi(x)
Tensor abs(const Tensor& a);
Tensor square(const Tensor& a);
Tensor reciprocal(const Tensor& a);
// Non-differentiable comparisons (result in a's dtype, 1/0).
Tensor eq(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);

// cond ? a : b, broadcasting; cond any dtype (nonzero = true), not differentiated.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// x with positions where mask is nonzero replaced by value.
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);

// ---- reductions (dims empty = all dims)
Tensor sum(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor amax(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);  // ties share the gradient
// Reduces a broadcast gradient back to `shape` (sums broadcast dims).
Tensor sum_to(const Tensor& g, const Shape& shape);

// ---- shape
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim);

// ---- linear algebra
// matmul: 1-D/2-D/batched with broadcasting of leading dims, like torch.matmul (1-D operands not
// supported; use unsqueeze). Transposed views are passed to the GEMM without a copy.
Tensor matmul(const Tensor& a, const Tensor& b);
// x @ weight^T + bias; weight [out, in] as in PyTorch/HF checkpoints; bias may be undefined.
// Under an AutocastBf16 scope on CUDA, f32 inputs are multiplied as bf16 (fp32 accumulation) and the
// result returned in f32; gradients flow back to the f32 (master) weights.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());
// act(linear(x, weight, bias)) with act Gelu or Relu: the bias add and the activation in one pass
// (Backend::bias_act); with no gradient to record, in the product's own pass (Backend::linear_epilogue).
// Same operations as the composition.
Tensor linear_act(const Tensor& x, const Tensor& weight, const Tensor& bias, UnaryOp act);
// residual + linear(x, weight, bias) (a pre-LN block's residual add); with no gradient to record, one pass
// (Backend::linear_epilogue: the CPU adds bias and residual to each output tile of its f32 product).
Tensor linear_residual(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& residual);

// Mixed precision: bf16 matrix products on CUDA inside the scope (no effect on the CPU, whose
// reference backend computes in f32/f64).
bool autocast_bf16();
struct AutocastBf16 {
  explicit AutocastBf16(bool on = true);
  ~AutocastBf16();
  AutocastBf16(const AutocastBf16&) = delete;
  AutocastBf16& operator=(const AutocastBf16&) = delete;

 private:
  bool prev_;
};

// ---- normalisation and activations over the last dim
Tensor softmax(const Tensor& x, int64_t dim = -1);
Tensor log_softmax(const Tensor& x, int64_t dim = -1);
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps);
// layer_norm(x + r): the residual add of a post-LN block fused into the normalisation (one kernel).
Tensor add_layer_norm(const Tensor& x, const Tensor& r, const Tensor& weight, const Tensor& bias, double eps);
// x / max(||x||_2, eps) along dim (torch.nn.functional.normalize).
Tensor l2_normalize(const Tensor& x, int64_t dim = -1, double eps = 1e-12);

// ---- indexing
Tensor embedding(const Tensor& weight, const Tensor& ids);  // weight [V, D], ids i64 any shape
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& idx);  // idx 1-D i64
// Returns a copy of dst with dst.index(dim, idx[j]) += src.index(dim, j); differentiable in dst and src.
Tensor index_add(const Tensor& dst, int64_t dim, const Tensor& idx, const Tensor& src);
Tensor gather(const Tensor& x, int64_t dim, const Tensor& idx);  // torch.gather, idx same rank
// zeros of `shape` with out.index(dim)[idx] += src (torch scatter_add onto zeros).
Tensor scatter_add(const Shape& shape, int64_t dim, const Tensor& idx, const Tensor& src);

// ---- model pieces
// x: [B, L, H, D]; rotate-half rotary with positions 0..L-1. With positions (i64, one per token:
// [B, L] or [B * L]) the given positions instead; then x may also be packed [T, H, D] (the tokens of
// several sequences back to back, each sequence's positions restarting at 0).
Tensor rotary(const Tensor& x, double base = 10000.0, const Tensor& positions = Tensor());
// Inverted dropout; identity when !train or p == 0. Draws from gen.
Tensor dropout(const Tensor& x, double p, bool train, Generator& gen);
// BatchNorm over channels (last dim) of x [N, C], statistics from the rows where row_mask
// (shape [N], nonzero = real) is set (all rows when undefined). Training uses batch statistics
// (biased variance for normalisation) and updates running_mean/var in place with momentum
// (unbiased variance, as PyTorch); eval uses the running statistics.
Tensor batch_norm(const Tensor& x, const Tensor& row_mask, const Tensor& weight, const Tensor& bias,
                  const Tensor& running_mean, const Tensor& running_var, bool train, double momentum, double eps);

// ---- losses
// Mean (over rows with target != ignore_index) cross-entropy of logits [N, C] with targets i64 [N].
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -100);
Tensor mse_loss(const Tensor& a, const Tensor& b);

// ---- random tensors (not differentiable)
Tensor rand(const Shape& shape, Generator& gen, DType dtype = DType::F32, Device device = Device::cpu());
Tensor randn(const Shape& shape, Generator& gen, DType dtype = DType::F32, Device device = Device::cpu(),
             double mean = 0.0, double std = 1.0);
Tensor bernoulli(const Shape& shape, double p, Generator& gen, DType dtype = DType::F32,
                 Device device = Device::cpu());

// ---- operator sugar
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& a) { return neg(a); }
inline Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
inline Tensor operator+(const Tensor& a, double s) { return add(a, s); }

}  // namespace pe
