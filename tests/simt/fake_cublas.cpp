// Stand-in cuBLAS / cuBLASLt for the SIMT emulator: plain column-major GEMMs computed from the
// descriptors the engine builds, with the checks cuBLAS makes on them (dimensions that agree,
// leading dimensions at least the row count, known types). fp32 accumulation for f32/bf16 inputs as
// CUBLAS_COMPUTE_32F; inputs rounded to TF32 under CUBLAS_COMPUTE_32F_FAST_TF32; C is not read when
// beta is zero. cublasLtMatmulAlgoGetHeuristic offers no algorithm when an operand is less than
// 16-byte aligned, so that the engine's classic-cuBLAS fallback runs in the emulator too (real
// cuBLASLt decides by its own rules; both paths must be right).
#include <cstdio>
#include <cstring>
#include <string>

#include "cublasLt.h"
#include "cublas_v2.h"
#include "cuda_bf16.h"

struct cublasContext {
  int dummy = 0;
};
struct cublasLtContext {
  int dummy = 0;
};
struct SimtLtMatmulDesc {
  cublasComputeType_t compute;
  cudaDataType_t scale;
  cublasOperation_t ta = CUBLAS_OP_N, tb = CUBLAS_OP_N;
  int epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;  // CUBLASLT_EPILOGUE_BIAS: one value per row of D, D's type
};
struct SimtLtLayout {
  cudaDataType_t type;
  uint64_t rows, cols;
  int64_t ld;
  int32_t batch = 1;
  int64_t stride = 0;
};
struct SimtLtPreference {
  uint32_t align[4] = {256, 256, 256, 256};
};

namespace {

cublasStatus_t bad(const std::string& why) {
  std::fprintf(stderr, "simt cublas: %s\n", why.c_str());
  return CUBLAS_STATUS_INVALID_VALUE;
}
size_t type_size(cudaDataType_t t) {
  switch (t) {
    case CUDA_R_32F: return 4;
    case CUDA_R_64F: return 8;
    case CUDA_R_16BF: return 2;
    default: return 0;
  }
}
double load(const void* p, cudaDataType_t t, int64_t i, bool tf32) {
  switch (t) {
    case CUDA_R_64F: return static_cast<const double*>(p)[i];
    case CUDA_R_16BF: return double(float(static_cast<const __nv_bfloat16*>(p)[i]));
    default: {
      float f = static_cast<const float*>(p)[i];
      if (tf32 && std::isfinite(f)) {
        uint32_t u;
        std::memcpy(&u, &f, 4);
        u += 0xfffu + ((u >> 13) & 1u);
        u &= ~0x1fffu;
        std::memcpy(&f, &u, 4);
      }
      return double(f);
    }
  }
}
void store(void* p, cudaDataType_t t, int64_t i, double v) {
  switch (t) {
    case CUDA_R_64F: static_cast<double*>(p)[i] = v; break;
    case CUDA_R_16BF: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(float(v)); break;
    default: static_cast<float*>(p)[i] = float(v); break;
  }
}

struct Operand {
  const void* p;
  cudaDataType_t t;
  int64_t ld, stride;
  bool trans;
};

// C[b](i, j) = alpha sum_l op(A)(i, l) op(B)(l, j) + beta C[b](i, j) (+ bias[i]), column-major; one
// rounding to C's type at the end.
cublasStatus_t gemm(int64_t m, int64_t n, int64_t k, double alpha, Operand A, Operand B, double beta, const void* C,
                    void* D, cudaDataType_t ct, int64_t ldc, int64_t sc, int64_t batch, bool wide, bool tf32,
                    const void* bias = nullptr) {
  if (m < 0 || n < 0 || k < 0 || batch < 0) return bad("negative dimension");
  if (!type_size(A.t) || !type_size(B.t) || !type_size(ct)) return bad("unsupported data type");
  if (A.ld < std::max<int64_t>(1, A.trans ? k : m)) return bad("lda " + std::to_string(A.ld) + " too small");
  if (B.ld < std::max<int64_t>(1, B.trans ? n : k)) return bad("ldb " + std::to_string(B.ld) + " too small");
  if (ldc < std::max<int64_t>(1, m)) return bad("ldc " + std::to_string(ldc) + " too small");
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < m; ++i) {
        double acc_d = 0;
        float acc_f = 0;
        for (int64_t l = 0; l < k; ++l) {
          int64_t ia = A.trans ? l + i * A.ld : i + l * A.ld;
          int64_t ib = B.trans ? j + l * B.ld : l + j * B.ld;
          double x = load(A.p, A.t, b * A.stride + ia, tf32) * load(B.p, B.t, b * B.stride + ib, tf32);
          if (wide) acc_d += x;
          else acc_f += float(x);
        }
        double v = alpha * (wide ? acc_d : double(acc_f));
        int64_t ic = b * sc + i + j * ldc;
        if (beta != 0.0) v += beta * load(C, ct, ic, false);
        if (bias) v = double(float(v) + float(load(bias, ct, i, false)));
        store(D, ct, ic, v);
      }
  }
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

const char* cublasGetStatusString(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}

cublasStatus_t cublasCreate(cublasHandle_t* h) {
  *h = new cublasContext();
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t h) {
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t) {
  return h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t cublasGemmStridedBatchedEx_64(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int64_t m,
                                             int64_t n, int64_t k, const void* alpha, const void* A,
                                             cudaDataType_t at, int64_t lda, int64_t sa, const void* B,
                                             cudaDataType_t bt, int64_t ldb, int64_t sb, const void* beta, void* C,
                                             cudaDataType_t ct, int64_t ldc, int64_t sc, int64_t batch,
                                             cublasComputeType_t compute, cublasGemmAlgo_t) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (at != bt) return bad("GemmEx: A and B types differ");
  if (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_FAST_TF32) return bad("GemmEx: compute type");
  double al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  return gemm(m, n, k, al, Operand{A, at, lda, sa, ta != CUBLAS_OP_N}, Operand{B, bt, ldb, sb, tb != CUBLAS_OP_N}, be,
              C, C, ct, ldc, sc, batch, false, compute == CUBLAS_COMPUTE_32F_FAST_TF32 && at == CUDA_R_32F);
}

cublasStatus_t cublasDgemmStridedBatched_64(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int64_t m,
                                            int64_t n, int64_t k, const double* alpha, const double* A, int64_t lda,
                                            int64_t sa, const double* B, int64_t ldb, int64_t sb,
                                            const double* beta, double* C, int64_t ldc, int64_t sc, int64_t batch) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  return gemm(m, n, k, *alpha, Operand{A, CUDA_R_64F, lda, sa, ta != CUBLAS_OP_N},
              Operand{B, CUDA_R_64F, ldb, sb, tb != CUBLAS_OP_N}, *beta, C, C, CUDA_R_64F, ldc, sc, batch, true, false);
}

// ------------------------------------------------------------------ cuBLASLt
cublasStatus_t cublasLtCreate(cublasLtHandle_t* h) {
  *h = new cublasLtContext();
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* d, cublasComputeType_t compute, cudaDataType_t scale) {
  *d = new SimtLtMatmulDesc{compute, scale};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
  delete d;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t size) {
  if (!d) return CUBLAS_STATUS_NOT_INITIALIZED;
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
    case CUBLASLT_MATMUL_DESC_TRANSB: {
      if (size != sizeof(cublasOperation_t)) return bad("TRANSA/TRANSB attribute size");
      cublasOperation_t op;
      std::memcpy(&op, buf, size);
      (attr == CUBLASLT_MATMUL_DESC_TRANSA ? d->ta : d->tb) = op;
      return CUBLAS_STATUS_SUCCESS;
    }
    case CUBLASLT_MATMUL_DESC_EPILOGUE:
      if (size != sizeof(int32_t)) return bad("EPILOGUE attribute size");
      std::memcpy(&d->epilogue, buf, size);
      return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
      if (size != sizeof(void*)) return bad("BIAS_POINTER attribute size");
      std::memcpy(&d->bias, buf, size);
      return CUBLAS_STATUS_SUCCESS;
    default: return CUBLAS_STATUS_NOT_SUPPORTED;  // not emulated: the engine must not rely on it here
  }
}
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* l, cudaDataType_t type, uint64_t rows, uint64_t cols,
                                          int64_t ld) {
  if (!type_size(type)) return bad("layout type");
  if (ld < int64_t(rows)) return bad("layout ld " + std::to_string(ld) + " < rows " + std::to_string(rows));
  *l = new SimtLtLayout{type, rows, cols, ld};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
  delete l;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t attr,
                                                const void* buf, size_t size) {
  if (!l) return CUBLAS_STATUS_NOT_INITIALIZED;
  switch (attr) {
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT:
      if (size != sizeof(int32_t)) return bad("BATCH_COUNT attribute size (int32_t expected)");
      std::memcpy(&l->batch, buf, size);
      return l->batch >= 1 ? CUBLAS_STATUS_SUCCESS : bad("BATCH_COUNT < 1");
    case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET:
      if (size != sizeof(int64_t)) return bad("STRIDED_BATCH_OFFSET attribute size (int64_t expected)");
      std::memcpy(&l->stride, buf, size);
      return CUBLAS_STATUS_SUCCESS;
    default: return CUBLAS_STATUS_NOT_SUPPORTED;
  }
}
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* p) {
  *p = new SimtLtPreference();
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
  delete p;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void* buf,
                                                    size_t size) {
  if (!p) return CUBLAS_STATUS_NOT_INITIALIZED;
  int slot = -1;
  switch (attr) {
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: slot = 0; break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES: slot = 1; break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES: slot = 2; break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: slot = 3; break;
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: return size == 8 ? CUBLAS_STATUS_SUCCESS : bad("workspace size");
    default: return CUBLAS_STATUS_SUCCESS;
  }
  if (size != sizeof(uint32_t)) return bad("alignment attribute size (uint32_t expected)");
  std::memcpy(&p->align[slot], buf, size);
  return CUBLAS_STATUS_SUCCESS;
}

namespace {
struct LtProblem {
  int64_t m, n, k, batch;
};
cublasStatus_t lt_check(cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                        cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dl, LtProblem& pr) {
  if (!d || !a || !b || !c || !dl) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (d->epilogue != CUBLASLT_EPILOGUE_DEFAULT && d->epilogue != CUBLASLT_EPILOGUE_BIAS)
    return CUBLAS_STATUS_NOT_SUPPORTED;
  if (d->compute != CUBLAS_COMPUTE_32F && d->compute != CUBLAS_COMPUTE_32F_FAST_TF32) return bad("Lt compute type");
  if (d->scale != CUDA_R_32F) return bad("Lt scale type");
  if (a->type != b->type) return bad("Lt: A and B types differ");
  bool ta = d->ta != CUBLAS_OP_N, tb = d->tb != CUBLAS_OP_N;
  pr.m = int64_t(dl->rows);
  pr.n = int64_t(dl->cols);
  pr.k = int64_t(ta ? a->rows : a->cols);
  if (int64_t(ta ? a->cols : a->rows) != pr.m)
    return bad("Lt: op(A) has " + std::to_string(ta ? a->cols : a->rows) + " rows, D has " + std::to_string(pr.m));
  if (int64_t(tb ? b->rows : b->cols) != pr.n)
    return bad("Lt: op(B) has " + std::to_string(tb ? b->rows : b->cols) + " columns, D has " + std::to_string(pr.n));
  if (int64_t(tb ? b->cols : b->rows) != pr.k)
    return bad("Lt: op(B) has " + std::to_string(tb ? b->cols : b->rows) + " rows, op(A) has " + std::to_string(pr.k) +
               " columns");
  if (c->rows != dl->rows || c->cols != dl->cols || c->type != dl->type || c->ld != dl->ld)
    return bad("Lt: C and D layouts differ");
  if (a->batch != dl->batch || b->batch != dl->batch || c->batch != dl->batch) return bad("Lt: batch counts differ");
  pr.batch = dl->batch;
  return CUBLAS_STATUS_SUCCESS;
}
}  // namespace

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a,
                                              cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                                              cublasLtMatrixLayout_t dl, cublasLtMatmulPreference_t p, int requested,
                                              cublasLtMatmulHeuristicResult_t* results, int* returned) {
  if (!h || !p) return CUBLAS_STATUS_NOT_INITIALIZED;
  *returned = 0;
  if (requested < 1) return bad("heuristic: requested < 1");
  LtProblem pr{};
  cublasStatus_t s = lt_check(d, a, b, c, dl, pr);
  if (s != CUBLAS_STATUS_SUCCESS) return s;
  for (uint32_t al : p->align)
    if (al < 16) return CUBLAS_STATUS_NOT_SUPPORTED;
  std::memset(&results[0], 0, sizeof(results[0]));
  results[0].algo.data[0] = 0x5147;  // marks an algorithm this stand-in handed out
  results[0].state = CUBLAS_STATUS_SUCCESS;
  *returned = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void* alpha, const void* A,
                              cublasLtMatrixLayout_t a, const void* B, cublasLtMatrixLayout_t b, const void* beta,
                              const void* C, cublasLtMatrixLayout_t c, void* D, cublasLtMatrixLayout_t dl,
                              const cublasLtMatmulAlgo_t* algo, void*, size_t, cudaStream_t) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (algo && algo->data[0] != 0x5147) return bad("Lt: algorithm not from cublasLtMatmulAlgoGetHeuristic");
  LtProblem pr{};
  cublasStatus_t s = lt_check(d, a, b, c, dl, pr);
  if (s != CUBLAS_STATUS_SUCCESS) return s;
  if (C != D && std::memcmp(c, dl, sizeof(SimtLtLayout)) != 0) return bad("Lt: out-of-place C with another layout");
  double al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  bool tf32 = d->compute == CUBLAS_COMPUTE_32F_FAST_TF32 && a->type == CUDA_R_32F;
  if (C != D && be != 0.0) {
    // D = alpha op(A) op(B) + beta C with C elsewhere: compute into D reading C.
    for (int64_t bt = 0; bt < pr.batch; ++bt)
      for (int64_t j = 0; j < pr.n; ++j)
        for (int64_t i = 0; i < pr.m; ++i) {
          int64_t idx = bt * dl->stride + i + j * dl->ld;
          store(D, dl->type, idx, load(C, c->type, idx, false));
        }
  }
  if (d->epilogue == CUBLASLT_EPILOGUE_BIAS && !d->bias) return bad("Lt: BIAS epilogue without a bias pointer");
  // Bias: one value per row of D (length m), broadcast over the columns, in D's type.
  return gemm(pr.m, pr.n, pr.k, al, Operand{A, a->type, a->ld, a->stride, d->ta != CUBLAS_OP_N},
              Operand{B, b->type, b->ld, b->stride, d->tb != CUBLAS_OP_N}, be, D, D, dl->type, dl->ld, dl->stride,
              pr.batch, false, tf32, d->epilogue == CUBLASLT_EPILOGUE_BIAS ? d->bias : nullptr);
}
