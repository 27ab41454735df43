// GEMM on Eigen, and f32 on oneDNN's sgemm where the build has it (cpu_api.h, GemmLibrary). Both
// parallelise one large product over OpenMP threads themselves; batches of small products are spread
// over threads instead (neither nests inside a parallel region).
#include <Eigen/Dense>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "kernels/cpu/cpu_api.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_common.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/linear_f32.h"

namespace pe::cpu {

namespace {
GemmLibrary initial_gemm_library() {
  const char* env = std::getenv("PE_CPU_GEMM");
  if (env && *env) {
    if (std::strcmp(env, "eigen") == 0) return GemmLibrary::Eigen;
    PE_CHECK(std::strcmp(env, "onednn") == 0, "PE_CPU_GEMM=", env, ": expected eigen or onednn");
    PE_CHECK(gemm_library_available(GemmLibrary::OneDnn),
             "PE_CPU_GEMM=onednn, but this build has no oneDNN (cmake -DPE_ONEDNN=ON with libdnnl-dev installed)");
    return GemmLibrary::OneDnn;
  }
  return gemm_library_available(GemmLibrary::OneDnn) ? GemmLibrary::OneDnn : GemmLibrary::Eigen;
}
GemmLibrary& gemm_choice() {
  static GemmLibrary lib = initial_gemm_library();
  return lib;
}
}  // namespace

bool gemm_library_available(GemmLibrary lib) {
#ifdef PE_WITH_ONEDNN
  return true;
#else
  return lib == GemmLibrary::Eigen;
#endif
}
GemmLibrary gemm_library() { return gemm_choice(); }
bool gemm_uses_onednn() { return gemm_choice() == GemmLibrary::OneDnn; }
GemmLibrary set_gemm_library(GemmLibrary lib) {
  PE_CHECK(gemm_library_available(lib), "set_gemm_library: ", gemm_library_name(lib), " is not in this build");
  GemmLibrary old = gemm_choice();
  gemm_choice() = lib;
  return old;
}
const char* gemm_library_name(GemmLibrary lib) { return lib == GemmLibrary::OneDnn ? "oneDNN" : "Eigen"; }

void CpuBackend::matmul(const Tensor& a, const Tensor& b, const Tensor& out, bool trans_a, bool trans_b,
                        double alpha, double beta) {
  // One f32 x W^T (a linear layer without bias): the engine's own GEMM, as matmul_bias and linear_epilogue
  // use, so a layer gives the same values with its bias added here or later (linear_act).
  if (out.dtype() == DType::F32 && out.size(0) == 1 && !trans_a && trans_b && alpha == 1.0 && beta == 0.0 &&
      linear_f32_for(a.size(2))) {
    const int64_t M = out.size(1), N = out.size(2), K = a.size(2);
    linear_f32(M, N, K, a.data<float>(), K, b.data<float>(), K, out.data<float>(), N, {});
    return;
  }
  dispatch_float(out.dtype(), "matmul", [&](auto tag) {
    using T = decltype(tag);
    int64_t batch = out.size(0), M = out.size(1), N = out.size(2);
    int64_t K = trans_a ? a.size(1) : a.size(2);
    int64_t sa = a.strides()[0], sb = b.strides()[0], so = out.strides()[0];
    const T* ap = a.data<T>();
    const T* bp = b.data<T>();
    T* op_ = out.data<T>();
    T al = T(alpha), be = T(beta);
    // Small products of a batch run one per thread; a large one is parallelised by the library.
    // A oneDNN failure inside the parallel loop is recorded and raised after it.
    std::atomic<bool> ok{true};
    auto one = [&](int64_t i) {
      if (!gemm_rowmajor<T>(trans_a, trans_b, M, N, K, al, ap + i * sa, trans_a ? M : K, bp + i * sb,
                            trans_b ? K : N, be, op_ + i * so, N))
        ok.store(false);
    };
    if (batch > 1 && M * N * K < (int64_t(1) << 21)) {
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < batch; ++i) one(i);
    } else {
      for (int64_t i = 0; i < batch; ++i) one(i);
    }
    PE_CHECK(ok.load(), "matmul: oneDNN sgemm failed for [", M, ", ", K, "] x [", K, ", ", N, "], batch ", batch);
  });
}

void CpuBackend::matmul_bias(const Tensor& a, const Tensor& b, const Tensor& bias, const Tensor& out, bool trans_a,
                             bool trans_b) {
  PE_CHECK(out.dim() == 3 && out.size(0) == 1, "matmul_bias: output ", out.str(), " is not [1, M, N]");
  int64_t M = out.size(1), N = out.size(2);
  PE_CHECK(bias.numel() == N && bias.is_contiguous() && bias.dtype() == out.dtype(), "matmul_bias: bias ", bias.str(),
           " is not [", N, "] of the output dtype ", dtype_name(out.dtype()));
  // The linear layer's x W^T in f32: the engine's own GEMM with the bias in its epilogue.
  if (out.dtype() == DType::F32 && !trans_a && trans_b && linear_f32_for(a.size(2))) {
    const int64_t K = a.size(2);
    LinearEpilogue ep;
    ep.bias = bias.data<float>();
    linear_f32(M, N, K, a.data<float>(), K, b.data<float>(), K, out.data<float>(), N, ep);
    return;
  }
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

void CpuBackend::linear_epilogue(const Tensor& x, const Tensor& w, const Tensor& bias, bool has_act, UnaryOp act,
                                 const Tensor& residual, const Tensor& pre, const Tensor& out) {
  if (x.dtype() != DType::F32 || x.dim() != 2 || !linear_f32_for(x.size(1)))
    return Backend::linear_epilogue(x, w, bias, has_act, act, residual, pre, out);
  const int64_t rows = check_linear_epilogue(x, w, bias, has_act, act, residual, pre, out);
  const int64_t in = x.size(1), n = w.size(0);
  LinearEpilogue ep;
  if (bias.defined()) ep.bias = bias.data<float>();
  if (has_act) ep.act = act == UnaryOp::Gelu ? LinearAct::Gelu : LinearAct::Relu;
  if (pre.defined()) {
    ep.pre = pre.data<float>();
    ep.ld_pre = n;
  }
  if (residual.defined()) {
    ep.residual = residual.data<float>();
    ep.ld_res = n;
  }
  linear_f32(rows, n, in, x.data<float>(), in, w.data<float>(), in, out.data<float>(), n, ep);
}

}  // namespace pe::cpu
