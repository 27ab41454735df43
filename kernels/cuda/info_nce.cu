// Fused InfoNCE (work in progress: kernels land in the next commit).
#include "kernels/cuda/cuda_backend.cuh"

namespace pe::cuda {

void CudaBackend::info_nce_forward(const Tensor&, const Tensor&, const InfoNceArgs&, const Tensor&, const Tensor&) {
  PE_FAIL("info_nce_forward: not yet implemented on CUDA");
}
void CudaBackend::info_nce_backward(const Tensor&, const Tensor&, const InfoNceArgs&, const Tensor&, const Tensor&,
                                    const Tensor&, double, double, const Tensor&, const Tensor&, const Tensor&) {
  PE_FAIL("info_nce_backward: not yet implemented on CUDA");
}

}  // namespace pe::cuda
