#include "app/data_parallel.h"

#include "dist/global_info_nce.h"

namespace pe {

namespace {
// The masked positions (flat b * L + l) of rows off .. off+R-1, re-based to the shard, with targets.
void shard_positions(const Tensor& index, const Tensor& target, int64_t L, int64_t off, int64_t R, Device dev,
                     Tensor& index_out, Tensor& target_out) {
  std::vector<int64_t> idx = index.to_int_vector(), tgt = target.to_int_vector(), si, st;
  for (size_t j = 0; j < idx.size(); ++j) {
    int64_t row = idx[j] / L;
    if (row < off || row >= off + R) continue;
    si.push_back(idx[j] - off * L);
    st.push_back(tgt[j]);
  }
  index_out = Tensor::from_vector(si, {int64_t(si.size())}, dev);
  target_out = Tensor::from_vector(st, {int64_t(st.size())}, dev);
}
}  // namespace

ProtSTBatch shard_batch(const ProtSTBatch& full, int64_t off, int64_t R, Device dev) {
  int64_t B = full.protein_ids.size(0);
  PE_CHECK(off >= 0 && R >= 0 && off + R <= B, "shard_batch: rows ", off, " .. ", off + R - 1, " outside a batch of ", B);
  auto rows = [&](const Tensor& t) { return t.narrow(0, off, R).contiguous().to(dev); };
  ProtSTBatch s;
  s.protein_ids = rows(full.protein_ids);
  s.protein_mask = rows(full.protein_mask);
  s.residue_mask = rows(full.residue_mask);
  s.text_ids = rows(full.text_ids);
  s.text_mask = rows(full.text_mask);
  s.word_mask = rows(full.word_mask);
  if (full.pair_group.defined()) s.pair_group = rows(full.pair_group);
  shard_positions(full.protein_mlm_index, full.protein_mlm_target, full.protein_ids.size(1), off, R, dev,
                  s.protein_mlm_index, s.protein_mlm_target);
  shard_positions(full.text_mlm_index, full.text_mlm_target, full.text_ids.size(1), off, R, dev, s.text_mlm_index,
                  s.text_mlm_target);
  return s;
}

DataParallelStep data_parallel_objective(dist::Communicator& comm, ProtSTModel& model, const ProtSTOutput& out,
                                         const ProtSTBatch& shard, const ProtSTBatch& full) {
  const ProtSTConfig& cfg = model.config();
  Tensor pn = l2_normalize(out.protein_embedding, -1), tn = l2_normalize(out.text_embedding, -1);
  dist::GlobalInfoNce cl = dist::global_info_nce(comm, pn, tn, model.params().get("logit_scale"),
                                                 cfg.logit_scale_max, shard.pair_group);
  // This rank's share of the masked positions (the masked means are over the whole batch's).
  auto share_of = [](const Tensor& mine, const Tensor& all) {
    return all.numel() ? double(mine.numel()) / double(all.numel()) : 0.0;
  };
  double a = share_of(shard.protein_mlm_index, full.protein_mlm_index);
  double c = share_of(shard.text_mlm_index, full.text_mlm_index);
  DataParallelStep r;
  r.share = add(add(mul(cl.loss, cfg.w_cl), mul(out.mlm, cfg.w_mlm * a)),
                mul(add(mul(out.mmp_protein, a), mul(out.mmp_text, c)), cfg.w_mmp));
  {
    NoGradGuard ng;
    std::vector<double> v = {a * out.mlm.item(),     a * out.mmp_protein.item(),     c * out.mmp_text.item(),
                             a * out.mlm_acc,        a * out.mmp_protein_acc,        c * out.mmp_text_acc};
    Tensor t = Tensor::from_vector(v, {int64_t(v.size())}).to(comm.device());
    comm.all_reduce(t, dist::Reduction::Sum);
    v = t.to_double_vector();
    r.parts[1] = cl.global_loss.item();
    r.parts[2] = cl.p2t.item();
    r.parts[3] = cl.t2p.item();
    r.parts[4] = v[0];
    r.parts[5] = v[1];
    r.parts[6] = v[2];
    r.parts[0] = cfg.w_cl * r.parts[1] + cfg.w_mlm * r.parts[4] + cfg.w_mmp * (r.parts[5] + r.parts[6]);
    r.logit_scale = cl.scale.item();
    r.accs[0] = v[3];
    r.accs[1] = v[4];
    r.accs[2] = v[5];
  }
  return r;
}

}  // namespace pe
