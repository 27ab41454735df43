#pragma once
// The CUDA backend: every Backend method for f32, f64 and bf16 (bf16 storage, fp32 math), all
// dtypes where the CPU reference takes them. One op family per file:
//   cuda_backend.cu  registration, memory, host copies, errors, NaN/Inf check
//   allocator.cu     caching allocator                   copy.cu     copy_strided (any strides, any dtypes)
//   unary.cu         unary, unary_backward               elementwise.cu  fill, random, binary, where
//   reduce.cu        reduce_rows, softmax, layer norm    matmul.cu   cuBLASLt / cublasDgemm GEMMs
//   index.cu         index_select/add, gather/scatter    rotary.cu   rotary embedding
//   optim.cu         adam_step, multi-tensor Adam
//   attention.cu     fused attention forward/backward    info_nce.cu  tiled softmax cross-entropy engine, InfoNCE
//   masked_ce.cu     masked cross-entropy over a vocabulary (on info_nce.cu's engine)
#include "kernels/cuda/cuda_common.cuh"

namespace pe::cuda {

class CudaBackend final : public Backend {
 public:
  const char* name() const override { return "cuda"; }
  void* allocate(size_t nbytes) override;
  void deallocate(void* p, size_t nbytes) override;
  void copy_from_host(void* dst, const void* src, size_t nbytes) override;
  void copy_to_host(void* dst, const void* src, size_t nbytes) override;
  void copy_strided(const Tensor& src, const Tensor& dst) override;
  void fill(const Tensor& dst, double value) override;
  void random(const Tensor& dst, RandomKind kind, double a, double b, uint64_t seed, uint64_t offset) override;
  void unary(UnaryOp op, const Tensor& x, const Tensor& out, double s) override;
  void unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& gout, const Tensor& gx,
                      double s) override;
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) override;
  void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) override;
  void reduce_rows(ReduceOp op, const Tensor& x, const Tensor& out) override;
  void softmax(const Tensor& x, const Tensor& y, bool log) override;
  void softmax_backward(const Tensor& y, const Tensor& gy, const Tensor& gx, bool log) override;
  void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& y,
                  const Tensor& mean, const Tensor& rstd) override;
  void layer_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                           const Tensor& gy, const Tensor& gx, const Tensor& gweight, const Tensor& gbias) override;
  void add_layer_norm(const Tensor& x, const Tensor& r, const Tensor& weight, const Tensor& bias, double eps,
                      const Tensor& s, const Tensor& y, const Tensor& mean, const Tensor& rstd) override;
  void matmul_bias(const Tensor& a, const Tensor& b, const Tensor& bias, const Tensor& out, bool trans_a,
                   bool trans_b) override;
  void matmul(const Tensor& a, const Tensor& b, const Tensor& out, bool trans_a, bool trans_b, double alpha,
              double beta) override;
  void index_select(const Tensor& x, const Tensor& idx, const Tensor& out) override;
  void index_add(const Tensor& dst, const Tensor& idx, const Tensor& src) override;
  void gather_rows(const Tensor& x, const Tensor& idx, const Tensor& out) override;
  void scatter_add_rows(const Tensor& dst, const Tensor& idx, const Tensor& src) override;
  void rotary(const Tensor& x, const Tensor& out, double base, bool inverse,
              const Tensor& positions = Tensor()) override;
  void adam_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                 const AdamParams& p) override;
  void synchronize() override;
  bool has_nonfinite(const Tensor& x) override;
  bool any_nonfinite(const std::vector<Tensor>& xs) override;
  void adam_multi_tensor(const std::vector<Tensor>& master, const std::vector<Tensor>& grad,
                         const std::vector<Tensor>& m, const std::vector<Tensor>& v,
                         const std::vector<Tensor>& working, const AdamParams& p) override;
  // attention.cu, info_nce.cu, masked_ce.cu: fused attention and losses (f32, f64, bf16)
  void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionLayout& layout,
                         const Tensor& out, const Tensor& lse) override;
  void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                          const Tensor& gout, const AttentionLayout& layout, const Tensor& gq, const Tensor& gk,
                          const Tensor& gv) override;
  void info_nce_forward(const Tensor& x, const Tensor& y, const InfoNceArgs& args, const Tensor& stats,
                        const Tensor& loss) override;
  void info_nce_backward(const Tensor& x, const Tensor& y, const InfoNceArgs& args, const Tensor& row_stats,
                         const Tensor& col_stats, const Tensor& gloss, double row_weight, double col_weight,
                         const Tensor& gx, const Tensor& gy, const Tensor& glog) override;
  void masked_ce_forward(const Tensor& hidden, const Tensor& weight, const Tensor& bias, const Tensor& targets,
                         const Tensor& stats, const Tensor& loss) override;
  void masked_ce_backward(const Tensor& hidden, const Tensor& weight, const Tensor& bias, const Tensor& targets,
                          const Tensor& stats, const Tensor& gloss, double row_weight, const Tensor& ghidden,
                          const Tensor& gweight, const Tensor& gbias) override;
  void attention_decode(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& cache_len,
                        double scale, const Tensor& out) override;
};

// Implemented in info_nce.cu: the tiled softmax cross-entropy of rows x [R, D] against columns y [C, D]
// (logits a x y^T + bias, bias [C] or undefined, never stored; positives and a from `args`) behind
// info_nce_* (no bias) and masked_ce_* (args.row_group = targets). Same contracts as those methods;
// xent_backward also writes gbias [C] (bias dtype) when defined, and glog when defined.
void xent_forward(const char* op, const Tensor& x, const Tensor& y, const Tensor& bias, const InfoNceArgs& args,
                  const Tensor& stats, const Tensor& loss);
void xent_backward(const char* op, const Tensor& x, const Tensor& y, const Tensor& bias, const InfoNceArgs& args,
                   const Tensor& row_stats, const Tensor& col_stats, const Tensor& gloss, double row_weight,
                   double col_weight, const Tensor& gx, const Tensor& gy, const Tensor& glog, const Tensor& gbias);

// Implemented in elementwise.cu: launches the NaN/Inf scan of x, or-ing into *flag (device pointer).
void launch_nonfinite_scan(const Tensor& x, int* flag);
// A pinned host int that the device can write (mapped), for has_nonfinite's answer.
int* nonfinite_flag_host();
int* nonfinite_flag_device();

}  // namespace pe::cuda
