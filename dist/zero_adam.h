#pragma once
// ZeRO stage 1 (--zero 1): Adam/AdamW (autograd/optim.h) with its state sharded across the ranks of
// a data-parallel job, as llm.c and DeepSpeed do. The trainable parameters, in the optimiser's order
// (groups, then parameters: Adam's flat index), are one flat vector of N elements; rank r owns the
// slice of balanced_counts(N, W)[r] elements at shard_offset (uneven shards allowed) and keeps the
// moments m, v of that slice only: 2 N / W state elements per rank instead of 2 N. The parameters
// are fp32 (or f64) and there are no separate master copies (bf16 runs autocast the matrix products
// only), so the moments are all the optimiser state there is to shard.
//
// A step, every call a collective on every rank:
//   reduce_gradients()  every rank's local .grad (its share of the global objective) into one flat
//                       buffer, reduce-scattered (Sum): this rank receives the summed gradient of
//                       its slice; returns the global L2 norm (the squared norms of the slices,
//                       all-reduced), NaN or infinite when any gradient is;
//   clip(max_norm)      scales the slice by max_norm / (norm + 1e-6) when the norm exceeds it
//                       (clip_grad_norm's rule on the global norm);
//   step()              Adam on the slice (in place in the parameters' storage), then every rank's
//                       updated slice all-gathered into every parameter.
// A parameter with a gradient on no rank is skipped (moments untouched), as Adam skips it in one
// process; one with a gradient on some ranks takes the sum with zeros (all_reduce_gradients' rule).
// Checkpoints hold the ordinary, complete state: gather_state() all-gathers the moments into Adam's
// "m.<i>", "v.<i>" tensors, and load_state() takes such a state (from a ZeRO run or not) and keeps
// this rank's slice, so runs resume across --zero and across world sizes.
#include <map>
#include <string>
#include <vector>

#include "autograd/optim.h"
#include "dist/communicator.h"

namespace pe::dist {

class ShardedAdam {
 public:
  // Every parameter contiguous, of one floating dtype, on comm.device().
  ShardedAdam(Communicator& comm, std::vector<ParamGroup> groups, AdamOptions opt);

  double reduce_gradients();
  void clip(double max_norm);
  void step();
  void zero_grad();
  void set_lr(double lr) { opt_.lr = lr; }
  int64_t steps() const { return step_; }

  std::map<std::string, Tensor> gather_state();  // collective; the full state on every rank
  void load_state(const std::map<std::string, Tensor>& state, int64_t step);

  int64_t numel() const { return total_; }                 // N
  const std::vector<int64_t>& shard_counts() const { return counts_; }
  // Adam moments held by rank r / by an unsharded optimiser, in bytes.
  int64_t state_bytes(int r) const;
  int64_t unsharded_state_bytes() const;

 private:
  struct Segment {  // the part of parameter i inside this rank's slice
    size_t param;
    int64_t in_param, in_shard, len;
  };
  Communicator& comm_;
  std::vector<ParamGroup> groups_;
  AdamOptions opt_;
  std::vector<Tensor> params_;         // flat over groups (Adam's order)
  std::vector<size_t> group_of_;       // param index -> group
  std::vector<int64_t> offset_;        // param index -> start in the flat vector
  std::vector<int64_t> counts_;        // per rank
  int64_t total_ = 0, lo_ = 0;         // N, this rank's first element
  std::vector<Segment> segments_;
  std::vector<bool> has_grad_;         // of the last reduce_gradients, over all ranks
  Tensor grad_, m_, v_;                // this rank's slice
  DType state_dtype_ = DType::F32;
  int64_t step_ = 0;
  double norm_ = 0;
};

}  // namespace pe::dist
