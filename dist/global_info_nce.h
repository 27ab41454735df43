#pragma once
// InfoNCE with global negatives (SPEC §3 "Across GPUs"): each rank holds its own rows p_r, t_r of the
// global batch (rank r's rows are rows offset_r .. offset_r + R_r - 1 of the concatenation in rank
// order; ranks may hold different numbers). Both modalities are all-gathered with gradient
// (all_gather_rows), and rank r computes its rows against all B columns in both directions:
//   loss_r = (R_r / B) * (info_nce_direction(p_r, T) + info_nce_direction(t_r, P)),
// so that sum_r loss_r = fused_info_nce(P, T) (the single-process loss of the concatenated batch, both
// terms means over all B rows). Backpropagating loss_r on every rank gives each rank
// d(global loss)/d p_r and d t_r exactly (the gather's backward sums the column gradients over ranks);
// a parameter's gradient, logit_scale's included, is the SUM over ranks of the per-rank gradients
// (all_reduce(Sum), not Avg).
#include "dist/autograd_collectives.h"

namespace pe::dist {

struct GlobalInfoNce {
  Tensor loss;             // this rank's share loss_r (differentiable in p, t, logit_scale)
  Tensor global_loss;      // sum over ranks of loss_r (no history; the same on every rank)
  Tensor p2t, t2p;         // the global loss's two terms (no history)
  Tensor scale;            // exp(min(logit_scale, max)) (no history)
  int64_t row_offset = 0;  // this rank's first global row
  int64_t rows = 0;        // R_r
  int64_t total = 0;       // B
};

// p, t: [R_r, D] L2-normalised embeddings on comm.device() (R_r >= 1 on every rank); logit_scale:
// one element; group: i64 [R_r] ids, comparable across ranks (equal id = positives of each other,
// e.g. identical texts anywhere in the global batch), given on every rank or on none.
GlobalInfoNce global_info_nce(Communicator& comm, const Tensor& p, const Tensor& t, const Tensor& logit_scale,
                              double max_logit_scale, const Tensor& group = Tensor());

}  // namespace pe::dist
