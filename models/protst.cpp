#include "models/protst.h"

#include "models/config_json.h"

#include <cmath>

#include "autograd/fused.h"

namespace pe {

Tensor masked_mean(const Tensor& x, const Tensor& mask) {
  int64_t B = x.size(0), L = x.size(1);
  Tensor m = mask.to(x.device()).to(x.dtype()).view({B, L, 1});
  return div(sum(mul(x, m), {1}), add(sum(m, {1}), 1e-6));
}

void validate_protst_config(const ProtSTConfig& c, const std::string& source) {
  c.protein.validate(source + " (protein)");
  c.text.validate(source + " (text)");
  check_config_int(source, "embed_dim", c.embed_dim, 1, kMaxHidden);
  check_config_int(source, "fusion_heads", c.fusion_heads, 1, c.embed_dim);
  PE_CHECK(c.embed_dim % c.fusion_heads == 0, "config ", source, ": field 'embed_dim' ", c.embed_dim,
           " is not a multiple of field 'fusion_heads' ", c.fusion_heads);
  check_config_int(source, "fusion_layers", c.fusion_layers, 0, kMaxLayers);
  check_config_int(source, "conversion_hidden", c.conversion_hidden, 1, kMaxHidden);
  check_config_real(source, "bn_momentum", c.bn_momentum, 0, 1);
  check_config_real(source, "bn_eps", c.bn_eps, 0, 1);
  check_config_real(source, "logit_scale_init", c.logit_scale_init, -100, 100);
  check_config_real(source, "logit_scale_max", c.logit_scale_max, -100, 100);
  check_config_real(source, "w_mlm", c.w_mlm, 0, 1e6);
  check_config_real(source, "w_mmp", c.w_mmp, 0, 1e6);
  check_config_real(source, "w_cl", c.w_cl, 0, 1e6);
}

static const ProtSTConfig& validated(const ProtSTConfig& c) {
  validate_protst_config(c, "ProtSTModel");
  return c;
}

ProtSTModel::ProtSTModel(const ProtSTConfig& cfg, Generator& gen, const InitSpec& spec)
    : cfg_(validated(cfg)), protein_(cfg.protein, gen, spec), text_(cfg.text, gen, spec) {
  ps_.merge("protein_model.", protein_.params());
  ps_.merge("text_model.", text_.params());
  int64_t dp = cfg.protein.hidden_size, dt = cfg.text.hidden_size, e = cfg.embed_dim;
  graph_mlp_ = make_mlp(ps_, "graph_mlp", dp, {dp, e}, gen, spec);
  residue_mlp_ = make_mlp(ps_, "residue_mlp", dp, {dp, e}, gen, spec);
  text_mlp_ = make_mlp(ps_, "text_mlp", dt, {dt, e}, gen, spec);
  word_mlp_ = make_mlp(ps_, "word_mlp", dt, {dt, e}, gen, spec);
  PE_CHECK(e % cfg.fusion_heads == 0, "ProtST: embed_dim ", e, " is not a multiple of fusion_heads ", cfg.fusion_heads);
  double fstd = 1.0 / std::sqrt(double(e));
  for (int64_t i = 0; i < cfg.fusion_layers; ++i) {
    std::string p = "fusion.layers." + std::to_string(i) + ".";
    FusionLayer f;
    f.q1 = make_linear(ps_, p + "query1", e, e, false, fstd, gen, spec);
    f.k1 = make_linear(ps_, p + "key1", e, e, false, fstd, gen, spec);
    f.v1 = make_linear(ps_, p + "value1", e, e, false, fstd, gen, spec);
    f.q2 = make_linear(ps_, p + "query2", e, e, false, fstd, gen, spec);
    f.k2 = make_linear(ps_, p + "key2", e, e, false, fstd, gen, spec);
    f.v2 = make_linear(ps_, p + "value2", e, e, false, fstd, gen, spec);
    if (cfg.fusion_batch_norm) {
      std::string bp = "fusion.protein_batch_norm_layers." + std::to_string(i) + ".";
      std::string bt = "fusion.text_batch_norm_layers." + std::to_string(i) + ".";
      f.bn_p_w = ps_.add(bp + "weight", Tensor::ones({e}, spec.dtype, spec.device));
      f.bn_p_b = ps_.add(bp + "bias", Tensor::zeros({e}, spec.dtype, spec.device));
      f.bn_p_mean = ps_.add_buffer(bp + "running_mean", Tensor::zeros({e}, spec.dtype, spec.device));
      f.bn_p_var = ps_.add_buffer(bp + "running_var", Tensor::ones({e}, spec.dtype, spec.device));
      f.bn_t_w = ps_.add(bt + "weight", Tensor::ones({e}, spec.dtype, spec.device));
      f.bn_t_b = ps_.add(bt + "bias", Tensor::zeros({e}, spec.dtype, spec.device));
      f.bn_t_mean = ps_.add_buffer(bt + "running_mean", Tensor::zeros({e}, spec.dtype, spec.device));
      f.bn_t_var = ps_.add_buffer(bt + "running_var", Tensor::ones({e}, spec.dtype, spec.device));
    }
    fusion_.push_back(f);
  }
  mlm_head_ = make_mlp(ps_, "mlm_head", e, {e, cfg.protein.vocab_size}, gen, spec);
  mmp_p_head_ = make_mlp(ps_, "mmp_protein_head", e, {e, cfg.protein.vocab_size}, gen, spec);
  mmp_t_head_ = make_mlp(ps_, "mmp_text_head", e, {e, cfg.text.vocab_size}, gen, spec);
  logit_scale_ = ps_.add("logit_scale", Tensor::full({}, cfg.logit_scale_init, spec.dtype, spec.device));
  p2t_ = make_mlp(ps_, "conversion.protein_to_text", e, {cfg.conversion_hidden, e}, gen, spec);
  t2p_ = make_mlp(ps_, "conversion.text_to_protein", e, {cfg.conversion_hidden, e}, gen, spec);
  // Conversion MLPs are trained in a second stage (`protst convert`); frozen during pretraining.
  ps_.set_trainable("conversion.", false);
}

void ProtSTModel::freeze_text_encoder(bool frozen) {
  ps_.set_trainable("text_model.", !frozen);
  text_frozen_ = frozen;
}

Tensor ProtSTModel::protein_hidden(const Tensor& ids, const Tensor& mask) const {
  // Packed, as the text side: no work on padding; padding positions come back as zeros.
  return protein_.forward_packed(ids, mask, /*lm_head=*/false).last_hidden_state;
}

Tensor ProtSTModel::text_hidden(const Tensor& ids, const Tensor& mask) const {
  // Packed: the text encoder runs on the real tokens only (GO texts are ~40 % padding in a quick-start
  // batch); padding positions come back as zeros, and every reader masks them (pooling, fusion keys,
  // fusion query rows, the arms' cross-attention).
  if (text_frozen_) {
    NoGradGuard ng;  // frozen encoder: no graph, no backward work
    return text_.forward_packed(ids, Tensor(), mask).last_hidden_state;
  }
  return text_.forward_packed(ids, Tensor(), mask).last_hidden_state;
}

Tensor ProtSTModel::embed_protein(const Tensor& ids, const Tensor& mask, const Tensor& residue_mask) const {
  return graph_mlp_(masked_mean(protein_hidden(ids, mask), residue_mask));
}

Tensor ProtSTModel::embed_text(const Tensor& ids, const Tensor& mask, const Tensor& word_mask) const {
  return text_mlp_(masked_mean(text_hidden(ids, mask), word_mask));
}

std::pair<Tensor, Tensor> ProtSTModel::fuse(const Tensor& xp_in, const Tensor& mp, const Tensor& xt_in,
                                            const Tensor& mt, bool train) {
  // ProtST's CrossAttentionBlock: shared per-modality Q/K/V, four maps, no 1/sqrt(d) scaling,
  // keys masked by padding, padding query rows zero; out = (A_self V_self + A_cross V_cross) / 2.
  Tensor xp = xp_in, xt = xt_in;
  int64_t B = xp.size(0), Lp = xp.size(1), Lt = xt.size(1), e = cfg_.embed_dim, H = cfg_.fusion_heads, hd = e / H;
  Tensor mpf = mp.to(xp.device()).to(xp.dtype()), mtf = mt.to(xt.device()).to(xt.dtype());
  for (const FusionLayer& f : fusion_) {
    Tensor q1 = f.q1(xp).view({B, Lp, H, hd}), k1 = f.k1(xp).view({B, Lp, H, hd}), v1 = f.v1(xp).view({B, Lp, H, hd});
    Tensor q2 = f.q2(xt).view({B, Lt, H, hd}), k2 = f.k2(xt).view({B, Lt, H, hd}), v2 = f.v2(xt).view({B, Lt, H, hd});
    Tensor op = mul(add(attention(q1, k1, v1, mpf, 1.0), attention(q1, k2, v2, mtf, 1.0)), 0.5).reshape({B, Lp, e});
    Tensor ot = mul(add(attention(q2, k1, v1, mpf, 1.0), attention(q2, k2, v2, mtf, 1.0)), 0.5).reshape({B, Lt, e});
    op = mul(op, mpf.view({B, Lp, 1}));  // padding query rows are zero
    ot = mul(ot, mtf.view({B, Lt, 1}));
    if (cfg_.fusion_batch_norm) {
      // Data-parallel training with sync BatchNorm: statistics over every process's real tokens.
      auto bn = [&](const Tensor& x, const Tensor& m, const Tensor& w, const Tensor& b, const Tensor& rm,
                    const Tensor& rv) {
        if (train && bn_sum_across_)
          return batch_norm_synced(x, m, w, b, rm, rv, cfg_.bn_momentum, cfg_.bn_eps, bn_sum_across_);
        return batch_norm(x, m, w, b, rm, rv, train, cfg_.bn_momentum, cfg_.bn_eps);
      };
      op = bn(op.reshape({B * Lp, e}), mpf.reshape({B * Lp}), f.bn_p_w, f.bn_p_b, f.bn_p_mean, f.bn_p_var)
               .view({B, Lp, e});
      ot = bn(ot.reshape({B * Lt, e}), mtf.reshape({B * Lt}), f.bn_t_w, f.bn_t_b, f.bn_t_mean, f.bn_t_var)
               .view({B, Lt, e});
    }
    xp = relu(op);
    xt = relu(ot);
  }
  return {xp, xt};
}

std::pair<Tensor, Tensor> ProtSTModel::fused_states(const Tensor& protein_ids, const Tensor& protein_mask,
                                                    const Tensor& residue_mask, const Tensor& text_ids,
                                                    const Tensor& text_mask, bool train) {
  Tensor residue = residue_mlp_(protein_hidden(protein_ids, protein_mask));
  Tensor word = word_mlp_(text_hidden(text_ids, text_mask));
  return fuse(residue, residue_mask, word, text_mask, train);
}

ProtSTOutput ProtSTModel::forward(const ProtSTBatch& b, bool train) {
  ProtSTOutput out;
  int64_t B = b.protein_ids.size(0), Lp = b.protein_ids.size(1), Lt = b.text_ids.size(1), e = cfg_.embed_dim;
  Tensor hp = protein_hidden(b.protein_ids, b.protein_mask);  // [B, Lp, dp]
  Tensor ht = text_hidden(b.text_ids, b.text_mask);           // [B, Lt, dt]
  out.protein_embedding = graph_mlp_(masked_mean(hp, b.residue_mask));
  out.text_embedding = text_mlp_(masked_mean(ht, b.word_mask));
  Tensor residue = residue_mlp_(hp);  // [B, Lp, e]
  Tensor word = word_mlp_(ht);        // [B, Lt, e]

  // Training on CUDA uses the fused kernels (no [B, B] / [M, V] logits); evaluation and the CPU use
  // the compositions. Both report the masked-prediction accuracies.
  bool fused = train && fused_kernels(hp.device());
  Tensor pn = l2_normalize(out.protein_embedding, -1), tn = l2_normalize(out.text_embedding, -1);
  if (fused) {
    FusedInfoNce cl = fused_info_nce_terms(pn, tn, logit_scale_, cfg_.logit_scale_max, b.pair_group);
    out.cl = cl.loss;
    out.cl_p2t = cl.p2t;
    out.cl_t2p = cl.t2p;
    out.logit_scale = cl.scale;
  } else {
    InfoNceResult cl = info_nce(pn, tn, logit_scale_, cfg_.logit_scale_max, b.pair_group);
    out.cl = cl.loss;
    out.cl_p2t = cl.p2t;
    out.cl_t2p = cl.t2p;
    out.logit_scale = cl.scale;
  }
  // Masked cross-entropy through a two-layer head; fused: the last layer and the loss in one op.
  auto masked_ce = [&](const Tensor& hidden, const Tensor& index, const Tensor& target, const MLP& head) {
    if (!fused || index.numel() == 0) return masked_cross_entropy(hidden, index, target, head);
    PE_CHECK(head.layers.size() == 2, "ProtST: fused masked cross-entropy expects a two-layer head");
    MaskedCeResult r;
    r.count = index.numel();
    Tensor h = relu(head.layers[0](index_select(hidden, 0, index)));
    r.loss = fused_masked_cross_entropy(h, head.layers[1].weight, head.layers[1].bias, target);
    // The logits never exist as a whole; the accuracy recomputes them in row chunks, without gradient.
    r.accuracy = linear_argmax_accuracy(h.detach(), head.layers[1].weight.detach(),
                                        head.layers[1].bias.defined() ? head.layers[1].bias.detach() : Tensor(), target);
    return r;
  };

  MaskedCeResult mlm = masked_ce(residue.reshape({B * Lp, e}), b.protein_mlm_index, b.protein_mlm_target, mlm_head_);
  out.mlm = mlm.loss;
  out.mlm_acc = mlm.accuracy;

  auto [fp, ft] = fuse(residue, b.residue_mask, word, b.text_mask, train);
  MaskedCeResult mp = masked_ce(fp.reshape({B * Lp, e}), b.protein_mlm_index, b.protein_mlm_target, mmp_p_head_);
  MaskedCeResult mt = masked_ce(ft.reshape({B * Lt, e}), b.text_mlm_index, b.text_mlm_target, mmp_t_head_);
  out.mmp_protein = mp.loss;
  out.mmp_text = mt.loss;
  out.mmp_protein_acc = mp.accuracy;
  out.mmp_text_acc = mt.accuracy;

  out.total = add(add(mul(out.cl, cfg_.w_cl), mul(out.mlm, cfg_.w_mlm)), mul(add(out.mmp_protein, out.mmp_text), cfg_.w_mmp));
  return out;
}

}  // namespace pe
