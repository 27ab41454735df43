// copy_strided: any strides (stride 0 broadcast included) and any pair of dtypes, with the CPU
// backend's conversion rules (cuda_common.cuh: convert).
#include "kernels/cuda/cuda_backend.cuh"
#include "kernels/cuda/elementwise.cuh"

namespace pe::cuda {

namespace {

template <typename D, typename S>
struct ConvertF {
  __device__ __forceinline__ D operator()(S v) const { return convert<D>(v); }
};

// dst[off1] = src[off0] over the collapsed shape.
template <typename S, typename D, typename I>
__global__ void copy_strided_kernel(I n, StridedOffsets<2> so, const S* __restrict__ src, D* __restrict__ dst) {
  I step = I(gridDim.x) * blockDim.x;
  for (I i = I(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    I off[2];
    so.get(i, off);
    dst[off[1]] = convert<D>(src[off[0]]);
  }
}

template <typename S, typename D, typename I>
void launch_copy_strided(const Tensor& src, const Tensor& dst) {
  const Shape* st[2] = {&src.strides(), &dst.strides()};
  StridedOffsets<2> so = make_offsets<2>(dst.shape(), st, "copy");
  int64_t n = dst.numel();
  copy_strided_kernel<S, D, I><<<grid_for(n, kMapThreads), kMapThreads, 0, stream()>>>(
      I(n), so, src.data<S>(), dst.data<D>());
  PE_CUDA_LAUNCH_CHECK("copy");
}

}  // namespace

void CudaBackend::copy_strided(const Tensor& src, const Tensor& dst) {
  check_cuda_tensor(src, "copy", "source");
  check_cuda_tensor(dst, "copy", "destination");
  PE_CHECK(src.shape() == dst.shape(), "copy: shape ", shape_str(src.shape()), " into ", shape_str(dst.shape()));
  int64_t n = dst.numel();
  if (n == 0) return;
  bool contiguous = src.is_contiguous() && dst.is_contiguous();
  if (contiguous && src.dtype() == dst.dtype()) {
    PE_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), dst.nbytes(), cudaMemcpyDeviceToDevice, stream()),
                  "copy");
    return;
  }
  dispatch_all(src.dtype(), [&](auto s_tag) {
    using S = decltype(s_tag);
    dispatch_all(dst.dtype(), [&](auto d_tag) {
      using D = decltype(d_tag);
      if (contiguous) {
        launch_map1("copy", n, ConvertF<D, S>{}, dst.data<D>(), src.data<S>());
        return;
      }
      // 32-bit offsets for the frequent same-dtype layout changes (contiguous() of a transpose);
      // conversions between layouts are rare enough to keep one instantiation.
      if constexpr (std::is_same_v<S, D>) {
        if (fits_int32(n, dst.shape(), {&src.strides(), &dst.strides()})) {
          launch_copy_strided<S, D, uint32_t>(src, dst);
          return;
        }
      }
      launch_copy_strided<S, D, int64_t>(src, dst);
    });
  });
}

}  // namespace pe::cuda
