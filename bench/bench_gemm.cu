// GEMM through the engine (Backend::matmul: checks, plan cache, cuBLASLt) against a raw
// cuBLASLt call with the same layouts, heuristic and workspace, on shapes of the models:
// ESM-2 650M linears (8192 tokens, d 1280, FFN 5120), ESM-2 35M, attention-shaped batches.
#include <cublasLt.h>

#include "bench/bench_common.h"
#include "kernels/cuda/cuda_api.h"

using namespace pe;

namespace {

struct GemmCase {
  const char* name;
  int64_t batch, M, N, K;
  bool ta, tb;
};

void lt_check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "bench_gemm: %s: cuBLAS status %d\n", what, int(s));
    std::exit(2);
  }
}

cudaDataType_t cuda_type(DType t) { return t == DType::BF16 ? CUDA_R_16BF : CUDA_R_32F; }

// The same product written directly against cuBLASLt (row-major out = column-major out^T = b^T a^T).
struct RawLt {
  cublasLtHandle_t lt = nullptr;
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ld = nullptr;
  cublasLtMatmulAlgo_t algo{};
  void* ws = nullptr;
  size_t ws_bytes = size_t(32) << 20;

  RawLt(const GemmCase& g, DType in, DType out, bool tf32) {
    lt_check(cublasLtCreate(&lt), "create");
    bench::check(cudaMalloc(&ws, ws_bytes), "workspace");
    lt_check(cublasLtMatmulDescCreate(&desc, tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUDA_R_32F),
             "desc");
    cublasOperation_t opa = g.tb ? CUBLAS_OP_T : CUBLAS_OP_N, opb = g.ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    lt_check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof(opa)), "transa");
    lt_check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof(opb)), "transb");
    auto layout = [&](DType t, int64_t rows, int64_t cols, cublasLtMatrixLayout_t* l) {
      lt_check(cublasLtMatrixLayoutCreate(l, cuda_type(t), uint64_t(rows), uint64_t(cols), rows), "layout");
      if (g.batch > 1) {
        int32_t count = int32_t(g.batch);
        int64_t stride = rows * cols;
        lt_check(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)), "b");
        lt_check(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                  sizeof(stride)),
                 "stride");
      }
    };
    layout(in, g.tb ? g.K : g.N, g.tb ? g.N : g.K, &la);
    layout(in, g.ta ? g.M : g.K, g.ta ? g.K : g.M, &lb);
    layout(out, g.N, g.M, &ld);
    cublasLtMatmulPreference_t pref;
    lt_check(cublasLtMatmulPreferenceCreate(&pref), "pref");
    uint64_t wsb = ws_bytes;
    lt_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof(wsb)),
             "pref ws");
    cublasLtMatmulHeuristicResult_t r{};
    int n = 0;
    lt_check(cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, ld, ld, pref, 1, &r, &n), "heuristic");
    if (n == 0) {
      std::fprintf(stderr, "bench_gemm: no cuBLASLt algorithm for %s\n", g.name);
      std::exit(2);
    }
    algo = r.algo;
    cublasLtMatmulPreferenceDestroy(pref);
  }
  void run(const void* a, const void* b, void* o) {
    float alpha = 1, beta = 0;
    lt_check(cublasLtMatmul(lt, desc, &alpha, b, la, a, lb, &beta, o, ld, o, ld, &algo, ws, ws_bytes, 0), "matmul");
  }
  ~RawLt() {
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(ld);
    cublasLtMatmulDescDestroy(desc);
    cudaFree(ws);
    cublasLtDestroy(lt);
  }
};

struct Mode {
  DType in, out;
  bool tf32;
  const char* label;
  double limit;  // FLOP/s; 0 = the card's measured bf16 rate
};

void run_case(const GemmCase& g, const Mode& mode, const bench::Card& card) {
  Device dev = Device::cuda(0);
  Backend& be = *cuda_backend();
  cuda::set_allow_tf32(mode.tf32);
  Shape sa = g.ta ? Shape{g.batch, g.K, g.M} : Shape{g.batch, g.M, g.K};
  Shape sb = g.tb ? Shape{g.batch, g.N, g.K} : Shape{g.batch, g.K, g.N};
  Shape so{g.batch, g.M, g.N};
  size_t bytes = size_t(shape_numel(sa) + shape_numel(sb)) * dtype_size(mode.in) + size_t(shape_numel(so)) * dtype_size(mode.out);
  int copies = bench::rotation_copies(bytes, card);
  std::vector<Tensor> as, bs, os;
  for (int i = 0; i < copies; ++i) {
    as.push_back(bench::random_tensor(sa, mode.in, 100 + 2 * uint64_t(i)));
    bs.push_back(bench::random_tensor(sb, mode.in, 300 + 2 * uint64_t(i)));
    os.push_back(Tensor::empty(so, mode.out, dev));
  }
  double flops = 2.0 * double(g.batch) * double(g.M) * double(g.N) * double(g.K);
  std::string shape = std::to_string(g.batch) + "x" + std::to_string(g.M) + "x" + std::to_string(g.N) + "x" +
                      std::to_string(g.K) + (g.ta ? " ta" : "") + (g.tb ? " tb" : "");
  bench::Timing ours = bench::time_it([&](int i) {
    int k = i % copies;
    be.matmul(as[size_t(k)], bs[size_t(k)], os[size_t(k)], g.ta, g.tb, 1.0, 0.0);
  });
  bench::row("gemm", g.name, shape, mode.label, "engine", ours, flops, true, card, mode.limit);
  RawLt raw(g, mode.in, mode.out, mode.tf32);
  bench::Timing base = bench::time_it([&](int i) {
    int k = i % copies;
    raw.run(as[size_t(k)].raw_data(), bs[size_t(k)].raw_data(), os[size_t(k)].raw_data());
  });
  bench::row("gemm", g.name, shape, mode.label, "raw cuBLASLt", base, flops, true, card, mode.limit);
  std::printf("| gemm | %s | %s | %s | engine / raw | ratio %.3f | | | |\n", g.name, shape.c_str(), mode.label,
              base.median_us / ours.median_us);
  cuda::set_allow_tf32(false);
}

// The autocast linear layer (bf16 x, W; f32 bias and output): the engine's matmul_bias (bias in the
// cuBLASLt epilogue) against the GEMM followed by a separate broadcast bias add.
void linear_bias_case(const GemmCase& g, const bench::Card& card) {
  Device dev = Device::cuda(0);
  Backend& be = *cuda_backend();
  Shape sa{1, g.M, g.K}, sb{1, g.N, g.K}, so{1, g.M, g.N};
  size_t bytes = size_t(shape_numel(sa) + shape_numel(sb)) * 2 + size_t(shape_numel(so)) * 4;
  int copies = bench::rotation_copies(bytes, card);
  std::vector<Tensor> as, bs, os;
  for (int i = 0; i < copies; ++i) {
    as.push_back(bench::random_tensor(sa, DType::BF16, 500 + 2 * uint64_t(i)));
    bs.push_back(bench::random_tensor(sb, DType::BF16, 700 + 2 * uint64_t(i)));
    os.push_back(Tensor::empty(so, DType::F32, dev));
  }
  Tensor bias = bench::random_tensor({g.N}, DType::F32, 9);
  Tensor bias_rows = bias.view({1, 1, g.N}).expand(so);
  double flops = 2.0 * double(g.M) * double(g.N) * double(g.K);
  std::string shape = "1x" + std::to_string(g.M) + "x" + std::to_string(g.N) + "x" + std::to_string(g.K) + " tb";
  bench::Timing fused = bench::time_it([&](int i) {
    size_t k = size_t(i % copies);
    be.matmul_bias(as[k], bs[k], bias, os[k], false, true);
  });
  bench::row("gemm", std::string(g.name) + " + bias", shape, "bf16->f32", "engine epilogue", fused, flops, true, card);
  bench::Timing separate = bench::time_it([&](int i) {
    size_t k = size_t(i % copies);
    be.matmul(as[k], bs[k], os[k], false, true, 1.0, 0.0);
    be.binary(BinaryOp::Add, os[k], bias_rows, os[k]);
  });
  bench::row("gemm", std::string(g.name) + " + bias", shape, "bf16->f32", "engine gemm, then add", separate, flops,
             true, card);
}

}  // namespace

int main() {
  if (!bench::require_gpu()) return 0;
  bench::Card card = bench::card();
  std::printf("bench_gemm on %s (bf16 limit %.0f TFLOP/s measured; f32 67 and tf32 495 TFLOP/s are H100 SXM spec)\n",
              card.name.c_str(), card.bf16_tflops);
  bench::header();
  const GemmCase bf16_cases[] = {
      {"square", 1, 8192, 8192, 8192, false, false},
      {"esm650 qkv", 1, 8192, 1280, 1280, false, true},
      {"esm650 ffn up", 1, 8192, 5120, 1280, false, true},
      {"esm650 ffn down", 1, 8192, 1280, 5120, false, true},
      {"esm650 dW ffn up", 1, 5120, 1280, 8192, true, false},
      {"esm35 ffn up", 1, 32768, 1920, 480, false, true},
      {"attn QK^T h64", 320, 512, 512, 64, false, true},
      {"attn PV h64", 320, 512, 64, 512, false, false},
      {"attn QK^T h24", 1280, 512, 512, 24, false, true},
  };
  const Mode bf16{DType::BF16, DType::BF16, false, "bf16", 0};
  const Mode bf16_f32{DType::BF16, DType::F32, false, "bf16->f32", 0};
  const Mode f32{DType::F32, DType::F32, false, "f32", 67e12};
  const Mode tf32{DType::F32, DType::F32, true, "tf32", 495e12};
  for (const GemmCase& g : bf16_cases) run_case(g, bf16, card);
  run_case(bf16_cases[2], bf16_f32, card);
  linear_bias_case(bf16_cases[1], card);
  linear_bias_case(bf16_cases[2], card);
  const GemmCase f32_cases[] = {{"square", 1, 4096, 4096, 4096, false, false}, bf16_cases[2]};
  for (const GemmCase& g : f32_cases) {
    run_case(g, f32, card);
    run_case(g, tf32, card);
  }
  return 0;
}
