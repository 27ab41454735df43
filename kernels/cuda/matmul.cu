// GEMMs: cuBLASLt for f32 (optionally TF32) and bf16 (fp32 accumulation, f32 or bf16 output),
// with cublasGemmStridedBatchedEx where cuBLASLt offers no algorithm for a layout;
// cublasDgemmStridedBatched for f64 (reference checks).
//
// Row-major to column-major: out[M, N] row-major is the column-major N x M matrix out^T =
// op(b)^T op(a)^T, so cuBLAS gets A := b (transa = trans_b), B := a (transb = trans_a), m = N,
// n = M. A stored row-major [r, c] matrix is the column-major c x r matrix with ld = c.
#include <array>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include <cublasLt.h>
#include <cublas_v2.h>

#include "kernels/cuda/cuda_api.h"
#include "kernels/cuda/cuda_backend.cuh"

namespace pe::cuda {

// cuBLAS statuses go through PE_CUDA_CHECK too.
inline bool status_ok(cublasStatus_t s) { return s == CUBLAS_STATUS_SUCCESS; }
inline const char* status_name(cublasStatus_t s) { return cublasGetStatusString(s); }

namespace {

bool& tf32_flag() {
  static bool on = [] {
    const char* v = std::getenv("PE_ALLOW_TF32");
    return v && *v && std::strcmp(v, "0") != 0;
  }();
  return on;
}

constexpr size_t kWorkspaceBytes = size_t(32) << 20;  // what cuBLAS recommends for Hopper
constexpr size_t kMaxPlans = 4096;                   // variable-length batches make many shapes

// Everything the algorithm choice depends on.
using PlanKey = std::array<int64_t, 19>;
struct PlanKeyHash {
  size_t operator()(const PlanKey& k) const {
    uint64_t h = 1469598103934665603ull;
    for (int64_t v : k) h = (h ^ uint64_t(v)) * 1099511628211ull;
    return size_t(h);
  }
};

struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ld = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool found = false;
  void destroy() {
    if (desc) cublasLtMatmulDescDestroy(desc);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (ld) cublasLtMatrixLayoutDestroy(ld);
    desc = nullptr;
    la = lb = ld = nullptr;
  }
};

struct Blas {
  std::mutex mu;
  cublasLtHandle_t lt = nullptr;
  cublasHandle_t blas = nullptr;
  void* workspace = nullptr;
  std::unordered_map<PlanKey, Plan, PlanKeyHash> plans;
  void init() {
    if (lt) return;
    PE_CUDA_CHECK(cublasLtCreate(&lt), "matmul");
    PE_CUDA_CHECK(cublasCreate(&blas), "matmul");
    PE_CUDA_CHECK(cublasSetStream(blas, stream()), "matmul");
    PE_CUDA_CHECK(cudaMalloc(&workspace, kWorkspaceBytes), "matmul");
  }
};
Blas& blas_state() {
  static Blas* b = new Blas();  // never destroyed: the runtime may be gone at exit
  return *b;
}

int64_t pointer_alignment(const void* p) {
  uintptr_t v = reinterpret_cast<uintptr_t>(p);
  int64_t a = 256;
  while (a > 1 && (v % uintptr_t(a)) != 0) a >>= 1;
  return a;
}

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::F32: return CUDA_R_32F;
    case DType::BF16: return CUDA_R_16BF;
    case DType::F64: return CUDA_R_64F;
    default: PE_FAIL("matmul: dtype ", dtype_name(t), " has no GEMM");
  }
}

// Column-major layout of `rows x cols` matrices (ld = rows), `batch` of them `stride` elements apart.
cublasLtMatrixLayout_t make_layout(DType t, int64_t rows, int64_t cols, int64_t batch, int64_t stride) {
  cublasLtMatrixLayout_t l = nullptr;
  PE_CUDA_CHECK(cublasLtMatrixLayoutCreate(&l, cuda_type(t), uint64_t(rows), uint64_t(cols), rows), "matmul");
  if (batch > 1) {
    int32_t count = int32_t(batch);
    PE_CUDA_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)),
                    "matmul");
    PE_CUDA_CHECK(
        cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)),
        "matmul");
  }
  return l;
}

struct GemmShape {
  DType in, out;
  bool tf32, trans_a, trans_b;
  int64_t M, N, K, batch, sa, sb, so;
  bool bias = false;  // CUBLASLT_EPILOGUE_BIAS: a [N] vector (rows of the column-major D) of the out dtype
};

// Builds (or finds) the plan for one cuBLASLt call; plan.found is false when no algorithm supports it.
Plan& lt_plan(Blas& st, const GemmShape& g, const void* a, const void* b, const void* o) {
  int64_t al_a = pointer_alignment(a), al_b = pointer_alignment(b), al_o = pointer_alignment(o);
  PlanKey key = {int64_t(g.in), int64_t(g.out), g.tf32, g.trans_a, g.trans_b, g.M, g.N, g.K, g.batch, g.sa, g.sb,
                 g.so, al_a, al_b, al_o, g.bias, 0, 0, 0};
  auto it = st.plans.find(key);
  if (it != st.plans.end()) return it->second;
  if (st.plans.size() >= kMaxPlans) {
    for (auto& kv : st.plans) kv.second.destroy();
    st.plans.clear();
  }
  Plan p;
  cublasComputeType_t compute = g.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  PE_CUDA_CHECK(cublasLtMatmulDescCreate(&p.desc, compute, CUDA_R_32F), "matmul");
  cublasOperation_t ta = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, tb = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  PE_CUDA_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)), "matmul");
  PE_CUDA_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)), "matmul");
  if (g.bias) {
    // The bias vector has one entry per row of D (= per column N of our row-major output), broadcast
    // over D's columns; its type defaults to D's. The pointer is set per call (run_lt).
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    PE_CUDA_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)), "matmul");
  }
  // Stored (pre-op) column-major shapes: b is N x K (K x N when trans_b), a is K x M (M x K when trans_a).
  p.la = make_layout(g.in, g.trans_b ? g.K : g.N, g.trans_b ? g.N : g.K, g.batch, g.sb);
  p.lb = make_layout(g.in, g.trans_a ? g.M : g.K, g.trans_a ? g.K : g.M, g.batch, g.sa);
  p.ld = make_layout(g.out, g.N, g.M, g.batch, g.so);

  cublasLtMatmulPreference_t pref = nullptr;
  PE_CUDA_CHECK(cublasLtMatmulPreferenceCreate(&pref), "matmul");
  uint64_t ws = kWorkspaceBytes;
  uint32_t aa = uint32_t(al_b), ab = uint32_t(al_a), ao = uint32_t(al_o);  // cuBLAS A is our b
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aa, sizeof(aa));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ab, sizeof(ab));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ao, sizeof(ao));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ao, sizeof(ao));
  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  cublasStatus_t s =
      cublasLtMatmulAlgoGetHeuristic(st.lt, p.desc, p.la, p.lb, p.ld, p.ld, pref, 1, &result, &returned);
  cublasLtMatmulPreferenceDestroy(pref);
  if (s == CUBLAS_STATUS_SUCCESS && returned > 0) {
    p.algo = result.algo;
    p.found = true;
  } else if (s != CUBLAS_STATUS_NOT_SUPPORTED && s != CUBLAS_STATUS_SUCCESS) {
    p.destroy();
    PE_CUDA_CHECK(s, "matmul");
  }
  return st.plans.emplace(key, p).first->second;
}

// The classic cuBLAS entry point: no alignment requirements and any batch strides; used when
// cuBLASLt's heuristic offers no algorithm for a layout.
void run_gemm_ex(Blas& st, const GemmShape& g, const void* a, const void* b, void* o, float alpha, float beta) {
  cublasComputeType_t compute = g.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  PE_CUDA_CHECK(cublasGemmStridedBatchedEx_64(st.blas, g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                                g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, g.N, g.M, g.K, &alpha, b,
                                                cuda_type(g.in), g.trans_b ? g.K : g.N, g.sb, a, cuda_type(g.in),
                                                g.trans_a ? g.M : g.K, g.sa, &beta, o, cuda_type(g.out), g.N, g.so,
                                                g.batch, compute, CUBLAS_GEMM_DEFAULT),
                  "matmul");
}

// Returns false, having computed nothing, when a bias was asked for and no cuBLASLt algorithm takes
// it in the epilogue: the caller then computes the product and adds the bias itself.
bool run_lt(Blas& st, const GemmShape& g, const void* a, const void* b, void* o, float alpha, float beta,
            const void* bias = nullptr) {
  Plan& p = lt_plan(st, g, a, b, o);
  if (!p.found) {
    if (g.bias) return false;
    run_gemm_ex(st, g, a, b, o, alpha, beta);
    return true;
  }
  if (g.bias)
    PE_CUDA_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)),
                  "matmul");
  PE_CUDA_CHECK(cublasLtMatmul(st.lt, p.desc, &alpha, b, p.la, a, p.lb, &beta, o, p.ld, o, p.ld, &p.algo,
                                 st.workspace, kWorkspaceBytes, stream()),
                  "matmul");
  return true;
}

void check_operand(const Tensor& t, int64_t batch, int64_t rows, int64_t cols, const char* what) {
  check_cuda_tensor(t, "matmul", what);
  PE_CHECK(t.dim() == 3 && t.size(0) == batch && t.size(1) == rows && t.size(2) == cols, "matmul: ", what, " ",
           t.str(), " is not [", batch, ", ", rows, ", ", cols, "]");
  const Shape& s = t.strides();
  if (rows == 0 || cols == 0) return;  // nothing is read: any strides
  PE_CHECK((s[2] == 1 || cols == 1) && (s[1] == cols || rows == 1) && s[0] >= 0, "matmul: ", what, " ", t.str(),
           " must hold contiguous matrices (strides ", shape_str(s), ")");
}

// Checks the operands of out[b] = op(a[b]) @ op(b[b]) (Backend::matmul's contract) and returns the
// product's shape; the caller sets `bias`.
GemmShape gemm_shape(const char* op, const Tensor& a, const Tensor& b, const Tensor& out, bool trans_a, bool trans_b) {
  check_contiguous(out, op, "output");
  PE_CHECK(out.dim() == 3, op, ": output ", out.str(), " is not [batch, M, N]");
  int64_t batch = out.size(0), M = out.size(1), N = out.size(2);
  PE_CHECK(a.dim() == 3, op, ": ", a.str(), " is not 3-d");
  int64_t K = trans_a ? a.size(1) : a.size(2);
  check_operand(a, batch, trans_a ? K : M, trans_a ? M : K, "a");
  check_operand(b, batch, trans_b ? N : K, trans_b ? K : N, "b");
  PE_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch: ", a.str(), " and ", b.str());
  bool ok = a.dtype() == out.dtype() || (a.dtype() == DType::BF16 && out.dtype() == DType::F32);
  PE_CHECK(ok && is_floating(a.dtype()), op, ": ", a.str(), " @ ", b.str(), " into ", out.str(),
           " (supported: f32, f64, bf16 -> bf16 or f32)");
  int64_t sa = batch > 1 ? a.strides()[0] : 0, sb = batch > 1 ? b.strides()[0] : 0;
  return GemmShape{a.dtype(), out.dtype(), a.dtype() == DType::F32 && allow_tf32(), trans_a, trans_b, M, N, K,
                   batch, sa, sb, M * N};
}

}  // namespace

void set_allow_tf32(bool on) { tf32_flag() = on; }
bool allow_tf32() { return tf32_flag(); }

void CudaBackend::matmul(const Tensor& a, const Tensor& b, const Tensor& out, bool trans_a, bool trans_b,
                         double alpha, double beta) {
  GemmShape g = gemm_shape("matmul", a, b, out, trans_a, trans_b);
  const int64_t batch = g.batch, M = g.M, N = g.N, K = g.K;
  if (batch == 0 || M == 0 || N == 0) return;
  if (K == 0) {  // empty sum: out = beta * out
    if (beta == 0.0) fill(out, 0.0);
    else unary(UnaryOp::MulScalar, out, out, beta);
    return;
  }
  Blas& st = blas_state();
  std::lock_guard<std::mutex> lock(st.mu);
  st.init();
  if (a.dtype() == DType::F64) {
    PE_CUDA_CHECK(cublasDgemmStridedBatched_64(st.blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                                 trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha,
                                                 b.data<double>(), trans_b ? K : N, g.sb, a.data<double>(),
                                                 trans_a ? M : K, g.sa, &beta, out.data<double>(), N, g.so, batch),
                    "matmul");
    return;
  }
  run_lt(st, g, a.raw_data(), b.raw_data(), out.raw_data(), float(alpha), float(beta));
}

void CudaBackend::matmul_bias(const Tensor& a, const Tensor& b, const Tensor& bias, const Tensor& out, bool trans_a,
                              bool trans_b) {
  GemmShape g = gemm_shape("matmul_bias", a, b, out, trans_a, trans_b);
  PE_CHECK(g.batch == 1, "matmul_bias: output ", out.str(), " is not [1, M, N]");
  check_contiguous(bias, "matmul_bias", "bias");
  PE_CHECK(bias.numel() == g.N && bias.dtype() == out.dtype(), "matmul_bias: bias ", bias.str(), " is not [", g.N,
           "] of the output dtype ", dtype_name(out.dtype()));
  if (a.dtype() != DType::F64 && g.M > 0 && g.N > 0 && g.K > 0) {
    g.bias = true;
    Blas& st = blas_state();
    std::lock_guard<std::mutex> lock(st.mu);
    st.init();
    if (run_lt(st, g, a.raw_data(), b.raw_data(), out.raw_data(), 1.f, 0.f, bias.raw_data())) return;
  }
  // No epilogue (f64, an empty product, or no cuBLASLt algorithm for the layout): add the bias rows.
  // A bf16 output gets them in fp32 before its one rounding, as the epilogue does (rounding the
  // product first loses the result where bias and product nearly cancel).
  const bool round_once = out.dtype() == DType::BF16;
  Tensor acc = round_once ? Tensor::empty(out.shape(), DType::F32, out.device()) : out;
  Tensor b32 = bias;
  if (round_once) {
    b32 = Tensor::empty(bias.shape(), DType::F32, bias.device());
    copy_strided(bias, b32);
  }
  matmul(a, b, acc, trans_a, trans_b, 1.0, 0.0);
  Tensor rows = acc.view({g.M, g.N});
  binary(BinaryOp::Add, rows, b32.view({1, g.N}).expand({g.M, g.N}), rows);
  if (round_once) copy_strided(acc, out);
}

}  // namespace pe::cuda
