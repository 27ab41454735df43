#pragma once
// Fused differentiable ops: flash-style attention, softmax-InfoNCE and masked cross-entropy with the
// vocabulary projection inside. Each is one node of the graph whose forward and backward are single
// Backend calls (kernels/backend.h), so the [L, L] attention matrix, the [B, B] InfoNCE logits and the
// [M, V] vocabulary logits never exist. They compute what the compositions do (attention() in
// models/layers.h, info_nce and masked_cross_entropy in losses/losses.h), which are their tests'
// references. Losses are returned in the accumulation dtype: f64 for f64 inputs, f32 for f32 and bf16.
#include "autograd/ops.h"

namespace pe {

// softmax(scale * q k^T + key mask) v. q [B, Lq, H, D], k, v [B, Lk, H, D] (Lq != Lk allowed);
// key_mask [B, Lk] of any dtype, nonzero = real key, or undefined. A query row without a real key
// gives zeros (and no gradient). The backward recomputes the logits from the saved log-sum-exp.
// On CUDA: f32 and f64 on the simple kernels, bf16 with D <= 128 and D % 8 == 0 on tensor cores.
// causal: query i sees key j iff j <= i + (Lk - Lq) (bottom-right aligned; see AttentionLayout in
// kernels/backend.h), and the key must be real; the key tiles above the diagonal are skipped.
Tensor flash_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_mask, double scale,
                       bool causal = false);

// The same for packed variable-length sequences: q [Tq, H, D], k, v [Tk, H, D]; sequence b owns query
// rows cu_q[b] .. cu_q[b+1]-1 and key rows cu_k[b] .. cu_k[b+1]-1 (cu_*: i32 or i64 [B+1], running from
// 0 to Tq / Tk). cu_* given on the CPU are checked, copied to q's device, and max_q / max_k (the
// longest sequences) computed when passed as 0; cu_* given on the device are trusted together with
// max_q and max_k, which must then be positive and at least every length (no host synchronisation).
// causal: with each sequence's own lengths nq, nk, query i sees key j iff j <= i + (nk - nq).
Tensor flash_attention_varlen(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& cu_q, const Tensor& cu_k,
                              int64_t max_q, int64_t max_k, double scale, bool causal = false);

// A decode step against a key/value cache (inference: no graph is recorded, whatever q requires).
// q [B, Lnew, H, D] are the queries of each row's Lnew newest tokens, whose keys and values are
// already in k_cache, v_cache [B, Lmax, H, D] (the layout of q; see Backend::attention_decode);
// cache_len i32/i64 [B] (on the CPU: checked and copied to q's device; on q's device: trusted) counts
// the valid keys of each row, the new ones included. Query i of row b sees the keys
// j <= cache_len[b] - Lnew + i: what flash_attention(..., causal = true) gives for the last Lnew
// positions of the row's whole prefix. KvCache (autograd/kv_cache.h) keeps such a cache.
// CPU: f32, f64. CUDA: f32, f64, bf16 (fp32 math), D <= 128, long caches split across CTAs.
Tensor attention_decode(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& cache_len,
                        double scale);

// ProtST's contrastive loss: p, t [B, D] (L2-normalised embeddings, row i of p pairs with row i of t),
// logits exp(min(logit_scale, max_logit_scale)) p t^T, loss CE(p->t) + CE(t->p), each the mean over rows;
// group (optional, i64 [B]): rows with equal ids are all positives of each other. dL/dp, dL/dt and
// dL/dlogit_scale come from one backward pass over row and column blocks; memory O(B D).
struct FusedInfoNce {
  Tensor loss;      // differentiable in p, t and logit_scale
  Tensor p2t, t2p;  // the two terms (no history), for logging
  Tensor scale;     // exp(min(logit_scale, max)) (no history)
};
FusedInfoNce fused_info_nce_terms(const Tensor& p, const Tensor& t, const Tensor& logit_scale, double max_logit_scale,
                                  const Tensor& group = Tensor());
Tensor fused_info_nce(const Tensor& p, const Tensor& t, const Tensor& logit_scale, double max_logit_scale,
                      const Tensor& group = Tensor());

// One direction of InfoNCE with local rows against gathered columns, the building block across GPUs:
// the mean over the R rows of x [R, D] (global indices row_offset .. row_offset+R-1) of the
// cross-entropy against all C columns of y [C, D]. group: i64 [C] ids of the columns (row i takes
// group[row_offset + i]) or undefined (the positive of row i is column row_offset + i).
// With rank r holding p_r, t_r and the all-gathered (with gradient) P, T:
//   loss_r = info_nce_direction(p_r, T, ...) + info_nce_direction(t_r, P, ...),
// and the mean of loss_r over equally sized ranks equals fused_info_nce(P, T) (one device: r = 0, P = p).
Tensor info_nce_direction(const Tensor& x, const Tensor& y, const Tensor& logit_scale, double max_logit_scale,
                          const Tensor& group, int64_t row_offset);

// Mean cross-entropy of hidden [M, d] (the masked positions' rows) through the vocabulary projection
// weight [V, d], bias [V] (or undefined) against targets i64 [M] in [0, V): the [M, V] logits are
// formed tile by tile and never stored; dhidden, dweight and dbias come from one backward call.
// M == 0 gives 0 (no gradient). Targets on the CPU are range-checked; on the device they are trusted
// (an out-of-range target gives +inf).
Tensor fused_masked_cross_entropy(const Tensor& hidden, const Tensor& weight, const Tensor& bias,
                                  const Tensor& targets);

}  // namespace pe
