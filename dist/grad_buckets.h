#pragma once
// Data parallelism's gradient all-reduce in buckets, started while the backward still runs (PyTorch
// DDP's design, our code).
//
// The trainable parameters (the same list on every rank) are assigned to buckets of about
// bucket_bytes, first in the REVERSE of their registration order (ParamStore registers a model's
// tensors roughly in the order forward uses them, so their gradients become final roughly in the
// reverse order). After the first reduction the buckets are rebuilt once in the order rank 0's first
// backward actually finalised the gradients, tensors it never reached last, broadcast from rank 0 so
// every rank has the same buckets: buckets start strictly in order, so one tensor that the backward
// never reaches (or reaches late) would otherwise hold back every later bucket until the backward
// ends. The order only decides how much overlaps, never the result. A parameter larger than a bucket
// has one of its own. Frozen parameters are not in the list and never communicate.
//
// Per backward: arm() returns the autograd hook (autograd/graph.h, LeafGradReadyHook) to install for
// the backward whose gradients are to be reduced -- with gradient accumulation only the last
// micro-step's, so the earlier ones communicate nothing. When every parameter of a bucket is final,
// the bucket copies its gradients into one flat buffer (plus one has-gradient flag per parameter)
// and starts a non-blocking all-reduce (Communicator::all_reduce_async). Buckets start strictly in
// bucket order, so every rank starts the same all-reduces in the same order even if its backward
// finishes them in another. finish() starts the rest (parameters this rank's backward never reached:
// their gradient so far, or zeros), waits for all and sets every parameter's .grad to its reduced
// slice; like all_reduce_gradients, a parameter with a gradient on no rank keeps none (the optimiser
// skips it, as in one process) and one with a gradient on some ranks gets the sum with zeros.
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "autograd/graph.h"
#include "dist/communicator.h"

namespace pe::dist {

class GradBucketReducer {
 public:
  // params: trainable, contiguous, one floating dtype, on comm.device(), in registration order.
  // bf16_comm: the buckets travel in bf16 instead of the parameters' dtype, half the bytes: gradients are rounded to bf16 once, summed over ranks
  // (in f32 on MPI, as the communicator does for bf16; natively on NCCL) and widened back. bucket_bytes
  // counts the parameters' dtype.
  GradBucketReducer(Communicator& comm, std::vector<Tensor> params, int64_t bucket_bytes, Reduction op,
                    bool bf16_comm = false);

  // Starts a reduction; install the returned hook for the backward (LeafGradReadyHookGuard).
  LeafGradReadyHook arm();
  bool armed() const { return armed_; }
  // Starts the buckets not started yet, waits for all, writes the reduced gradients; disarms.
  void finish();

  int64_t bucket_count() const { return int64_t(buckets_.size()); }
  // Element counts of the buckets' parameters (without the flags), in bucket order.
  std::vector<int64_t> bucket_numels() const;
  // Of the last finish(): buckets started by the hook while the backward ran (the rest by finish()).
  int64_t started_during_backward() const { return started_early_; }

 private:
  struct Bucket {
    std::vector<size_t> params;  // indices into params_
    int64_t numel = 0;
    int64_t ready = 0;
    Tensor flat;  // [numel + params.size()]: gradients, then one has-gradient flag per parameter (bf16 with bf16_comm)
    std::unique_ptr<Work> work;
  };
  void assign(const std::vector<size_t>& order);  // rebuilds buckets_ and bucket_of_
  void reorder_by_first_backward();
  void on_ready(const Tensor& leaf);
  void start(Bucket& b);
  void start_ready_prefix();

  Communicator& comm_;
  std::vector<Tensor> params_;
  Reduction op_;
  bool bf16_comm_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;  // param index -> bucket index
  std::unordered_map<TensorImpl*, size_t> index_;
  std::vector<bool> final_;
  std::vector<size_t> fired_;  // parameters in the order this backward finalised them
  int64_t cap_ = 1;            // elements per bucket
  bool reordered_ = false;
  size_t next_ = 0;  // the next bucket to start
  bool armed_ = false;
  int64_t started_early_ = 0;
};

}  // namespace pe::dist
