#pragma once
// The f32 linear layer's product on the CPU with its epilogue in the same pass:
//   C = act(A W^T + bias) + residual     (A [M, K], W [N, K] as PyTorch stores it, C [M, N])
// with the pre-activation A W^T + bias written beside it when asked (what the activation's backward
// reads). A BLIS-style GEMM of our own (AVX2 + FMA: 6 x 16 register tile, A and W packed into panels,
// C's next tile prefetched), at oneDNN's sgemm rate on the ESM-2 shapes (bench_cpu_gemm), so the bias,
// the GELU and the residual add run on each output tile while it is in L1 instead of as separate
// passes over a [tokens, 4 x hidden] matrix in memory (together 3-5 % of an ESM-2 embedding).
// Bias then activation then residual, each rounded to f32 in that order: the same operations as the
// unfused ops (matmul_bias, bias_act, add), on a product summed in another order than oneDNN's.
#include <cstdint>

namespace pe::cpu {

enum class LinearAct { None, Gelu, Relu };

struct LinearEpilogue {
  const float* bias = nullptr;  // [N], or none
  LinearAct act = LinearAct::None;
  float* pre = nullptr;  // [M, N] (row stride ld_pre): A W^T + bias before the activation, or none
  int64_t ld_pre = 0;
  const float* residual = nullptr;  // [M, N] (row stride ld_res), added last, or none; not C itself
  int64_t ld_res = 0;
};

// Whether linear_f32 is compiled in (AVX2 + FMA builds) and selected (PE_CPU_LINEAR=onednn turns it off:
// the backend then runs the unfused ops on the library GEMM).
bool linear_f32_enabled();
bool set_linear_f32_enabled(bool on);  // returns the previous setting

// Whether the backend sends an f32 x W^T of this shape here: enabled, and K >= 256, where it measured at
// or above oneDNN's sgemm (bench_cpu_gemm: ESM-2 8M / 35M shapes, the quick start's FFN down); at
// K = 64 / 128 (the quick start's other products) oneDNN was as fast or faster, and the epilogue's
// saving is smaller against a short product.
inline bool linear_f32_for(int64_t K) { return K >= 256 && linear_f32_enabled(); }

// C (row stride ldc) = epilogue(A (row stride lda) W^T (W row stride ldw)), M, N >= 0, K >= 0.
// Parallel over row blocks with OpenMP when called outside a parallel region; inside one it runs on
// the calling thread. Requires linear_f32_enabled() (else throws).
void linear_f32(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* W, int64_t ldw, float* C,
                int64_t ldc, const LinearEpilogue& ep);

}  // namespace pe::cpu
