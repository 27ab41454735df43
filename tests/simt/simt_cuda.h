#pragma once
// SIMT emulator: runs the engine's CUDA sources (kernels/cuda) on the CPU so that their logic is
// tested on machines without a GPU (CI, developer laptops).
//
// How: tests/simt/cu2cpp.py rewrites each `kernel<<<grid, block, smem, stream>>>(args)` into a call
// of simt::launch, and the .cu files are compiled as C++ against this header (and the stand-in
// cuda_runtime.h / cuda_bf16.h / cublasLt.h / cub headers in tests/simt/include). A launch runs its
// blocks one after another; the threads of a block are cooperative fibers on one OS thread, run in a
// shuffled order fixed per launch and block (SIMT_SCHEDULE=inorder: thread order), so
// __syncthreads, warp shuffles, warp votes and mma.sync are exact collective exchanges, and a barrier
// that not every live thread reaches (divergence) is reported as a deadlock naming the kernel.
// Launch configurations are validated as the CUDA runtime does (block size, grid limits, dynamic
// shared memory against the 48 KiB default or the cudaFuncSetAttribute opt-in). Shared memory, static
// and dynamic, is filled with NaN bytes before each block.
//
// What this does NOT show: timing, memory-model effects between threads that a barrier does not
// order (the emulator is sequentially consistent), hardware rounding of mma/fast-math intrinsics
// (emulated with fp32 arithmetic), and real cuBLAS/CUB (tests/simt/fake_cublas.cpp computes GEMMs
// plainly from the descriptors). It is not a substitute for a run on a GPU.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <type_traits>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
// Static __shared__ arrays live in one ELF section, which the launcher fills with NaN bytes before
// every block, as dynamic shared memory: a read before a write shows instead of seeing zeros or the
// previous block's values.
#define __shared__ static __attribute__((section("simt_shared_mem")))
#define __align__(n) __attribute__((aligned(n)))
#define __CUDA_ARCH_EMULATED__ 900

// ------------------------------------------------------------------ vector types
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
  unsigned x, y, z;
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
struct alignas(8) uint2 {
  unsigned x, y;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(8) float2 {
  float x, y;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return uint2{x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
inline float2 make_float2(float x, float y) { return float2{x, y}; }

// ------------------------------------------------------------------ errors and runtime types
enum cudaError_t : int {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDeviceFunction = 98,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchFailure = 719,
};
using cudaError = cudaError_t;
struct CUstream_st;
using cudaStream_t = CUstream_st*;
struct CUevent_st;
using cudaEvent_t = CUevent_st*;
#define cudaStreamLegacy ((cudaStream_t)0x1)
#define cudaStreamPerThread ((cudaStream_t)0x2)

enum cudaMemcpyKind { cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2,
                      cudaMemcpyDeviceToDevice = 3, cudaMemcpyDefault = 4 };
enum cudaDeviceAttr { cudaDevAttrMaxThreadsPerBlock = 1, cudaDevAttrMaxSharedMemoryPerBlock = 8,
                      cudaDevAttrMultiProcessorCount = 16, cudaDevAttrMaxSharedMemoryPerBlockOptin = 97 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
                         cudaFuncAttributePreferredSharedMemoryCarveout = 9 };
#define cudaHostAllocDefault 0x00
#define cudaHostAllocPortable 0x01
#define cudaHostAllocMapped 0x02
#define cudaEventDefault 0x00
#define cudaEventDisableTiming 0x02
#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01

cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaGetDevice(int* d);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t e);
const char* cudaGetErrorName(cudaError_t e);
cudaError_t cudaMalloc(void** p, size_t bytes);
template <typename T>
cudaError_t cudaMalloc(T** p, size_t bytes) { return cudaMalloc(reinterpret_cast<void**>(p), bytes); }
cudaError_t cudaFree(void* p);
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned flags);
cudaError_t cudaMallocHost(void** p, size_t bytes);
cudaError_t cudaFreeHost(void* p);
cudaError_t cudaHostGetDevicePointer(void** d, void* h, unsigned flags);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind kind, cudaStream_t s = nullptr);
cudaError_t cudaMemset(void* dst, int value, size_t n);
cudaError_t cudaMemsetAsync(void* dst, int value, size_t n, cudaStream_t s = nullptr);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamCreate(cudaStream_t* s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags = 0);
cudaError_t cudaStreamQuery(cudaStream_t s);
cudaError_t cudaEventCreate(cudaEvent_t* e);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaFuncSetAttribute_impl(const void* func, cudaFuncAttribute attr, int value);
template <typename F>
cudaError_t cudaFuncSetAttribute(F func, cudaFuncAttribute attr, int value) {
  return cudaFuncSetAttribute_impl(reinterpret_cast<const void*>(func), attr, value);
}

// ------------------------------------------------------------------ launches and the thread context
namespace simt {

struct LaunchConfig {
  dim3 grid, block;
  size_t smem = 0;
  cudaStream_t stream = nullptr;
  LaunchConfig(dim3 g, dim3 b, size_t s = 0, cudaStream_t st = nullptr) : grid(g), block(b), smem(s), stream(st) {}
};

// The emulated thread now running (valid inside a kernel only).
struct Thread {
  uint3 tid;
  unsigned linear, lane, warp;
};
extern Thread* g_thread;
extern uint3 g_block_idx;
extern dim3 g_block_dim, g_grid_dim;
unsigned char* dynamic_smem();

// Runs body() once per thread of every block. `func` identifies the kernel for its shared-memory
// attribute (nullptr when the launch text names no single function). A configuration the CUDA
// runtime would reject sets the last error and runs nothing.
void launch(const char* name, const void* func, const LaunchConfig& cfg, const std::function<void()>& body);

// Streams. Kernels, copies and memsets run synchronously on the host whatever their stream, so a
// stream holds only what a stand-in library (fake_nccl.cpp) leaves in flight on it: enqueue() adds a
// completion, which runs when the stream's work up to it must be done -- an event recorded after it
// waited on (cudaStreamWaitEvent, cudaEventSynchronize), the stream synchronised or destroyed,
// cudaDeviceSynchronize, or (streams created without cudaStreamNonBlocking, as CUDA's legacy default
// stream serialises with them) any work on the legacy default stream. Work enqueued on the default
// stream (nullptr, cudaStreamLegacy, cudaStreamPerThread) completes at once.
bool is_default_stream(cudaStream_t s);
bool stream_exists(cudaStream_t s);  // a default stream, or created and not destroyed
void stream_enqueue(cudaStream_t s, std::function<void()> complete);
// Before work that runs now on stream s: completes what s has pending (the legacy default stream:
// what the streams created without cudaStreamNonBlocking have, as CUDA serialises them).
void stream_before_work(cudaStream_t s);
// Runs every pending completion of every stream (in the order each stream enqueued them).
void complete_all_streams();
// True when [p, p + n) lies inside one live cudaMalloc block (or mapped pinned memory): what a real
// device pointer would be.
bool is_device_range(const void* p, size_t n);
// The device cudaSetDevice selected (0 .. count-1; SIMT_DEVICE_COUNT devices, default 1, all of them
// this process's host memory: devices are not isolated from one another).
int current_device();

template <typename... P>
const void* kernel_id(void (*f)(P...)) { return reinterpret_cast<const void*>(f); }

// Warp collectives: every lane of `mask` deposits a 64-bit value, all wait, and each reads the
// deposit of `src` (or, for votes, all of them).
uint64_t warp_exchange(unsigned mask, uint64_t value, int src_lane);
unsigned warp_ballot(unsigned mask, bool pred);
void block_barrier();
// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 with the PTX ISA fragment layouts.
void mma_m16n8k16_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);

}  // namespace simt

#define threadIdx (::simt::g_thread->tid)
#define blockIdx (::simt::g_block_idx)
#define blockDim (::simt::g_block_dim)
#define gridDim (::simt::g_grid_dim)
constexpr int warpSize = 32;

inline void __syncthreads() { ::simt::block_barrier(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { (void)::simt::warp_ballot(mask, true); }
inline void __threadfence() {}
inline void __threadfence_block() {}
inline void __threadfence_system() {}

template <typename T>
T simt_shfl_impl(unsigned mask, T v, int src) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "shuffle of a type wider than 8 bytes");
  uint64_t u = 0;
  std::memcpy(&u, &v, sizeof(T));
  uint64_t r = ::simt::warp_exchange(mask, u, src);
  T out;
  std::memcpy(&out, &r, sizeof(T));
  return out;
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  int lane = int(::simt::g_thread->lane);
  int src = lane ^ lane_mask;
  if ((src & ~(width - 1)) != (lane & ~(width - 1))) src = lane;
  return simt_shfl_impl(mask, v, src);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  int lane = int(::simt::g_thread->lane);
  int src = lane + int(delta);
  if ((src & ~(width - 1)) != (lane & ~(width - 1))) src = lane;
  return simt_shfl_impl(mask, v, src);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  int lane = int(::simt::g_thread->lane);
  int src = lane - int(delta);
  if (src < (lane & ~(width - 1))) src = lane;
  return simt_shfl_impl(mask, v, src);
}
template <typename T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  int lane = int(::simt::g_thread->lane);
  return simt_shfl_impl(mask, v, (lane & ~(width - 1)) + (src & (width - 1)));
}
inline unsigned __ballot_sync(unsigned mask, int pred) { return ::simt::warp_ballot(mask, pred != 0); }
inline int __any_sync(unsigned mask, int pred) { return ::simt::warp_ballot(mask, pred != 0) != 0; }
inline int __all_sync(unsigned mask, int pred) { return ::simt::warp_ballot(mask, pred != 0) == mask; }

// Atomics: the fibers of a launch never run at the same time, so plain read-modify-write is atomic.
template <typename T>
T atomicAdd(T* p, T v) {
  T old = *p;
  *p = old + v;
  return old;
}
template <typename T>
T atomicCAS(T* p, T compare, T v) {
  T old = *p;
  if (old == compare) *p = v;
  return old;
}
template <typename T>
T atomicExch(T* p, T v) {
  T old = *p;
  *p = v;
  return old;
}
template <typename T>
T atomicMax(T* p, T v) {
  T old = *p;
  if (v > old) *p = v;
  return old;
}
template <typename T>
T atomicOr(T* p, T v) {
  T old = *p;
  *p = old | v;
  return old;
}

// ------------------------------------------------------------------ math intrinsics
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned i; std::memcpy(&i, &f, 4); return i; }
inline float __uint_as_float(unsigned i) { float f; std::memcpy(&f, &i, 4); return f; }
inline int __popc(unsigned v) { return __builtin_popcount(v); }
inline int __clz(int v) { return v == 0 ? 32 : __builtin_clz(unsigned(v)); }
inline int __clzll(long long v) { return v == 0 ? 64 : __builtin_clzll((unsigned long long)v); }
using std::isfinite;
using std::isinf;
using std::isnan;
// CUDA's global min/max for mixed arithmetic types.
template <typename A, typename B, typename = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
inline std::common_type_t<A, B> min(A a, B b) {
  using C = std::common_type_t<A, B>;
  return C(b) < C(a) ? C(b) : C(a);
}
template <typename A, typename B, typename = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
inline std::common_type_t<A, B> max(A a, B b) {
  using C = std::common_type_t<A, B>;
  return C(a) < C(b) ? C(b) : C(a);
}
