#pragma once
// A key/value cache for step-by-step (autoregressive) decoding with attention_decode (autograd/fused.h):
// per layer, the keys and values of every token seen so far, [B, capacity, H, D] in the models' own
// layout, with one length per batch row, so rows of different lengths (prompts of different sizes)
// share one batched cache. Appending beyond the capacity doubles it (one copy of the old contents).
// Inference only: nothing here records a graph.
#include <vector>

#include "autograd/fused.h"

namespace pe {

class KvCache {
 public:
  // An empty cache of `batch` rows for H heads of dimension D; `capacity` positions allocated up front.
  KvCache(int64_t batch, int64_t heads, int64_t head_dim, DType dtype, Device device, int64_t capacity = 64);

  // Appends after each row's current length the rows of k_new, v_new [B, Lnew, H, D] (any strides and
  // floating dtype, converted to the cache's; on the cache's device): all Lnew of them, or with
  // `counts` (B entries in [0, Lnew]) the first counts[b] of row b, as for right-padded prompts of
  // different lengths. Grows the capacity to max(2 * capacity, what is needed) when it must.
  void append(const Tensor& k_new, const Tensor& v_new, const std::vector<int64_t>& counts = {});

  // attention_decode of q [B, Lnew, H, D] against the cache, the queries of each row's Lnew newest
  // tokens (already appended): query i of row b sees the keys j <= length(b) - Lnew + i (none, and
  // gives zeros, when that is negative). q is converted to the cache's dtype, and so is the result.
  Tensor attend(const Tensor& q, double scale) const;

  // Every row back to length 0 (the storage is kept).
  void clear();

  // Rebuilds the rows: new row i is a copy of old row parent[i] (keys, values and length); the batch
  // becomes parent.size(). Beam search uses it to follow the surviving hypotheses.
  void reorder(const std::vector<int64_t>& parent);

  int64_t batch() const { return B_; }
  int64_t capacity() const { return cap_; }
  int64_t length(int64_t b) const { return len_.at(size_t(b)); }
  const std::vector<int64_t>& lengths() const { return len_; }
  // i64 [B] on the cache's device: lengths() as attention_decode takes them.
  const Tensor& lengths_tensor() const { return len_dev_; }
  // [B, capacity, H, D]; positions at or past a row's length hold zeros or stale values, never read.
  const Tensor& keys() const { return k_; }
  const Tensor& values() const { return v_; }

 private:
  void reserve(int64_t positions);
  int64_t B_, H_, D_;
  DType dtype_;
  Device device_;
  int64_t cap_;
  Tensor k_, v_;
  std::vector<int64_t> len_;
  Tensor len_dev_;
};

}  // namespace pe
