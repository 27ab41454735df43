// GEMM on Eigen. Eigen parallelises one large product over OpenMP threads itself; batches of
// small products are spread over threads instead (Eigen does not nest inside a parallel region).
#include <Eigen/Dense>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_common.h"

namespace pe::cpu {

void CpuBackend::matmul(const Tensor& a, const Tensor& b, const Tensor& out, bool trans_a, bool trans_b,
                        double alpha, double beta) {
  dispatch_float(out.dtype(), "matmul", [&](auto tag) {
    using T = decltype(tag);
    using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    using CMap = Eigen::Map<const Mat>;
    using MMap = Eigen::Map<Mat>;
    int64_t batch = out.size(0), M = out.size(1), N = out.size(2);
    int64_t K = trans_a ? a.size(1) : a.size(2);
    int64_t sa = a.strides()[0], sb = b.strides()[0], so = out.strides()[0];
    const T* ap = a.data<T>();
    const T* bp = b.data<T>();
    T* op_ = out.data<T>();
    T al = T(alpha), be = T(beta);
    auto one = [&](int64_t i) {
      CMap A(ap + i * sa, trans_a ? K : M, trans_a ? M : K);
      CMap B(bp + i * sb, trans_b ? N : K, trans_b ? K : N);
      MMap O(op_ + i * so, M, N);
      if (be == T(0)) O.setZero(); else O *= be;
      if (K == 0) return;
      if (!trans_a && !trans_b) O.noalias() += al * (A * B);
      else if (trans_a && !trans_b) O.noalias() += al * (A.transpose() * B);
      else if (!trans_a && trans_b) O.noalias() += al * (A * B.transpose());
      else O.noalias() += al * (A.transpose() * B.transpose());
    };
    if (batch > 1 && M * N * K < (int64_t(1) << 21)) {
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < batch; ++i) one(i);
    } else {
      for (int64_t i = 0; i < batch; ++i) one(i);
    }
  });
}

void CpuBackend::matmul_bias(const Tensor& a, const Tensor& b, const Tensor& bias, const Tensor& out, bool trans_a,
                             bool trans_b) {
  PE_CHECK(out.dim() == 3 && out.size(0) == 1, "matmul_bias: output ", out.str(), " is not [1, M, N]");
  int64_t M = out.size(1), N = out.size(2);
  PE_CHECK(bias.numel() == N && bias.is_contiguous() && bias.dtype() == out.dtype(), "matmul_bias: bias ", bias.str(),
           " is not [", N, "] of the output dtype ", dtype_name(out.dtype()));
  matmul(a, b, out, trans_a, trans_b, 1.0, 0.0);
  dispatch_float(out.dtype(), "matmul_bias", [&](auto tag) {
    using T = decltype(tag);
    T* o = out.data<T>();
    const T* bp = bias.data<T>();
#pragma omp parallel for schedule(static) if (M * N > (int64_t(1) << 16))
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) o[i * N + j] += bp[j];
  });
}

}  // namespace pe::cpu
