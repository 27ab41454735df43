#pragma once
// Stand-in for cublas_v2.h in the SIMT emulator (tests/simt/fake_cublas.cpp).
#include "library_types_simt.h"

struct cublasContext;
using cublasHandle_t = cublasContext*;
cublasStatus_t cublasCreate(cublasHandle_t* h);
cublasStatus_t cublasDestroy(cublasHandle_t h);
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s);
cublasStatus_t cublasGemmStridedBatchedEx_64(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int64_t m,
                                             int64_t n, int64_t k, const void* alpha, const void* A,
                                             cudaDataType_t at, int64_t lda, int64_t sa, const void* B,
                                             cudaDataType_t bt, int64_t ldb, int64_t sb, const void* beta, void* C,
                                             cudaDataType_t ct, int64_t ldc, int64_t sc, int64_t batch,
                                             cublasComputeType_t compute, cublasGemmAlgo_t algo);
cublasStatus_t cublasDgemmStridedBatched_64(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int64_t m,
                                            int64_t n, int64_t k, const double* alpha, const double* A, int64_t lda,
                                            int64_t sa, const double* B, int64_t ldb, int64_t sb,
                                            const double* beta, double* C, int64_t ldc, int64_t sc, int64_t batch);
