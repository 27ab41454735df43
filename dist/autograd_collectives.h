#pragma once
// Differentiable collectives: the autograd side of dist/communicator.h.
//
// Every rank must run the same ops in the same order, forward and backward: a gathered tensor's
// backward is itself a collective, so each rank's loss must depend on it (with requires_grad set
// alike on every rank), or the ranks that do call it wait for the others. The communicator must
// outlive the graph (the backward closure holds a pointer to it).
#include <vector>

#include "autograd/ops.h"
#include "autograd/sync_batch_norm.h"
#include "dist/communicator.h"

namespace pe::dist {

// Every rank's value of n, in rank order (one small all-gather; on NCCL it synchronises the host).
std::vector<int64_t> all_gather_counts(Communicator& comm, int64_t n);

// Concatenation along dim 0 of every rank's x [n_r, ...] (equal trailing dims and dtype on every rank)
// in rank order: [sum n_r, ...]. rows: every rank's n_r (all_gather_counts); ranks may hold different
// numbers of rows, including none. Backward: the gradient of the gathered rows is summed over ranks
// and each rank receives the rows it owns (a reduce-scatter), so with per-rank losses L_r,
// x_r.grad = d(sum_r L_r)/d x_r: the gradient of the global loss sum_r L_r.
Tensor all_gather_rows(Communicator& comm, const Tensor& x, const std::vector<int64_t>& rows);

// Elementwise sum over ranks of x (the same shape and dtype on every rank), with gradient: y = sum_r x_r
// on every rank, and the backward sums the incoming gradient over ranks as well, so with per-rank
// losses L_r, x_r.grad = sum_r' dL_r'/dy = d(sum_r L_r)/d x_r. The statistics of sync BatchNorm.
Tensor all_reduce_sum(Communicator& comm, const Tensor& x);

// The cross-process sum autograd's batch_norm_synced (and ProtSTModel::sync_batch_norm) take: calls
// all_reduce_sum on comm, which must outlive every graph built with it.
SumAcrossProcesses sum_across(Communicator& comm);

// Data parallelism's gradient step: every parameter's .grad summed (Sum) or averaged (Avg) over ranks,
// in place, one all-reduce per parameter in list order (the list must be the same on every rank).
// A parameter with a gradient on some ranks only (unused by one rank's shard, e.g. a head without
// masked rows there) takes zeros where it has none; one without a gradient on every rank keeps none
// (the optimiser then skips it, as in one process). Sum is what per-rank shares of a global loss need
// (global_info_nce); Avg is for per-rank means (the usual data-parallel convention).
void all_reduce_gradients(Communicator& comm, const std::vector<Tensor>& params, Reduction op);

}  // namespace pe::dist
