#include <cstdlib>
#include <cstring>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_common.h"

namespace pe {

namespace cpu {

// kernels/cpu/allocator.cpp
void* cpu_allocate(size_t nbytes);
void cpu_deallocate(void* p, size_t nbytes);

void* CpuBackend::allocate(size_t nbytes) { return cpu_allocate(nbytes); }
void CpuBackend::deallocate(void* p, size_t nbytes) { cpu_deallocate(p, nbytes); }
void CpuBackend::copy_from_host(void* dst, const void* src, size_t n) { std::memcpy(dst, src, n); }
void CpuBackend::copy_to_host(void* dst, const void* src, size_t n) { std::memcpy(dst, src, n); }

void CpuBackend::copy_strided(const Tensor& src, const Tensor& dst) {
  PE_CHECK(src.shape() == dst.shape(), "copy: shape ", shape_str(src.shape()), " into ", shape_str(dst.shape()));
  dispatch_all(src.dtype(), [&](auto s_tag) {
    using S = decltype(s_tag);
    dispatch_all(dst.dtype(), [&](auto d_tag) {
      using D = decltype(d_tag);
      const S* sp = src.data<S>();
      D* dp = dst.data<D>();
      const Shape* st[2] = {&src.strides(), &dst.strides()};
      for_each_strided<2>(dst.shape(), st, [&](int64_t os, int64_t od, int64_t, int64_t) {
        if constexpr (std::is_same_v<S, D>) {
          dp[od] = sp[os];
        } else if constexpr (std::is_integral_v<S> && std::is_integral_v<D>) {
          dp[od] = D(sp[os]);
        } else {
          dp[od] = from_f64<D>(to_f64(sp[os]));
        }
      });
    });
  });
}

void CpuBackend::fill(const Tensor& dst, double value) {
  PE_CHECK(dst.is_contiguous(), "fill: destination must be contiguous");
  dispatch_all(dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T v = from_f64<T>(value);
    T* p = dst.data<T>();
    int64_t n = dst.numel();
    for (int64_t i = 0; i < n; ++i) p[i] = v;
  });
}

void CpuBackend::random(const Tensor& dst, RandomKind kind, double a, double b, uint64_t seed, uint64_t offset) {
  PE_CHECK(dst.is_contiguous(), "random: destination must be contiguous");
  dispatch_all(dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* p = dst.data<T>();
    int64_t n = dst.numel();
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) p[i] = from_f64<T>(philox_sample(kind, seed, offset + uint64_t(i), a, b));
  });
}

}  // namespace cpu

Backend& cpu_backend() {
  static cpu::CpuBackend backend;
  return backend;
}

Backend& backend_for(Device device) {
  if (device.is_cpu()) return cpu_backend();
  Backend* b = cuda_backend();
  PE_CHECK(b, "device ", device.str(), " requested, but this build of protst-engine has no CUDA backend "
           "(configure with -DPE_CUDA=ON on a machine with nvcc)");
  return *b;
}

}  // namespace pe
