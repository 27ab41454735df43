// Fused attention (work in progress: kernels land in the next commit).
#include "kernels/cuda/cuda_backend.cuh"

namespace pe::cuda {

void CudaBackend::attention_forward(const Tensor&, const Tensor&, const Tensor&, const AttentionLayout&,
                                    const Tensor&, const Tensor&) {
  PE_FAIL("attention_forward: not yet implemented on CUDA");
}
void CudaBackend::attention_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                     const Tensor&, const AttentionLayout&, const Tensor&, const Tensor&,
                                     const Tensor&) {
  PE_FAIL("attention_backward: not yet implemented on CUDA");
}

}  // namespace pe::cuda
