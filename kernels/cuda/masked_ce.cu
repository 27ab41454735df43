// Fused masked cross-entropy (work in progress: kernels land in the next commit).
#include "kernels/cuda/cuda_backend.cuh"

namespace pe::cuda {

void CudaBackend::masked_ce_forward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                    const Tensor&) {
  PE_FAIL("masked_ce_forward: not yet implemented on CUDA");
}
void CudaBackend::masked_ce_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                     const Tensor&, double, const Tensor&, const Tensor&, const Tensor&) {
  PE_FAIL("masked_ce_backward: not yet implemented on CUDA");
}

}  // namespace pe::cuda
