#pragma once
// The ProtST model (SPEC §2-3): ESM-2 protein encoder, BERT text encoder, projection MLPs to a
// shared embedding, the cross-attention fusion block with BatchNorm (statistics over real tokens)
// and ReLU, the MLM and cross-modal masked-prediction heads, a learnable clamped logit scale, and
// the embedding conversion MLPs that impute a missing modality.
#include <string>
#include <vector>

#include "autograd/sync_batch_norm.h"
#include "losses/losses.h"
#include "models/bert.h"
#include "models/esm.h"

namespace pe {

struct ProtSTConfig {
  EsmConfig protein;
  BertConfig text;
  int64_t embed_dim = 512;
  int64_t fusion_heads = 8;
  int64_t fusion_layers = 1;
  bool fusion_batch_norm = true;
  double bn_momentum = 0.1, bn_eps = 1e-5;
  double logit_scale_init = 2.6592600369327779;  // ln(1/0.07)
  double logit_scale_max = 4.6051701859880914;   // ln(100); ours, as CLIP/open_clip
  double w_mlm = 1.0, w_mmp = 1.0;
  double w_cl = 1.0;  // weight of the InfoNCE loss (0 = masked-LM-only pretraining, the probe's "MLM only" row)
  int64_t conversion_hidden = 512;
};

// Throws pe::Error naming `source` and the field when a size or weight is out of range; the
// encoder configurations are checked too. ProtSTModel's constructor calls it.
void validate_protst_config(const ProtSTConfig& c, const std::string& source);

// One masked batch. Masked copies of the inputs feed every loss (SPEC §3).
struct ProtSTBatch {
  Tensor protein_ids, protein_mask;  // [B, Lp] i64: <cls> seq <eos> <pad>..., with <mask> substitutions
  Tensor residue_mask;               // [B, Lp] i64: 1 on residues (not <cls>/<eos>/<pad>)
  Tensor protein_mlm_index;          // [M] i64: flat index b*Lp + l of masked residues
  Tensor protein_mlm_target;         // [M] i64: the original tokens there
  Tensor text_ids, text_mask;        // [B, Lt] i64 with [MASK] substitutions
  Tensor word_mask;                  // [B, Lt] i64: 1 on tokens that are not [CLS]/[SEP]/[PAD]
  Tensor text_mlm_index, text_mlm_target;
  Tensor pair_group;                 // [B] i64: equal ids = identical texts (optional)
};

struct ProtSTOutput {
  Tensor total, cl, cl_p2t, cl_t2p, mlm, mmp_protein, mmp_text, logit_scale;
  Tensor protein_embedding, text_embedding;  // [B, embed] before normalisation
  double mlm_acc = 0, mmp_protein_acc = 0, mmp_text_acc = 0;
};

class ProtSTModel {
 public:
  ProtSTModel(const ProtSTConfig& cfg, Generator& gen, const InitSpec& spec = {});
  const ProtSTConfig& config() const { return cfg_; }

  ProtSTOutput forward(const ProtSTBatch& b, bool train);
  // Embeddings (before L2 normalisation) for retrieval and export.
  Tensor embed_protein(const Tensor& ids, const Tensor& mask, const Tensor& residue_mask) const;
  Tensor embed_text(const Tensor& ids, const Tensor& mask, const Tensor& word_mask) const;
  // Conversion MLPs (stage two): protein embedding -> text embedding and back.
  Tensor protein_to_text(const Tensor& protein_embedding) const { return p2t_(protein_embedding); }
  Tensor text_to_protein(const Tensor& text_embedding) const { return t2p_(text_embedding); }

  // The fusion block's outputs on an unmasked batch: residue_mlp(protein states) and word_mlp(text
  // states) through `fuse`, keys masked as in forward (protein by residue_mask, text by text_mask):
  // [B, Lp, e] and [B, Lt, e]. train: BatchNorm on batch statistics (updating the running ones).
  // `protst probe`'s joint fusion predictor fine-tunes the model end to end through it.
  std::pair<Tensor, Tensor> fused_states(const Tensor& protein_ids, const Tensor& protein_mask, const Tensor& residue_mask,
                                         const Tensor& text_ids, const Tensor& text_mask, bool train);

  // Last hidden states of the encoders ([B, L, d]; the text encoder without a graph when frozen):
  // what the generative arms' decoders read.
  Tensor protein_hidden(const Tensor& ids, const Tensor& mask) const;
  Tensor text_hidden(const Tensor& ids, const Tensor& mask) const;
  EsmModel& protein_encoder() { return protein_; }
  BertModel& text_encoder() { return text_; }
  // Every tensor by name: "protein_model.<HF name>", "text_model.<HF name>", heads by ProtST's names.
  ParamStore& params() { return ps_; }
  const ParamStore& params() const { return ps_; }
  void freeze_text_encoder(bool frozen);
  bool text_frozen() const { return text_frozen_; }
  // Data-parallel training: the fusion BatchNorms take their training-mode statistics over every
  // process's real tokens (batch_norm_synced with this cross-process sum; dist::sum_across(comm) provides
  // it, so the model never sees a communicator). Empty (the default): each process's own tokens.
  // Evaluation mode always uses the running statistics and calls no collective.
  void sync_batch_norm(SumAcrossProcesses sum_across) { bn_sum_across_ = std::move(sum_across); }
  bool batch_norm_is_synced() const { return bool(bn_sum_across_); }

 private:
  struct FusionLayer {
    Linear q1, k1, v1, q2, k2, v2;
    Tensor bn_p_w, bn_p_b, bn_p_mean, bn_p_var, bn_t_w, bn_t_b, bn_t_mean, bn_t_var;
  };
  std::pair<Tensor, Tensor> fuse(const Tensor& xp, const Tensor& mp, const Tensor& xt, const Tensor& mt, bool train);

  ProtSTConfig cfg_;
  EsmModel protein_;
  BertModel text_;
  ParamStore ps_;
  MLP graph_mlp_, residue_mlp_, text_mlp_, word_mlp_, mlm_head_, mmp_p_head_, mmp_t_head_, p2t_, t2p_;
  std::vector<FusionLayer> fusion_;
  Tensor logit_scale_;
  bool text_frozen_ = false;
  SumAcrossProcesses bn_sum_across_;
};

// Mean of x [B, L, d] over positions where mask [B, L] is set; denominators get +1e-6 as ProtST.
Tensor masked_mean(const Tensor& x, const Tensor& mask);

}  // namespace pe
