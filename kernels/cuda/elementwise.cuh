#pragma once
// Contiguous map kernels shared by the elementwise, copy and optimizer files: out[i] = f(in[i]...),
// 16-byte packed loads and stores when every pointer allows it, a grid-stride loop, a scalar tail.
#include "kernels/cuda/cuda_common.cuh"

namespace pe::cuda {

constexpr int kMapThreads = 256;

template <int VEC, typename TO, typename TA, typename F>
__global__ void map1_kernel(int64_t n, F f, TO* __restrict__ out, const TA* __restrict__ a) {
  int64_t step = int64_t(gridDim.x) * blockDim.x, tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t nv = n / VEC;
  for (int64_t i = tid; i < nv; i += step) {
    Pack<TA, VEC> pa = reinterpret_cast<const Pack<TA, VEC>*>(a)[i];
    Pack<TO, VEC> po;
#pragma unroll
    for (int k = 0; k < VEC; ++k) po.v[k] = f(pa.v[k]);
    reinterpret_cast<Pack<TO, VEC>*>(out)[i] = po;
  }
  for (int64_t i = nv * VEC + tid; i < n; i += step) out[i] = f(a[i]);
}

template <int VEC, typename TO, typename TA, typename TB, typename F>
__global__ void map2_kernel(int64_t n, F f, TO* __restrict__ out, const TA* __restrict__ a, const TB* __restrict__ b) {
  int64_t step = int64_t(gridDim.x) * blockDim.x, tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t nv = n / VEC;
  for (int64_t i = tid; i < nv; i += step) {
    Pack<TA, VEC> pa = reinterpret_cast<const Pack<TA, VEC>*>(a)[i];
    Pack<TB, VEC> pb = reinterpret_cast<const Pack<TB, VEC>*>(b)[i];
    Pack<TO, VEC> po;
#pragma unroll
    for (int k = 0; k < VEC; ++k) po.v[k] = f(pa.v[k], pb.v[k]);
    reinterpret_cast<Pack<TO, VEC>*>(out)[i] = po;
  }
  for (int64_t i = nv * VEC + tid; i < n; i += step) out[i] = f(a[i], b[i]);
}

template <int VEC, typename TO, typename TA, typename TB, typename TC, typename F>
__global__ void map3_kernel(int64_t n, F f, TO* __restrict__ out, const TA* __restrict__ a, const TB* __restrict__ b,
                            const TC* __restrict__ c) {
  int64_t step = int64_t(gridDim.x) * blockDim.x, tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t nv = n / VEC;
  for (int64_t i = tid; i < nv; i += step) {
    Pack<TA, VEC> pa = reinterpret_cast<const Pack<TA, VEC>*>(a)[i];
    Pack<TB, VEC> pb = reinterpret_cast<const Pack<TB, VEC>*>(b)[i];
    Pack<TC, VEC> pc = reinterpret_cast<const Pack<TC, VEC>*>(c)[i];
    Pack<TO, VEC> po;
#pragma unroll
    for (int k = 0; k < VEC; ++k) po.v[k] = f(pa.v[k], pb.v[k], pc.v[k]);
    reinterpret_cast<Pack<TO, VEC>*>(out)[i] = po;
  }
  for (int64_t i = nv * VEC + tid; i < n; i += step) out[i] = f(a[i], b[i], c[i]);
}

// Elements per 16-byte access for the widest of the types.
template <typename... T>
constexpr int vec_width() {
  size_t widest = 1;
  ((widest = sizeof(T) > widest ? sizeof(T) : widest), ...);
  return int(16 / widest) > 0 ? int(16 / widest) : 1;
}
template <int VEC, typename T>
bool pack_aligned(const T* p) { return (reinterpret_cast<uintptr_t>(p) % (sizeof(T) * VEC)) == 0; }

template <typename TO, typename TA, typename F>
void launch_map1(const char* op, int64_t n, F f, TO* out, const TA* a) {
  if (n <= 0) return;
  constexpr int V = vec_width<TO, TA>();
  if (pack_aligned<V>(out) && pack_aligned<V>(a))
    map1_kernel<V><<<grid_for(n / V + 1, kMapThreads), kMapThreads, 0, stream()>>>(n, f, out, a);
  else
    map1_kernel<1><<<grid_for(n, kMapThreads), kMapThreads, 0, stream()>>>(n, f, out, a);
  PE_CUDA_LAUNCH_CHECK(op);
}

template <typename TO, typename TA, typename TB, typename F>
void launch_map2(const char* op, int64_t n, F f, TO* out, const TA* a, const TB* b) {
  if (n <= 0) return;
  constexpr int V = vec_width<TO, TA, TB>();
  if (pack_aligned<V>(out) && pack_aligned<V>(a) && pack_aligned<V>(b))
    map2_kernel<V><<<grid_for(n / V + 1, kMapThreads), kMapThreads, 0, stream()>>>(n, f, out, a, b);
  else
    map2_kernel<1><<<grid_for(n, kMapThreads), kMapThreads, 0, stream()>>>(n, f, out, a, b);
  PE_CUDA_LAUNCH_CHECK(op);
}

template <typename TO, typename TA, typename TB, typename TC, typename F>
void launch_map3(const char* op, int64_t n, F f, TO* out, const TA* a, const TB* b, const TC* c) {
  if (n <= 0) return;
  constexpr int V = vec_width<TO, TA, TB, TC>();
  if (pack_aligned<V>(out) && pack_aligned<V>(a) && pack_aligned<V>(b) && pack_aligned<V>(c))
    map3_kernel<V><<<grid_for(n / V + 1, kMapThreads), kMapThreads, 0, stream()>>>(n, f, out, a, b, c);
  else
    map3_kernel<1><<<grid_for(n, kMapThreads), kMapThreads, 0, stream()>>>(n, f, out, a, b, c);
  PE_CUDA_LAUNCH_CHECK(op);
}

// True when every offset of a strided walk fits in unsigned 32 bits (cheaper index arithmetic).
inline bool fits_int32(int64_t numel, const Shape& shape, const std::vector<const Shape*>& strides) {
  const int64_t lim = int64_t(1) << 31;
  if (numel >= lim) return false;
  for (const Shape* st : strides) {
    int64_t span = 0;
    for (size_t d = 0; d < shape.size(); ++d) {
      if ((*st)[d] < 0) return false;
      span += (shape[d] - 1) * (*st)[d];
    }
    if (span >= lim) return false;
  }
  return true;
}

// Launcher check: ref is floating and every other operand is on the GPU with ref's dtype.
inline void check_same_float(const char* op, const Tensor& ref, std::initializer_list<const Tensor*> others) {
  check_cuda_tensor(ref, op, "input");
  PE_CHECK(is_floating(ref.dtype()), op, ": expected a floating tensor, got ", ref.str());
  for (const Tensor* t : others) {
    check_cuda_tensor(*t, op, "operand");
    PE_CHECK(t->dtype() == ref.dtype(), op, ": dtype mismatch: ", t->str(), " and ", ref.str());
  }
}

}  // namespace pe::cuda
