// fill, random, binary, where and the NaN/Inf scan (unary ops: unary.cu). Math runs in fp32 for
// f32/bf16 and in fp64 for f64, with the formulas of kernels/cpu/elementwise.cpp.
#include <cstring>
#include <type_traits>

#include "kernels/cuda/cuda_backend.cuh"
#include "kernels/cuda/elementwise.cuh"

namespace pe::cuda {

namespace {

template <BinaryOp OP, typename A>
__device__ __forceinline__ A binary_fn(A a, A b) {
  if constexpr (OP == BinaryOp::Add) return a + b;
  else if constexpr (OP == BinaryOp::Sub) return a - b;
  else if constexpr (OP == BinaryOp::Mul) return a * b;
  else if constexpr (OP == BinaryOp::Div) return a / b;
  else if constexpr (OP == BinaryOp::Max) return a >= b ? a : b;
  else if constexpr (OP == BinaryOp::Min) return a <= b ? a : b;
  else if constexpr (OP == BinaryOp::Eq) return a == b ? A(1) : A(0);
  else if constexpr (OP == BinaryOp::Gt) return a > b ? A(1) : A(0);
  else return a < b ? A(1) : A(0);  // Lt
}

template <BinaryOp OP, typename T>
struct BinaryF {
  __device__ __forceinline__ T operator()(T a, T b) const { return from_acc<T>(binary_fn<OP>(to_acc(a), to_acc(b))); }
};

// Calls f(std::integral_constant<BinaryOp, op>{}) so that kernels are specialised per op.
template <typename F>
void with_binary_op(BinaryOp op, F&& f) {
  using B = BinaryOp;
  switch (op) {
#define PE_CASE(x) \
  case B::x: f(std::integral_constant<B, B::x>{}); return;
    PE_CASE(Add) PE_CASE(Sub) PE_CASE(Mul) PE_CASE(Div) PE_CASE(Max) PE_CASE(Min) PE_CASE(Eq) PE_CASE(Gt) PE_CASE(Lt)
#undef PE_CASE
  }
  PE_FAIL("binary: unknown op ", int(op));
}

// ------------------------------------------------------------------ strided kernels
template <typename T, typename F, typename I>
__global__ void binary_strided_kernel(I n, StridedOffsets<2> so, F f, T* __restrict__ out, const T* __restrict__ a,
                                      const T* __restrict__ b) {
  I step = I(gridDim.x) * blockDim.x;
  for (I i = I(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    I off[2];
    so.get(i, off);
    out[i] = f(a[off[0]], b[off[1]]);
  }
}

template <typename C, typename T, typename I>
__global__ void where_kernel(I n, StridedOffsets<3> so, T* __restrict__ out, const C* __restrict__ cond,
                             const T* __restrict__ a, const T* __restrict__ b) {
  I step = I(gridDim.x) * blockDim.x;
  for (I i = I(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    I off[3];
    so.get(i, off);
    out[i] = as_double(cond[off[0]]) != 0.0 ? a[off[1]] : b[off[2]];
  }
}

template <typename T>
__global__ void fill_kernel(int64_t n, T value, T* __restrict__ out) {
  constexpr int V = vec_width<T>();
  int64_t step = int64_t(gridDim.x) * blockDim.x, tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  // The launcher passes a 16-byte aligned pointer.
  int64_t nv = n / V;
  Pack<T, V> pv;
#pragma unroll
  for (int k = 0; k < V; ++k) pv.v[k] = value;
  for (int64_t i = tid; i < nv; i += step) reinterpret_cast<Pack<T, V>*>(out)[i] = pv;
  for (int64_t i = nv * V + tid; i < n; i += step) out[i] = value;
}

template <typename T>
__global__ void fill_scalar_kernel(int64_t n, T value, T* __restrict__ out) {
  int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) out[i] = value;
}

template <typename T>
__global__ void random_kernel(int64_t n, RandomKind kind, double a, double b, uint64_t seed, uint64_t offset,
                              T* __restrict__ out) {
  int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    out[i] = from_double<T>(philox_sample(kind, seed, offset + uint64_t(i), a, b));
}

template <typename T, int VEC>
__global__ void nonfinite_contig_kernel(int64_t n, const T* __restrict__ x, int* flag) {
  int64_t step = int64_t(gridDim.x) * blockDim.x, tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  bool bad = false;
  int64_t nv = n / VEC;
  for (int64_t i = tid; i < nv; i += step) {
    Pack<T, VEC> p = reinterpret_cast<const Pack<T, VEC>*>(x)[i];
#pragma unroll
    for (int k = 0; k < VEC; ++k) bad |= !isfinite(to_acc(p.v[k]));
  }
  for (int64_t i = nv * VEC + tid; i < n; i += step) bad |= !isfinite(to_acc(x[i]));
  if (__any_sync(0xffffffffu, bad) && (threadIdx.x & 31) == 0) *flag = 1;
}

template <typename T>
__global__ void nonfinite_strided_kernel(int64_t n, StridedOffsets<1> so, const T* __restrict__ x, int* flag) {
  int64_t step = int64_t(gridDim.x) * blockDim.x;
  bool bad = false;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t off[1];
    so.get(i, off);
    bad |= !isfinite(to_acc(x[off[0]]));
  }
  if (bad) *flag = 1;
}

// Host value of a dtype with the CPU backend's rounding (core/dtype.h bf16, `!= 0` for bool).
template <typename T>
T host_from_double(double v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v != 0.0;
  } else if constexpr (std::is_same_v<T, bf16_t>) {
    __nv_bfloat16_raw raw;
    raw.x = pe::bf16::from_float(float(v));
    return T(raw);
  } else {
    return T(v);
  }
}

}  // namespace

// ------------------------------------------------------------------ Backend methods
void CudaBackend::fill(const Tensor& dst, double value) {
  check_contiguous(dst, "fill", "destination");
  int64_t n = dst.numel();
  if (n == 0) return;
  dispatch_all(dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T hv = host_from_double<T>(value);
    unsigned char bytes[sizeof(T)];
    std::memcpy(bytes, &hv, sizeof(T));
    bool zero = true;
    for (unsigned char c : bytes) zero &= c == 0;
    if (zero) {
      PE_CUDA_CHECK(cudaMemsetAsync(dst.raw_data(), 0, dst.nbytes(), stream()), "fill");
      return;
    }
    T* p = dst.data<T>();
    if (aligned16(p))
      fill_kernel<T><<<grid_for(n / vec_width<T>() + 1, kMapThreads), kMapThreads, 0, stream()>>>(n, hv, p);
    else
      fill_scalar_kernel<T><<<grid_for(n, kMapThreads), kMapThreads, 0, stream()>>>(n, hv, p);
    PE_CUDA_LAUNCH_CHECK("fill");
  });
}

void CudaBackend::random(const Tensor& dst, RandomKind kind, double a, double b, uint64_t seed, uint64_t offset) {
  check_contiguous(dst, "random", "destination");
  int64_t n = dst.numel();
  if (n == 0) return;
  dispatch_all(dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    random_kernel<T><<<grid_for(n, kMapThreads), kMapThreads, 0, stream()>>>(n, kind, a, b, seed, offset,
                                                                              dst.data<T>());
    PE_CUDA_LAUNCH_CHECK("random");
  });
}

void CudaBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  const char* name = binary_name(op);
  check_same_float(name, out, {&a, &b});
  check_contiguous(out, name, "output");
  PE_CHECK(a.shape() == out.shape() && b.shape() == out.shape(), name, ": operands ", a.str(), ", ", b.str(),
           " are not expanded to ", out.str());
  int64_t n = out.numel();
  if (n == 0) return;
  dispatch_float(out.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    with_binary_op(op, [&](auto opc) {
      constexpr BinaryOp OP = decltype(opc)::value;
      BinaryF<OP, T> f;
      if (a.is_contiguous() && b.is_contiguous()) {
        launch_map2(name, n, f, out.data<T>(), a.data<T>(), b.data<T>());
        return;
      }
      const Shape* st[2] = {&a.strides(), &b.strides()};
      StridedOffsets<2> so = make_offsets<2>(out.shape(), st, name);
      if (fits_int32(n, out.shape(), {&a.strides(), &b.strides()}))
        binary_strided_kernel<T><<<grid_for(n, kMapThreads), kMapThreads, 0, stream()>>>(
            uint32_t(n), so, f, out.data<T>(), a.data<T>(), b.data<T>());
      else
        binary_strided_kernel<T><<<grid_for(n, kMapThreads), kMapThreads, 0, stream()>>>(
            n, so, f, out.data<T>(), a.data<T>(), b.data<T>());
      PE_CUDA_LAUNCH_CHECK(name);
    });
  });
}

void CudaBackend::where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  check_same_float("where", out, {&a, &b});
  check_cuda_tensor(cond, "where", "condition");
  check_contiguous(out, "where", "output");
  PE_CHECK(cond.shape() == out.shape() && a.shape() == out.shape() && b.shape() == out.shape(),
           "where: operands are not expanded to ", out.str());
  int64_t n = out.numel();
  if (n == 0) return;
  const Shape* st[3] = {&cond.strides(), &a.strides(), &b.strides()};
  StridedOffsets<3> so = make_offsets<3>(out.shape(), st, "where");
  bool small = fits_int32(n, out.shape(), {&cond.strides(), &a.strides(), &b.strides()});
  dispatch_all(cond.dtype(), [&](auto ctag) {
    using C = decltype(ctag);
    dispatch_float(out.dtype(), "where", [&](auto tag) {
      using T = decltype(tag);
      if (small)
        where_kernel<C, T><<<grid_for(n, kMapThreads), kMapThreads, 0, stream()>>>(
            uint32_t(n), so, out.data<T>(), cond.data<C>(), a.data<T>(), b.data<T>());
      else
        where_kernel<C, T><<<grid_for(n, kMapThreads), kMapThreads, 0, stream()>>>(
            n, so, out.data<T>(), cond.data<C>(), a.data<T>(), b.data<T>());
      PE_CUDA_LAUNCH_CHECK("where");
    });
  });
}

void launch_nonfinite_scan(const Tensor& x, int* flag) {
  int64_t n = x.numel();
  dispatch_float(x.dtype(), "has_nonfinite", [&](auto tag) {
    using T = decltype(tag);
    constexpr int V = vec_width<T>();
    const T* p = x.data<T>();
    if (x.is_contiguous() && aligned16(p)) {
      nonfinite_contig_kernel<T, V><<<grid_for(n / V + 1, kMapThreads), kMapThreads, 0, stream()>>>(n, p, flag);
    } else if (x.is_contiguous()) {
      nonfinite_contig_kernel<T, 1><<<grid_for(n, kMapThreads), kMapThreads, 0, stream()>>>(n, p, flag);
    } else {
      const Shape* st[1] = {&x.strides()};
      StridedOffsets<1> so = make_offsets<1>(x.shape(), st, "has_nonfinite");
      nonfinite_strided_kernel<T><<<grid_for(n, kMapThreads), kMapThreads, 0, stream()>>>(n, so, p, flag);
    }
    PE_CUDA_LAUNCH_CHECK("has_nonfinite");
  });
}

}  // namespace pe::cuda
