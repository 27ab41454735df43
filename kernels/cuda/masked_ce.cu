// Masked cross-entropy through the vocabulary projection: hidden [M, d] (the masked positions' rows)
// against weight [V, d] with bias [V], targets [M], on the tiled engine of info_nce.cu (the positive
// of row i is column targets[i], a = 1). The [M, V] logits are formed 64 x 64 at a time and never
// stored; the backward runs once over row blocks (dhidden) and once over vocabulary blocks (dweight,
// dbias), each recomputing its logits. Targets are trusted (checked by the op when they come from
// the host); an out-of-range target has no positive and gives loss +inf.
#include "kernels/cuda/cuda_backend.cuh"

namespace pe::cuda {

namespace {

InfoNceArgs target_args(const char* op, const Tensor& hidden, const Tensor& targets) {
  check_contiguous(targets, op, "targets");
  PE_CHECK(
      targets.dtype() == DType::I64 && targets.dim() == 1 && hidden.dim() == 2 && targets.size(0) == hidden.size(0), op,
      ": targets must be i64 [", hidden.dim() ? hidden.size(0) : 0, "], got ", targets.str());
  InfoNceArgs a;
  a.row_group = targets;  // row i's key is its target; column j's key is j
  return a;
}

}  // namespace

void CudaBackend::masked_ce_forward(const Tensor& hidden, const Tensor& weight, const Tensor& bias,
                                    const Tensor& targets, const Tensor& stats, const Tensor& loss) {
  const char* op = "masked_ce_forward";
  xent_forward(op, hidden, weight, bias, target_args(op, hidden, targets), stats, loss);
}

void CudaBackend::masked_ce_backward(const Tensor& hidden, const Tensor& weight, const Tensor& bias,
                                     const Tensor& targets, const Tensor& stats, const Tensor& gloss, double row_weight,
                                     const Tensor& ghidden, const Tensor& gweight, const Tensor& gbias) {
  const char* op = "masked_ce_backward";
  xent_backward(op, hidden, weight, bias, target_args(op, hidden, targets), stats, Tensor(), gloss, row_weight, 0.0,
                ghidden, gweight, Tensor(), gbias);
}

}  // namespace pe::cuda
