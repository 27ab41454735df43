#pragma once
// Helpers shared by the CPU kernels: dtype dispatch and strided iteration.
#include <omp.h>

#include <cmath>
#include <cstdint>

#include "core/tensor.h"
#include "kernels/backend.h"

namespace pe::cpu {

// Calls f(T{}) with T the C++ type of a floating dtype the CPU computes in (f32, f64).
template <typename F>
void dispatch_float(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::F32: f(float{}); return;
    case DType::F64: f(double{}); return;
    default: PE_FAIL(op, ": dtype ", dtype_name(t), " is not supported on the CPU backend (use f32 or f64)");
  }
}

template <typename F>
void dispatch_all(DType t, F&& f) {
  switch (t) {
    case DType::F32: f(float{}); return;
    case DType::F64: f(double{}); return;
    case DType::BF16: f(bf16{}); return;
    case DType::I32: f(int32_t{}); return;
    case DType::I64: f(int64_t{}); return;
    case DType::U8: f(uint8_t{}); return;
    case DType::Bool: f(bool{}); return;
  }
}

template <typename T>
inline double to_f64(T v) { return double(v); }
inline double to_f64(bf16 v) { return double(float(v)); }
template <typename T>
inline T from_f64(double v) { return T(v); }
template <>
inline bf16 from_f64<bf16>(double v) { return bf16(float(v)); }
template <>
inline bool from_f64<bool>(double v) { return v != 0.0; }

// Elements per OpenMP chunk below which loops stay serial (thread start-up costs more).
constexpr int64_t kParallelGrain = 1 << 15;

// Visits every element of `shape` with the element offsets of up to 4 strided operands.
// f(o0, o1, o2, o3) is called with offsets in elements. Parallel over rows of the last dim.
template <int N, typename F>
void for_each_strided(const Shape& shape, const Shape* const strides[N], F&& f) {
  int64_t nd = int64_t(shape.size());
  int64_t inner = nd ? shape[size_t(nd - 1)] : 1;
  int64_t total = shape_numel(shape);
  if (total == 0) return;
  int64_t rows = total / inner;
  int64_t in_st[N];
  for (int k = 0; k < N; ++k) in_st[k] = nd ? (*strides[k])[size_t(nd - 1)] : 0;
#pragma omp parallel for schedule(static) if (total > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t off[N] = {};
    int64_t rem = r;
    for (int64_t d = nd - 2; d >= 0; --d) {
      int64_t idx = rem % shape[size_t(d)];
      rem /= shape[size_t(d)];
      for (int k = 0; k < N; ++k) off[k] += idx * (*strides[k])[size_t(d)];
    }
    for (int64_t i = 0; i < inner; ++i) {
      int64_t o[4] = {};
      for (int k = 0; k < N; ++k) o[k] = off[k] + i * in_st[k];
      f(o[0], o[1], o[2], o[3]);
    }
  }
}

}  // namespace pe::cpu
