#pragma once
// Data-parallel ProtST training (issue #11), shared by the training commands. Under an MPI launcher
// every rank collates the whole global batch (the same crops and masks as one process would draw),
// keeps its balanced shard of the rows (dist::balanced_counts), runs the model on it, and
// backpropagates its share of the global objective:
//   InfoNCE with global negatives (dist::global_info_nce) + w_mlm * MLM + w_mmp * (MMP_p + MMP_t),
// each masked term weighted by this rank's share of the batch's masked positions, so that the shares
// sum to the one-process objective of the whole batch. Gradients are then summed over ranks: in
// buckets started during the backward (dist/grad_buckets.h, --bucket-mb), one all-reduce per tensor
// (dist::all_reduce_gradients, --bucket-mb 0), or reduce-scattered to the optimiser shards
// (dist/zero_adam.h, --zero 1). The fusion BatchNorm takes its statistics over every rank's
// tokens (sync BatchNorm: ProtSTModel::sync_batch_norm with dist::sum_across), so N ranks equal one
// process; --local-batchnorm keeps each rank's own statistics (PyTorch DDP without SyncBatchNorm).
#include <cstdint>
#include <string>

#include "app/dataset.h"
#include "app/train.h"
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

// Every option of o as one JSON text (sorted keys): what the ranks of a job must agree on.
std::string train_options_text(const TrainOptions& o);
// FNV-1a 64 of a byte string / of a file's contents (0 when it cannot be read).
uint64_t fnv1a64(const std::string& bytes);
uint64_t file_hash(const std::string& path);

// Start of a data-parallel run: every rank must run the same executable (hash of /proc/self/exe) with
// the same resolved options (hash of train_options_text). One all-gather of both hashes; on any
// difference every rank throws the same pe::Error naming the ranks that differ from rank 0 and in
// what, so no rank goes on to wait for the others. TEST-ONLY: PE_TEST_EXE_HASH_RANK=r (read here and
// nowhere else; never set it in a real run) makes rank r report another executable hash.
void check_same_configuration(dist::Communicator& comm, const TrainOptions& o);

// TEST-ONLY fault injection, read here and nowhere else (tests/dist/mpi_cli.sh; never set these in a
// real run): with PE_TEST_FAIL_AT_STEP=N, rank PE_TEST_FAIL_RANK (default 1) fails as it starts optimiser
// step N (1-based) -- PE_TEST_FAIL_MODE=throw (default) throws pe::Error, sigkill raises SIGKILL, hang
// sleeps for ever (a rank that stops without failing: the watchdog, --collective-timeout, must end the job).
// Does nothing when PE_TEST_FAIL_AT_STEP is unset.
void test_fault_injection(int rank, int64_t step);

}  // namespace pe
