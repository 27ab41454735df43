#pragma once
// Element types. bf16 is stored as its raw 16 bits; arithmetic converts to float.
#include <cstdint>
#include <cstring>
#include <string>

#ifdef __CUDACC__
#define PE_HD __host__ __device__
#else
#define PE_HD
#endif

namespace pe {

enum class DType : uint8_t { F32, F64, BF16, I32, I64, U8, Bool };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::BF16: return 2;
    case DType::I32: return 4;
    case DType::I64: return 8;
    case DType::U8: return 1;
    case DType::Bool: return 1;
  }
  return 0;
}
inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F64: return "f64";
    case DType::BF16: return "bf16";
    case DType::I32: return "i32";
    case DType::I64: return "i64";
    case DType::U8: return "u8";
    case DType::Bool: return "bool";
  }
  return "?";
}
inline bool is_floating(DType t) { return t == DType::F32 || t == DType::F64 || t == DType::BF16; }
inline bool is_integral(DType t) { return !is_floating(t); }

// Brain float: the top 16 bits of an IEEE float32. f32 -> bf16 rounds to nearest even; NaN stays NaN.
struct bf16 {
  uint16_t bits = 0;
  bf16() = default;
  PE_HD explicit bf16(float f) { bits = from_float(f); }
  PE_HD operator float() const {
    uint32_t u = uint32_t(bits) << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
  }
  PE_HD static uint16_t from_float(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return uint16_t((u >> 16) | 0x40);  // quiet NaN
    uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
    return uint16_t((u + rounding) >> 16);
  }
};

}  // namespace pe
