#pragma once
// Stand-in for cuda_bf16.h in the SIMT emulator: bfloat16 with round-to-nearest-even conversions
// (NaN stays NaN), as the CUDA intrinsics define them.
#include <cstdint>
#include <cstring>

#include "simt_cuda.h"

struct __nv_bfloat16_raw {
  unsigned short x;
};

inline unsigned short simt_float_to_bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
inline float simt_bf16_bits_to_float(unsigned short b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

struct __nv_bfloat16 {
  unsigned short __x;
  __nv_bfloat16() = default;
  __nv_bfloat16(const __nv_bfloat16_raw& r) : __x(r.x) {}
  __nv_bfloat16(float f) : __x(simt_float_to_bf16_bits(f)) {}
  __nv_bfloat16(double f) : __x(simt_float_to_bf16_bits(float(f))) {}
  __nv_bfloat16(int v) : __x(simt_float_to_bf16_bits(float(v))) {}
  operator float() const { return simt_bf16_bits_to_float(__x); }
  operator __nv_bfloat16_raw() const { return __nv_bfloat16_raw{__x}; }
};
struct alignas(4) __nv_bfloat162 {
  __nv_bfloat16 x, y;
};

inline float __bfloat162float(__nv_bfloat16 v) { return simt_bf16_bits_to_float(v.__x); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16_raw{simt_float_to_bf16_bits(f)}; }
inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
inline __nv_bfloat16 __double2bfloat16(double d) { return __float2bfloat16_rn(float(d)); }
inline __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi) {
  return __nv_bfloat162{__float2bfloat16_rn(lo), __float2bfloat16_rn(hi)};
}
inline float __low2float(__nv_bfloat162 v) { return __bfloat162float(v.x); }
inline float __high2float(__nv_bfloat162 v) { return __bfloat162float(v.y); }
