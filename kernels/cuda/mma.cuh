#pragma once
// bf16 tensor-core fragments shared by the fused kernels (attention.cu, info_nce.cu):
// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 and loads of its operand fragments from
// shared memory. Fragment layouts (PTX ISA), with g = lane / 4 and t = lane % 4:
//   A 16x16 row-major: a0 = (g, 2t..2t+1), a1 = (g+8, 2t..), a2 = (g, 2t+8..), a3 = (g+8, 2t+8..)
//   B 16x8 (k x n):    b0 = (k 2t..2t+1, n g), b1 = (k 2t+8.., n g)
//   C 16x8 fp32:       c0, c1 = (g, 2t), (g, 2t+1); c2, c3 = (g+8, 2t), (g+8, 2t+1)
// Under the SIMT emulator (PE_SIMT, tests/simt) the instruction is a warp-collective emulation of
// the same layouts.
#include "kernels/cuda/cuda_common.cuh"

namespace pe::cuda {

__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#ifdef PE_SIMT
  ::simt::mma_m16n8k16_bf16(c, a, b0, b1);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (low half) = lo
  return *reinterpret_cast<uint32_t*>(&v);
}
__device__ __forceinline__ uint32_t lds32(const bf16_t* p) { return *reinterpret_cast<const uint32_t*>(p); }
// A fragment of the 16x16 tile at (row0, col0) of a row-major shared array with leading dimension ld.
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const bf16_t* base, int ld, int row0, int col0, int g, int t) {
  const bf16_t* p = base + (row0 + g) * ld + col0 + 2 * t;
  a[0] = lds32(p);
  a[1] = lds32(p + 8 * ld);
  a[2] = lds32(p + 8);
  a[3] = lds32(p + 8 * ld + 8);
}
// B fragment (k x n = 16 x 8) at (k0, n0) from a shared array stored n-major: element (k, n) at base[n * ld + k].
__device__ __forceinline__ void load_b(uint32_t& b0, uint32_t& b1, const bf16_t* base, int ld, int n0, int k0, int g,
                                       int t) {
  const bf16_t* p = base + (n0 + g) * ld + k0 + 2 * t;
  b0 = lds32(p);
  b1 = lds32(p + 8);
}

}  // namespace pe::cuda
