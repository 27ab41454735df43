#include "losses/losses.h"

#include <algorithm>
#include <cmath>

namespace pe {

namespace {
// log sum_j exp(x_ij) over rows, with entries where allowed == 0 excluded.
Tensor masked_logsumexp(const Tensor& x, const Tensor& allowed) {
  Tensor xm = allowed.defined() ? add(x, mul(add(allowed, -1.0), 1e30)) : x;
  Tensor m = amax(xm, {1}, true).detach();
  return add(log(sum(exp(sub(xm, m)), {1})), m.view({-1}));
}
}  // namespace

InfoNceResult info_nce(const Tensor& p, const Tensor& t, const Tensor& logit_scale, double max_logit_scale,
                       const Tensor& group) {
  PE_CHECK(p.dim() == 2 && p.shape() == t.shape(), "info_nce: embeddings must both be [B, D], got ", p.str(), " and ",
           t.str());
  PE_CHECK(logit_scale.numel() == 1, "info_nce: logit scale must be a scalar, got ", logit_scale.str());
  int64_t B = p.size(0);
  // min(s, max) = -max(-s, -max): no gradient once clamped.
  Tensor s = neg(clamp_min(neg(logit_scale.reshape({})), -max_logit_scale));
  Tensor scale = exp(s);
  Tensor logits = mul(matmul(p, t.transpose(0, 1)), scale);  // [B, B]
  Tensor pos;
  if (group.defined()) {
    PE_CHECK(group.shape() == Shape{B}, "info_nce: group ", group.str(), " is not [", B, "]");
    Tensor g = group.to(p.device()).to(p.dtype());
    pos = eq(g.view({B, 1}).expand({B, B}), g.view({1, B}).expand({B, B}));
  } else {
    std::vector<double> eye(size_t(B * B), 0.0);
    for (int64_t i = 0; i < B; ++i) eye[size_t(i * B + i)] = 1.0;
    pos = Tensor::from_vector(eye, {B, B}).to(p.dtype()).to(p.device());
  }
  // CE with multiple positives: -log(sum_pos exp / sum_all exp), averaged over rows.
  Tensor p2t = mean(sub(masked_logsumexp(logits, Tensor()), masked_logsumexp(logits, pos)));
  Tensor lt = logits.transpose(0, 1);
  Tensor t2p = mean(sub(masked_logsumexp(lt, Tensor()), masked_logsumexp(lt, pos.transpose(0, 1).contiguous())));
  InfoNceResult r;
  r.p2t = p2t;
  r.t2p = t2p;
  r.loss = add(p2t, t2p);
  r.scale = scale;
  return r;
}

double argmax_accuracy(const Tensor& logits, const Tensor& target) {
  if (logits.device().is_cuda()) {
    NoGradGuard no_grad;
    int64_t M = logits.size(0);
    if (M == 0) return 0.0;
    Tensor mx = amax(logits, {1}, true);
    Tensor tl = gather(logits, 1, target.to(logits.device()).view({M, 1}));
    return sum(eq(tl, mx).to(DType::F32)).item() / double(M);
  }
  std::vector<double> l = logits.to_double_vector();
  std::vector<int64_t> t = target.to_int_vector();
  int64_t V = logits.size(1), M = logits.size(0), hit = 0;
  for (int64_t i = 0; i < M; ++i) {
    int64_t best = 0;
    for (int64_t j = 1; j < V; ++j)
      if (l[size_t(i * V + j)] > l[size_t(i * V + best)]) best = j;
    hit += best == t[size_t(i)];
  }
  return M ? double(hit) / double(M) : 0.0;
}

double linear_argmax_accuracy(const Tensor& h, const Tensor& weight, const Tensor& bias, const Tensor& target) {
  NoGradGuard no_grad;
  int64_t M = h.size(0), V = weight.size(0);
  if (M == 0) return 0.0;
  int64_t chunk = std::max<int64_t>(1, (int64_t(1) << 24) / std::max<int64_t>(V, 1));
  double hits = 0;
  for (int64_t r0 = 0; r0 < M; r0 += chunk) {
    int64_t n = std::min(chunk, M - r0);
    hits += argmax_accuracy(linear(h.narrow(0, r0, n), weight, bias), target.narrow(0, r0, n)) * double(n);
  }
  return hits / double(M);
}

}  // namespace pe
