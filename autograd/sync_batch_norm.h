#pragma once
// Synchronized BatchNorm (SyncBatchNorm) for data-parallel training: the training-mode batch
// statistics over the real rows of every process of the job, as if their rows were one batch.
//
// autograd knows no processes. The caller passes `sum_across`: a differentiable elementwise sum of a
// tensor over all processes (same shape everywhere), whose backward sums the incoming gradient over
// the processes too (dist::sum_across(comm) is the one the engine uses; the single-process identity
// gives plain batch_norm). Every process must call batch_norm_synced in the same order with the same
// channel count, forward and backward, and its loss must depend on the result (a collective in the
// backward), as with every collective. Row counts may differ between processes, including zero
// real rows on some, as long as the job holds at least one.
#include <functional>

#include "autograd/ops.h"

namespace pe {

using SumAcrossProcesses = std::function<Tensor(const Tensor&)>;

// batch_norm (autograd/ops.h) in training mode with statistics over every process's rows:
//   N   = sum over processes of the real-row counts                       (one sum, no gradient)
//   mu  = sum_across(sum of real rows) / N                                 (one sum, differentiable)
//   var = sum_across(sum of (x - mu)^2 over real rows) / N  (biased)       (one sum, differentiable)
// y = (x - mu) / sqrt(var + eps) * weight + bias on every row. The two-pass variance is the formula
// the single-process batch_norm uses, so N processes equal one process holding all rows to
// summation-order round-off. The backward runs the two differentiable sums' backwards: the
// gradients of the global mean and variance summed over processes. running_mean/running_var (when
// defined) get the momentum update with the global statistics (unbiased variance, N/(N-1)), the
// same on every process.
Tensor batch_norm_synced(const Tensor& x, const Tensor& row_mask, const Tensor& weight, const Tensor& bias,
                         const Tensor& running_mean, const Tensor& running_var, double momentum, double eps,
                         const SumAcrossProcesses& sum_across);

}  // namespace pe
