#pragma once
// The one interface between math and hardware. Ops (autograd/ops.cpp) check shapes, allocate
// outputs and record gradients; a Backend only computes. Every method documents the layout it
// accepts; unless stated, tensors are contiguous and of one floating dtype. The CPU backend is
// the reference; the CUDA backend (kernels/cuda) must match it within the dtype's tolerance.
#include <cstdint>
#include <vector>

#include "core/philox.h"
#include "core/tensor.h"

namespace pe {

enum class UnaryOp : uint8_t {
  Neg, Exp, Log, Sqrt, Rsqrt, Tanh, Sigmoid, Relu, Gelu, Abs, Square,
  PowScalar,   // x^s
  AddScalar,   // x + s
  MulScalar,   // x * s
  ClampMin,    // max(x, s)
  Recip,       // 1 / x
};
const char* unary_name(UnaryOp op);

enum class BinaryOp : uint8_t { Add, Sub, Mul, Div, Max, Min, Eq, Gt, Lt };
const char* binary_name(BinaryOp op);

enum class ReduceOp : uint8_t { Sum, Mean, Max };

struct AdamParams {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  bool decoupled = true;  // AdamW: decay applied to the weight, not added to the gradient
  int64_t step = 1;       // 1-based step for bias correction
};

// Which rows of a fused attention call form one sequence (Backend::attention_forward/backward).
// Padded: q [B, Lq, H, D], k, v [B, Lk, H, D]; key_mask Bool or U8 [B, Lk] (nonzero = real key) or
// undefined (every key real). Packed (variable length): q [Tq, H, D], k, v [Tk, H, D]; cu_q, cu_k i32 or
// i64 [B+1] on q's device, nondecreasing from 0 to Tq (Tk): sequence b owns rows cu[b] .. cu[b+1]-1.
//
// causal: bottom-right aligned, as FlashAttention >= 2.1. In a sequence of nq queries and nk keys,
// query i (0-based within the sequence) sees key j iff j <= i + (nk - nq): with nq == nk the usual
// lower triangle; with nq < nk the queries are the last nq positions of the keys (a decode step);
// with nq > nk the first nq - nk queries see no key. Padded: nq = Lq and nk = Lk are the tensor
// sizes, whatever the key mask says, and a key must also be real (key_mask) to be seen: right-padded
// sequences with Lq == Lk get the usual causal attention on their real prefix. Packed: nq and nk are
// each sequence's own lengths. A query row that sees no key gives zeros (and lse +inf), as without
// causal. Kernels skip the key tiles above the diagonal; they do not compute and discard them.
struct AttentionLayout {
  Tensor key_mask;               // padded only
  Tensor cu_q, cu_k;             // packed only
  int64_t max_q = 0, max_k = 0;  // packed only: the longest query / key sequence (sizes the CUDA grid; trusted)
  double scale = 1.0;            // logits are scale * q.k (ProtST's fusion uses 1)
  bool causal = false;           // see above
  bool packed() const { return cu_q.defined(); }
};

// A softmax cross-entropy of rows x [R, D] against columns y [C, D] whose logits
// z[i, j] = a * x_i . y_j are never stored; a = exp(min(logit_scale, max_logit_scale)), or 1 when
// logit_scale is undefined. Positives of row i: the columns j with rkey(i) == ckey(j), where
// rkey(i) = row_group[i] if defined else row_offset + i, and ckey(j) = col_group[j] if defined else j.
// Across GPUs: x holds this rank's rows, whose global indices are row_offset .. row_offset+R-1 among
// the C gathered columns (row_group = col_group[row_offset .. +R] when groups are used).
struct InfoNceArgs {
  Tensor logit_scale;  // one element, any floating dtype, on x's device; undefined: a = 1
  double max_logit_scale = 0;
  Tensor row_group, col_group;  // i64 [R] / [C], contiguous, or undefined
  int64_t row_offset = 0;
};

// Backend::linear_epilogue's argument checks (shared by the implementations); returns the row count.
int64_t check_linear_epilogue(const Tensor& x, const Tensor& w, const Tensor& bias, bool has_act, UnaryOp act,
                              const Tensor& residual, const Tensor& pre, const Tensor& out);

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // memory
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* p, size_t nbytes) = 0;
  // Host <-> this device copies of raw bytes (synchronous).
  virtual void copy_from_host(void* dst, const void* src, size_t nbytes) = 0;
  virtual void copy_to_host(void* dst, const void* src, size_t nbytes) = 0;

  // dst[i] = cast(src[i]) for any strides (broadcast stride 0 allowed in src) and any dtypes.
  virtual void copy_strided(const Tensor& src, const Tensor& dst) = 0;
  virtual void fill(const Tensor& dst, double value) = 0;  // dst contiguous, any dtype
  // dst[i] = sample(i) from philox stream (seed, offset + i); any floating dtype.
  virtual void random(const Tensor& dst, RandomKind kind, double a, double b, uint64_t seed, uint64_t offset) = 0;

  // out = f(x; s). x, out contiguous, same floating dtype.
  virtual void unary(UnaryOp op, const Tensor& x, const Tensor& out, double s) = 0;
  // gx = gout * f'(x) (y = f(x) is given where cheaper than recomputing).
  virtual void unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& gout, const Tensor& gx,
                              double s) = 0;
  // out = a (op) b. a, b: any strides, already expanded to out's shape (stride 0 for broadcast).
  // out contiguous. Comparisons give 1/0 in out's dtype.
  virtual void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) = 0;
  // out = cond ? a : b; all expanded to out's shape; cond of any dtype (nonzero = true).
  virtual void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) = 0;
  // x: [rows, n] contiguous -> out: [rows].
  virtual void reduce_rows(ReduceOp op, const Tensor& x, const Tensor& out) = 0;

  // Row softmax over the last dim of x: [rows, n]. log=true gives log-softmax.
  virtual void softmax(const Tensor& x, const Tensor& y, bool log) = 0;
  // gx = y * (gy - sum(gy*y))  or, for log-softmax, gy - exp(y) * sum(gy).
  virtual void softmax_backward(const Tensor& y, const Tensor& gy, const Tensor& gx, bool log) = 0;

  // x: [rows, n]; weight, bias: [n] (either may be undefined); y: [rows, n];
  // mean, rstd: [rows] f32/f64 statistics saved for backward.
  virtual void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& y,
                          const Tensor& mean, const Tensor& rstd) = 0;
  // s = x + r (rounded to x's dtype), then layer_norm(s) into y, mean, rstd: the residual add of a
  // post-LN block (BERT) fused into the normalisation; s is what the backward reads.
  virtual void add_layer_norm(const Tensor& x, const Tensor& r, const Tensor& weight, const Tensor& bias, double eps,
                              const Tensor& s, const Tensor& y, const Tensor& mean, const Tensor& rstd) = 0;
  // gx overwritten; gweight, gbias (if defined) overwritten with this call's sums.
  virtual void layer_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                                   const Tensor& gy, const Tensor& gx, const Tensor& gweight,
                                   const Tensor& gbias) = 0;

  // out[b] = alpha * op(a[b]) @ op(bm[b]) + beta * out[b].
  // a: [batch, M, K] (or [batch, K, M] when trans_a), b: [batch, K, N] (or [batch, N, K] when trans_b),
  // each matrix contiguous; batch stride of a or b may be 0 (broadcast). out: [batch, M, N] contiguous.
  virtual void matmul(const Tensor& a, const Tensor& b, const Tensor& out, bool trans_a, bool trans_b,
                      double alpha, double beta) = 0;
  // out[0] = op(a[0]) @ op(b[0]) + bias, batch 1: the linear layer. bias: [N] contiguous, the dtype of
  // out (f32 bias with bf16 a, b into an f32 out). CUDA adds the bias in the cuBLASLt epilogue.
  virtual void matmul_bias(const Tensor& a, const Tensor& b, const Tensor& bias, const Tensor& out, bool trans_a,
                           bool trans_b) = 0;

  // x: [outer, n, inner]; idx: [k] i64 in [0, n); out: [outer, k, inner].
  virtual void index_select(const Tensor& x, const Tensor& idx, const Tensor& out) = 0;
  // dst[:, idx[j], :] += src[:, j, :] in order of j (deterministic). dst: [outer, n, inner].
  virtual void index_add(const Tensor& dst, const Tensor& idx, const Tensor& src) = 0;
  // Along the last dim: x: [rows, n], idx: [rows, k] i64 -> out[r, j] = x[r, idx[r, j]].
  virtual void gather_rows(const Tensor& x, const Tensor& idx, const Tensor& out) = 0;
  // dst[r, idx[r, j]] += src[r, j].
  virtual void scatter_add_rows(const Tensor& dst, const Tensor& idx, const Tensor& src) = 0;

  // Rotary embedding, rotate-half convention. x, out: [batch, L, heads, dim] contiguous, dim even;
  // inv_freq[i] = base^(-2i/dim). inverse=true applies the transpose rotation (the backward).
  // The position of row (b, l) is l, or positions[b * L + l] when positions (i64 [batch * L],
  // contiguous, on x's device) is given: packed variable-length batches, where each sequence's
  // tokens restart at 0.
  virtual void rotary(const Tensor& x, const Tensor& out, double base, bool inverse,
                      const Tensor& positions = Tensor()) = 0;

  // One Adam/AdamW step in place on param, m, v (all same shape, contiguous; m, v f32/f64).
  virtual void adam_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                         const AdamParams& p) = 0;

  virtual void synchronize() {}

  // ---- appended for mixed precision and the optimizer. The base implementations (kernels/cpu/extra.cpp)
  // are the CPU reference; a device backend overrides them.
  // True when x (any dtype, any strides) holds a NaN or an infinity; integer tensors never do.
  // Synchronises with the device.
  virtual bool has_nonfinite(const Tensor& x);
  // has_nonfinite over many tensors (e.g. every gradient of a step) with one synchronisation.
  virtual bool any_nonfinite(const std::vector<Tensor>& xs);
  // One Adam/AdamW step over many tensors, as adam_step does for each i: master[i] (f32 or f64) and
  // m[i], v[i] (same dtype as master[i]) updated in place from grad[i] (any floating dtype, e.g. the
  // bf16 gradient of a bf16 working copy); working[i], when defined (any floating dtype), receives
  // cast(updated master[i]). All contiguous with equal element counts per i; lists of equal length
  // (working may be empty).
  virtual void adam_multi_tensor(const std::vector<Tensor>& master, const std::vector<Tensor>& grad,
                                 const std::vector<Tensor>& m, const std::vector<Tensor>& v,
                                 const std::vector<Tensor>& working, const AdamParams& p);

  // out = act(y + bias) over the rows of y ([rows, n], bias [n], contiguous, one floating dtype); act is
  // Gelu or Relu. pre, when defined, receives y + bias (what the activation's backward reads). pre and
  // out may alias y. The base implementation is binary add + unary (any backend); the CPU does it in
  // one pass per row.
  virtual void bias_act(const Tensor& y, const Tensor& bias, UnaryOp act, const Tensor& pre, const Tensor& out);
  // The linear layer with its epilogue: out = act(x w^T + bias) + residual, for x [rows, in], w [n, in],
  // out [rows, n], all contiguous and of one floating dtype. bias [n] or undefined; act applies when
  // has_act (Gelu or Relu); residual like out or undefined, not aliasing out; pre (like out), when
  // defined, receives x w^T + bias before the activation (needs has_act). The base implementation is
  // matmul(_bias), bias_act and add (any backend); the CPU runs f32 in one pass (kernels/cpu/linear_f32.h).
  virtual void linear_epilogue(const Tensor& x, const Tensor& w, const Tensor& bias, bool has_act, UnaryOp act,
                               const Tensor& residual, const Tensor& pre, const Tensor& out);

  // ---- appended: fused attention and losses (autograd/fused.h). The CPU reference is kernels/cpu/fused.cpp,
  // the CUDA kernels kernels/cuda/{attention,info_nce,masked_ce}.cu. Statistics and per-row losses are in
  // the accumulation dtype: f64 for f64 inputs, f32 for f32 and bf16. All tensors contiguous; every
  // gradient output is overwritten. Backward passes are deterministic (no floating-point atomics).

  // softmax(scale * q k^T + key mask) v per (sequence, head), without the [Lq, Lk] matrix.
  // out: like q. lse: q's shape without the last dim (accumulation dtype): the log-sum-exp of the
  // scaled logits of each query row over its real keys, +inf for a row with none (its output is 0).
  virtual void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionLayout& layout,
                                 const Tensor& out, const Tensor& lse) = 0;
  // gq (like q), gk, gv (like k) from out, lse of attention_forward and gout = dL/d out.
  virtual void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                  const Tensor& lse, const Tensor& gout, const AttentionLayout& layout,
                                  const Tensor& gq, const Tensor& gk, const Tensor& gv) = 0;

  // One direction of InfoNCE (see InfoNceArgs): x [R, D], y [C, D] of one floating dtype.
  // stats [R, 2]: log-sum-exp of row i's logits over all columns and over its positives;
  // loss [R] = stats[i, 0] - stats[i, 1] (+inf for a row without positives).
  virtual void info_nce_forward(const Tensor& x, const Tensor& y, const InfoNceArgs& args, const Tensor& stats,
                                const Tensor& loss) = 0;
  // Gradients of L = g * (row_weight * sum_i loss_i + col_weight * sum_j loss'_j), g = gloss[0] (one
  // element on the device). loss'_j is the column direction, whose col_stats [C, 2] come from
  // info_nce_forward(y, x) with the groups swapped (meaningful for row_offset 0); col_stats undefined
  // drops that term. gx [R, D], gy [C, D]; glog [R] (accumulation dtype): row i's share of
  // dL/d log(a), so dL/d logit_scale = sum(glog) where logit_scale <= max_logit_scale, else 0.
  virtual void info_nce_backward(const Tensor& x, const Tensor& y, const InfoNceArgs& args, const Tensor& row_stats,
                                 const Tensor& col_stats, const Tensor& gloss, double row_weight, double col_weight,
                                 const Tensor& gx, const Tensor& gy, const Tensor& glog) = 0;

  // Cross-entropy of hidden [M, d] (the masked rows) against a vocabulary projection: logits
  // hidden weight^T + bias, weight [V, d], bias [V] or undefined (same dtype), targets i64 [M] in
  // [0, V) (trusted; one outside gives loss +inf). The [M, V] logits are never stored.
  // stats [M, 2]: (log-sum-exp, target logit); loss [M] = stats[i, 0] - stats[i, 1].
  virtual void masked_ce_forward(const Tensor& hidden, const Tensor& weight, const Tensor& bias,
                                 const Tensor& targets, const Tensor& stats, const Tensor& loss) = 0;
  // Gradients of gloss[0] * row_weight * sum_i loss_i: ghidden [M, d], gweight [V, d], gbias [V] (skipped
  // when undefined).
  virtual void masked_ce_backward(const Tensor& hidden, const Tensor& weight, const Tensor& bias,
                                  const Tensor& targets, const Tensor& stats, const Tensor& gloss, double row_weight,
                                  const Tensor& ghidden, const Tensor& gweight, const Tensor& gbias) = 0;

  // ---- appended: decode-step attention against a key/value cache (inference only, no backward).
  // q [B, Lnew, H, D]: the queries of the Lnew newest tokens of each batch row; k_cache, v_cache
  // [B, Lmax, H, D]: the cache in the models' own [batch, position, head, dim] layout, so a padded k/v
  // of attention_forward is a cache and appending a step copies [B, Lnew, H, D] rows without a
  // transpose; every key row is D contiguous elements of one head. cache_len i32 or i64 [B] on q's
  // device: the valid keys of row b (the new tokens' keys already appended), 0 <= cache_len[b] <= Lmax
  // (checked on the CPU, trusted on a device). Query i of row b sits at position cache_len[b] - Lnew + i
  // and sees keys j <= cache_len[b] - Lnew + i (causal among the new queries); a query that sees no
  // key gives zeros. out like q: per row, what attention_forward with causal gives for those Lnew
  // queries and the first cache_len[b] keys. q, caches, out of one floating dtype, contiguous;
  // the CUDA kernels split long caches across blocks (partial softmax statistics, then a combine).
  virtual void attention_decode(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                                const Tensor& cache_len, double scale, const Tensor& out) = 0;
};

Backend& backend_for(Device device);
// CPU threads flush subnormal floats to zero (training speed); returns false where unsupported.
bool set_flush_denormals(bool on);
Backend& cpu_backend();
// Registered by kernels/cuda when the engine is built with CUDA; null otherwise.
Backend* cuda_backend();

}  // namespace pe
