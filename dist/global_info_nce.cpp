#include "dist/global_info_nce.h"

#include "autograd/fused.h"

namespace pe::dist {

GlobalInfoNce global_info_nce(Communicator& comm, const Tensor& p, const Tensor& t, const Tensor& logit_scale,
                              double max_logit_scale, const Tensor& group) {
  const char* op = "global_info_nce";
  PE_CHECK(p.defined() && t.defined() && p.dim() == 2 && p.shape() == t.shape(), op, " on ", comm.describe(),
           ": embeddings must both be [R, D], got ", p.defined() ? p.str() : "undefined", " and ",
           t.defined() ? t.str() : "undefined");
  PE_CHECK(!group.defined() || (group.dtype() == DType::I64 && group.shape() == Shape{p.size(0)}), op, " on ",
           comm.describe(), ": group must be i64 [", p.size(0), "], got ", group.defined() ? group.str() : "");
  // One small gather tells every rank the row counts and whether groups are used, so that every rank
  // takes the same path (a rank without rows or without groups is an error on all of them).
  int W = comm.world_size();
  std::vector<int64_t> both = all_gather_counts(comm, p.size(0) * 2 + (group.defined() ? 1 : 0));
  std::vector<int64_t> rows(static_cast<size_t>(W), 0);
  for (int r = 0; r < W; ++r) {
    rows[size_t(r)] = both[size_t(r)] / 2;
    PE_CHECK(rows[size_t(r)] > 0, op, " on ", comm.describe(), ": rank ", r,
             " has no rows (every rank needs at least one pair)");
    PE_CHECK(both[size_t(r)] % 2 == both[0] % 2, op, " on ", comm.describe(), ": rank ", r,
             " and rank 0 differ in whether they pass groups");
  }
  GlobalInfoNce r;
  r.rows = p.size(0);
  r.total = shard_offset(rows, W);
  r.row_offset = shard_offset(rows, comm.rank());
  Tensor P = all_gather_rows(comm, p, rows);
  Tensor T = all_gather_rows(comm, t, rows);
  Tensor G;
  if (group.defined()) {
    NoGradGuard ng;
    G = all_gather_rows(comm, group.detach().contiguous().to(comm.device()), rows);
  }
  Tensor p2t = info_nce_direction(p, T, logit_scale, max_logit_scale, G, r.row_offset);
  Tensor t2p = info_nce_direction(t, P, logit_scale, max_logit_scale, G, r.row_offset);
  double w = double(r.rows) / double(r.total);
  r.loss = mul(add(p2t, t2p), w);
  {
    NoGradGuard ng;
    Tensor terms = mul(stack({p2t.detach(), t2p.detach()}, 0), w).contiguous();
    comm.all_reduce(terms, Reduction::Sum);
    r.p2t = terms.select(0, 0);
    r.t2p = terms.select(0, 1);
    r.global_loss = add(r.p2t, r.t2p);
    Tensor s = logit_scale.detach().reshape({}).to(terms.dtype());
    r.scale = exp(neg(clamp_min(neg(s), -max_logit_scale)));
  }
  return r;
}

}  // namespace pe::dist
