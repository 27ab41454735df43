#pragma once
// One row-major GEMM for the CPU kernels: C = alpha op(A) op(B) + beta C, with leading dimensions,
// as BLAS takes it. f32 goes to oneDNN's sgemm when the build has it and it is selected
// (cpu_api.h, GemmLibrary); everything else (and f64, the reference) to Eigen's product on strided
// maps. Safe inside an OpenMP parallel region (each library then runs on the calling thread).
// Returns false only if oneDNN reported an error: callers inside a parallel region record it and
// raise after the region (no exception may leave one).
#include <Eigen/Dense>
#include <cstdint>
#include <type_traits>

#ifdef PE_WITH_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#endif

#include "kernels/cpu/cpu_api.h"

namespace pe::cpu {

// The library choice as a plain read (matmul.cpp owns it).
bool gemm_uses_onednn();

template <typename T>
bool gemm_rowmajor(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                   const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return true;
#ifdef PE_WITH_ONEDNN
  if constexpr (std::is_same_v<T, float>) {
    if (K > 0 && gemm_uses_onednn())
      return dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) ==
             dnnl_success;
  }
#endif
  using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using CMap = Eigen::Map<const Mat, 0, Eigen::OuterStride<>>;
  using MMap = Eigen::Map<Mat, 0, Eigen::OuterStride<>>;
  MMap Cm(C, M, N, Eigen::OuterStride<>(ldc));
  if (beta == T(0)) Cm.setZero();
  else if (beta != T(1)) Cm *= beta;
  if (K <= 0) return true;
  CMap Am(A, trans_a ? K : M, trans_a ? M : K, Eigen::OuterStride<>(lda));
  CMap Bm(B, trans_b ? N : K, trans_b ? K : N, Eigen::OuterStride<>(ldb));
  if (!trans_a && !trans_b) Cm.noalias() += alpha * (Am * Bm);
  else if (trans_a && !trans_b) Cm.noalias() += alpha * (Am.transpose() * Bm);
  else if (!trans_a && trans_b) Cm.noalias() += alpha * (Am * Bm.transpose());
  else Cm.noalias() += alpha * (Am.transpose() * Bm.transpose());
  return true;
}

}  // namespace pe::cpu
