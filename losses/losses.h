#pragma once
// ProtST's losses, written as compositions of differentiable ops. These are the CPU reference
// implementations; fused CUDA kernels (issue: own kernels) must match them.
#include "autograd/ops.h"

namespace pe {

struct InfoNceResult {
  Tensor loss;       // CE(p->t) + CE(t->p), each the mean over rows (ProtST sums the two)
  Tensor p2t, t2p;   // the two terms
  Tensor scale;      // exp(clamped logit scale), for logging
};

// p, t: [B, D] L2-normalised embeddings (row i of p pairs with row i of t); logit_scale: scalar
// parameter, used as exp(min(logit_scale, max_logit_scale)). group (optional, i64 [B]): rows with
// equal group ids are all positives of each other (identical texts are not negatives).
InfoNceResult info_nce(const Tensor& p, const Tensor& t, const Tensor& logit_scale, double max_logit_scale,
                       const Tensor& group = Tensor());

// Mean cross-entropy of head(hidden.row(index[i])) against target[i]: hidden [N, d] (rows of all
// positions), index/target i64 [M]. `head` maps [M, d] -> [M, vocab]. Returns loss and accuracy.
struct MaskedCeResult {
  Tensor loss;
  double accuracy = 0;
  int64_t count = 0;
};
template <typename Head>
MaskedCeResult masked_cross_entropy(const Tensor& hidden, const Tensor& index, const Tensor& target, const Head& head);

// Top-1 agreement of logits [M, V] with targets [M] (no gradient). CPU tensors: argmax (first index
// on ties) on the host. CUDA tensors: on the device, a hit when the target's logit equals the row
// maximum (ties count as hits), and only the count is copied back.
double argmax_accuracy(const Tensor& logits, const Tensor& target);

// argmax_accuracy of linear(h, weight, bias) without the [M, V] logits: rows in chunks of at most
// 2^24 logits (for the fused training path, where the full logits never exist).
double linear_argmax_accuracy(const Tensor& h, const Tensor& weight, const Tensor& bias, const Tensor& target);

template <typename Head>
MaskedCeResult masked_cross_entropy(const Tensor& hidden, const Tensor& index, const Tensor& target, const Head& head) {
  MaskedCeResult r;
  r.count = index.numel();
  if (r.count == 0) {
    r.loss = mul(sum(hidden), 0.0);  // keeps the graph connected; contributes nothing
    return r;
  }
  Tensor logits = head(index_select(hidden, 0, index));
  r.loss = cross_entropy(logits, target);
  r.accuracy = argmax_accuracy(logits, target);
  return r;
}

}  // namespace pe
