#pragma once
#include "kernels/backend.h"

namespace pe::cpu {

// The reference backend: plain loops (OpenMP over rows) and Eigen GEMMs, f32/f64.
class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  void* allocate(size_t nbytes) override;
  void deallocate(void* p, size_t nbytes) override;
  void copy_from_host(void* dst, const void* src, size_t nbytes) override;
  void copy_to_host(void* dst, const void* src, size_t nbytes) override;
  void copy_strided(const Tensor& src, const Tensor& dst) override;
  void bias_act(const Tensor& y, const Tensor& bias, UnaryOp act, const Tensor& pre, const Tensor& out) override;
  void linear_epilogue(const Tensor& x, const Tensor& w, const Tensor& bias, bool has_act, UnaryOp act,
                       const Tensor& residual, const Tensor& pre, const Tensor& out) override;
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
  // fused.cpp: fused attention, InfoNCE and masked cross-entropy (f32/f64)
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

}  // namespace pe::cpu
