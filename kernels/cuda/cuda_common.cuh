#pragma once
// Shared by the CUDA kernels: the error macros, the stream, dtype dispatch, conversions between
// storage types and the accumulation type (fp32 for f32/bf16, fp64 for f64), launch sizing and
// the small device helpers (packed loads, warp/block reductions, strided offsets).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "kernels/backend.h"

namespace pe::cuda {

// ------------------------------------------------------------------ errors
// A CUDA (or cuBLAS) failure becomes a pe::Error naming the op, the failing call and file:line.
[[noreturn]] void throw_cuda_error(int code, const char* code_name, const char* what, const char* op,
                                   const char* file, int line);
// After each launch: a launch error (bad configuration, no device, ...) is raised here; with
// PE_CUDA_SYNC=1 in the environment the stream is also synchronised so that a fault inside the
// kernel is reported by the op that caused it, and device-side range errors are raised at once.
void check_launch(const char* op, const char* file, int line);
inline bool status_ok(cudaError_t e) { return e == cudaSuccess; }
inline const char* status_name(cudaError_t e) { return cudaGetErrorString(e); }

}  // namespace pe::cuda

// The one check macro: `expr` returns a cudaError_t (or a library status with status_ok and
// status_name overloads, e.g. cublasStatus_t in matmul.cu); failure throws pe::Error naming `op`.
#define PE_CUDA_CHECK(expr, op)                                                                            \
  do {                                                                                                     \
    auto pe_cuda_st_ = (expr);                                                                             \
    if (!::pe::cuda::status_ok(pe_cuda_st_))                                                               \
      ::pe::cuda::throw_cuda_error(int(pe_cuda_st_), ::pe::cuda::status_name(pe_cuda_st_), #expr, op,      \
                                   __FILE__, __LINE__);                                                    \
  } while (0)
#define PE_CUDA_LAUNCH_CHECK(op) ::pe::cuda::check_launch(op, __FILE__, __LINE__)

namespace pe::cuda {

// ------------------------------------------------------------------ device state
// All work is ordered on one stream (the legacy default stream), so the caching allocator may hand
// a freed block to the next op at once: that op runs after every earlier user of the block.
inline cudaStream_t stream() { return cudaStreamLegacy; }
int sm_count();  // multiprocessors of the current device (cached)

// Grid size for a grid-stride loop over `work` items with `threads` per block.
inline unsigned grid_for(int64_t work, int threads, int blocks_per_sm = 8) {
  int64_t need = (work + threads - 1) / threads;
  int64_t cap = int64_t(sm_count()) * blocks_per_sm;
  if (need > cap) need = cap;
  return unsigned(need < 1 ? 1 : need);
}

// Temporary device memory from the caching allocator, returned when the object goes (safe at once:
// see stream()).
void* device_alloc(size_t nbytes);
void device_free(void* p);
struct DeviceBuffer {
  void* ptr = nullptr;
  explicit DeviceBuffer(size_t nbytes) : ptr(nbytes ? device_alloc(nbytes) : nullptr) {}
  ~DeviceBuffer() {
    if (ptr) device_free(ptr);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <typename T>
  T* as() const { return static_cast<T*>(ptr); }
};

// Range errors found inside kernels (an index out of bounds). The first one is recorded in mapped
// pinned memory (a claim word in device memory decides which thread writes it) and raised as a
// pe::Error naming the op at the next synchronisation (synchronize(), copy_to_host,
// has_nonfinite), or at once under PE_CUDA_SYNC=1. The offending element is left unwritten.
enum class DeviceErrorOp : int { None = 0, IndexSelect, IndexAdd, Gather, ScatterAdd };
struct DeviceErrorRecord {
  int op;
  int pad;
  long long value, bound, where;
};
struct ErrorSink {
  int* claim;              // device memory
  DeviceErrorRecord* rec;  // device address of the mapped host record
};
ErrorSink error_sink();
void raise_device_errors();  // call after a synchronisation

__device__ inline void report_index_error(ErrorSink sink, DeviceErrorOp op, long long value, long long bound,
                                          long long where) {
  if (atomicCAS(sink.claim, 0, 1) == 0) {
    sink.rec->value = value;
    sink.rec->bound = bound;
    sink.rec->where = where;
    __threadfence_system();
    *reinterpret_cast<volatile int*>(&sink.rec->op) = int(op);
  }
}

// ------------------------------------------------------------------ types
using bf16_t = __nv_bfloat16;

template <typename T>
struct AccOf { using type = float; };
template <>
struct AccOf<double> { using type = double; };
template <typename T>
using acc_t = typename AccOf<T>::type;

// Storage <-> accumulation conversions (bf16 rounds to nearest even, as core/dtype.h does).
__device__ __forceinline__ float to_acc(float v) { return v; }
__device__ __forceinline__ double to_acc(double v) { return v; }
__device__ __forceinline__ float to_acc(bf16_t v) { return __bfloat162float(v); }
template <typename T>
__device__ __forceinline__ T from_acc(float v) { return T(v); }
template <typename T>
__device__ __forceinline__ T from_acc(double v) { return T(v); }
template <>
__device__ __forceinline__ bf16_t from_acc<bf16_t>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ bf16_t from_acc<bf16_t>(double v) { return __float2bfloat16_rn(float(v)); }

// Math in the accumulation type, overloaded so that templates pick expf or exp.
__device__ __forceinline__ float m_exp(float x) { return expf(x); }
__device__ __forceinline__ double m_exp(double x) { return exp(x); }
__device__ __forceinline__ float m_log(float x) { return logf(x); }
__device__ __forceinline__ double m_log(double x) { return log(x); }
__device__ __forceinline__ float m_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double m_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float m_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double m_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float m_erf(float x) { return erff(x); }
__device__ __forceinline__ double m_erf(double x) { return erf(x); }
__device__ __forceinline__ float m_pow(float x, float s) { return powf(x, s); }
__device__ __forceinline__ double m_pow(double x, double s) { return pow(x, s); }
__device__ __forceinline__ float m_abs(float x) { return fabsf(x); }
__device__ __forceinline__ double m_abs(double x) { return fabs(x); }

// Any-to-any conversion with the CPU backend's semantics (kernels/cpu/memory.cpp copy_strided):
// integer -> integer is a C++ cast; anything else goes through double; bool is `!= 0`.
template <typename T>
__device__ __forceinline__ double as_double(T v) { return double(v); }
template <>
__device__ __forceinline__ double as_double<bf16_t>(bf16_t v) { return double(__bfloat162float(v)); }
template <typename D>
__device__ __forceinline__ D from_double(double v) {
  if constexpr (std::is_same_v<D, bool>) return v != 0.0;
  else if constexpr (std::is_same_v<D, bf16_t>) return __float2bfloat16_rn(float(v));
  else return D(v);
}
template <typename D, typename S>
__device__ __forceinline__ D convert(S v) {
  if constexpr (std::is_same_v<D, S>) return v;
  else if constexpr (std::is_integral_v<S> && std::is_integral_v<D>) return D(v);
  else return from_double<D>(as_double(v));
}

// A floating pointer whose dtype is known only at run time: used for small side operands
// (weights, statistics, optimizer state) so kernels need not be instantiated for every mix.
struct FloatPtr {
  void* p = nullptr;
  DType t = DType::F32;
  __device__ __forceinline__ double load_d(int64_t i) const {
    switch (t) {
      case DType::F64: return static_cast<const double*>(p)[i];
      case DType::BF16: return double(__bfloat162float(static_cast<const bf16_t*>(p)[i]));
      default: return double(static_cast<const float*>(p)[i]);
    }
  }
  __device__ __forceinline__ float load_f(int64_t i) const {
    switch (t) {
      case DType::F64: return float(static_cast<const double*>(p)[i]);
      case DType::BF16: return __bfloat162float(static_cast<const bf16_t*>(p)[i]);
      default: return static_cast<const float*>(p)[i];
    }
  }
  template <typename A>
  __device__ __forceinline__ A load(int64_t i) const {
    if constexpr (std::is_same_v<A, double>) return load_d(i);
    else return load_f(i);
  }
  template <typename A>
  __device__ __forceinline__ void store(int64_t i, A v) const {
    switch (t) {
      case DType::F64: static_cast<double*>(p)[i] = double(v); break;
      case DType::BF16: static_cast<bf16_t*>(p)[i] = __float2bfloat16_rn(float(v)); break;
      default: static_cast<float*>(p)[i] = float(v); break;
    }
  }
};
FloatPtr float_ptr(const Tensor& t, const char* op, const char* what);  // checks floating, contiguous

// Host-side dispatch: calls f(T{}) with T the device storage type of the dtype.
template <typename F>
void dispatch_float(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::F32: f(float{}); return;
    case DType::F64: f(double{}); return;
    case DType::BF16: f(bf16_t{}); return;
    default: PE_FAIL(op, ": dtype ", dtype_name(t), " is not supported on the CUDA backend (use f32, f64 or bf16)");
  }
}
template <typename F>
void dispatch_all(DType t, F&& f) {
  switch (t) {
    case DType::F32: f(float{}); return;
    case DType::F64: f(double{}); return;
    case DType::BF16: f(bf16_t{}); return;
    case DType::I32: f(int32_t{}); return;
    case DType::I64: f(int64_t{}); return;
    case DType::U8: f(uint8_t{}); return;
    case DType::Bool: f(bool{}); return;
  }
}

// Launcher-side checks: every tensor handed to a kernel lives on a CUDA device.
void check_cuda_tensor(const Tensor& t, const char* op, const char* what);
void check_contiguous(const Tensor& t, const char* op, const char* what);

// ------------------------------------------------------------------ packed (16-byte) access
template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};
template <typename T>
constexpr int pack_width() { return int(16 / sizeof(T)) > 0 ? int(16 / sizeof(T)) : 1; }
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// ------------------------------------------------------------------ reductions
template <typename A>
__device__ __forceinline__ A warp_sum(A v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <typename A>
__device__ __forceinline__ A max_nan(A a, A b) { return (a > b || a != a) ? a : b; }  // NaN propagates
template <typename A>
__device__ __forceinline__ A warp_max(A v) {
  for (int o = 16; o > 0; o >>= 1) v = max_nan(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// Whole-block reductions; `sh` holds 32 values. Every thread gets the result. The order is fixed,
// so results are reproducible run to run.
template <typename A>
__device__ __forceinline__ A block_sum(A v, A* sh) {
  int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();  // sh may still be read by the previous reduction
  if (lane == 0) sh[wid] = v;
  __syncthreads();
  return warp_sum(lane < nw ? sh[lane] : A(0));
}
template <typename A>
__device__ __forceinline__ A block_max(A v, A* sh, A identity) {
  int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) sh[wid] = v;
  __syncthreads();
  return warp_max(lane < nw ? sh[lane] : identity);
}

// ------------------------------------------------------------------ strided offsets
constexpr int kMaxDims = 12;
// Element offsets of N operands for a linear index over `sizes` (row-major), dims collapsed on
// the host so that the usual cases need one or two divisions.
template <int N>
struct StridedOffsets {
  int ndim = 0;
  int64_t sizes[kMaxDims];
  int64_t strides[N][kMaxDims];
  // I: int64_t, or uint32_t when the launcher checked that every offset fits (fits_int32).
  template <typename I>
  __device__ __forceinline__ void get(I linear, I (&off)[N]) const {
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      I s = I(sizes[d]);
      I i = linear % s;
      linear /= s;
      for (int k = 0; k < N; ++k) off[k] += i * I(strides[k][d]);
    }
  }
};
// Drops size-1 dims and merges neighbours that are contiguous for every operand.
template <int N>
StridedOffsets<N> make_offsets(const Shape& shape, const Shape* const strides[N], const char* op) {
  std::vector<int64_t> sz;
  std::vector<std::vector<int64_t>> st(N);
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (!sz.empty()) {
      bool merge = true;
      for (int k = 0; k < N; ++k) merge &= st[size_t(k)].back() == (*strides[k])[d] * shape[d];
      if (merge) {
        sz.back() *= shape[d];
        for (int k = 0; k < N; ++k) st[size_t(k)].back() = (*strides[k])[d];
        continue;
      }
    }
    sz.push_back(shape[d]);
    for (int k = 0; k < N; ++k) st[size_t(k)].push_back((*strides[k])[d]);
  }
  PE_CHECK(sz.size() <= size_t(kMaxDims), op, ": ", sz.size(), " non-mergeable dims exceed the CUDA limit of ",
           kMaxDims);
  StridedOffsets<N> o;
  o.ndim = int(sz.size());
  for (size_t d = 0; d < sz.size(); ++d) {
    o.sizes[d] = sz[d];
    for (int k = 0; k < N; ++k) o.strides[k][d] = st[size_t(k)][d];
  }
  return o;
}

}  // namespace pe::cuda
