#pragma once
// Data-parallel ProtST training (issue #11), shared by the training commands. Under an MPI launcher
// every rank collates the whole global batch (the same crops and masks as one process would draw),
// keeps its balanced shard of the rows (dist::balanced_counts), runs the model on it, and
// backpropagates its share of the global objective:
//   InfoNCE with global negatives (dist::global_info_nce) + w_mlm * MLM + w_mmp * (MMP_p + MMP_t),
// each masked term weighted by this rank's share of the batch's masked positions, so that the shares
// sum to the one-process objective of the whole batch. Gradients are then summed over ranks
// (dist::all_reduce_gradients, Sum). Not yet global: the fusion BatchNorm's statistics are this
// rank's tokens' (sync BatchNorm is a later part of the issue), so with w_mmp > 0 the result differs
// slightly from one process, as PyTorch DDP without SyncBatchNorm does.
#include "app/dataset.h"
#include "dist/communicator.h"
#include "models/protst.h"

namespace pe {

// Rows off .. off+R-1 of a batch collated on the CPU, moved to dev: padded tensors narrowed (the
// global batch's padding kept), masked-position indices re-based to the shard, group ids kept.
ProtSTBatch shard_batch(const ProtSTBatch& full, int64_t off, int64_t R, Device dev);

struct DataParallelStep {
  Tensor share;  // this rank's share of the global objective: backpropagate this
  // Global values, equal on every rank: total, cl, cl_p2t, cl_t2p, mlm, mmp_protein, mmp_text.
  double parts[7] = {0, 0, 0, 0, 0, 0, 0};
  double logit_scale = 0;
  double accs[3] = {0, 0, 0};  // mlm, mmp_protein, mmp_text accuracies over the whole batch
};

// out = model.forward(shard, true); full: the global batch shard was cut from (its masked counts).
DataParallelStep data_parallel_objective(dist::Communicator& comm, ProtSTModel& model, const ProtSTOutput& out,
                                         const ProtSTBatch& shard, const ProtSTBatch& full);

}  // namespace pe
