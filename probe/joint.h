#pragma once
// Joint fusion predictor of `protst probe` (issue #13): the ProtST model's fused representations,
// fine-tuned end to end with the task loss.
//
// Multimodal tasks: per mini-batch, protein and text encoder hidden states -> residue_mlp / word_mlp
// -> the model's cross-attention fusion block (ProtSTModel::fused_states, BatchNorm on batch
// statistics while training, running statistics when predicting) -> each side mean-pooled over its
// real positions (protein: residues; text: tokens other than [CLS]/[SEP]/[PAD]) -> concatenated ->
// one linear head. Unimodal tasks (no text): the protein encoder's last hidden state mean-pooled
// over residues -> linear head; that is fine-tuning of the sequence encoder, not fusion.
//
// Loss: multi-label = mean binary cross-entropy with logits over all (protein, term) pairs (the same
// loss as the frozen predictors, probe_bce_with_logits); single-label = softmax cross-entropy.
// AdamW (decoupled weight decay); learning rate `lr` for the head, the projection MLPs and the fusion
// block, `lr * encoder_lr_ratio` for the encoders (ProtST's protein-encoder ratio, 0.1). The text
// encoder is trained only when the model says it is not frozen (ProtSTModel::text_frozen, which a
// checkpoint records). Fixed number of epochs; mini-batches drawn without replacement (a seeded
// permutation, then sorted by length within windows of 20 batches so that batches pad little, batch
// order shuffled); head initialised from Philox(seed), its bias at the training label prior.
// Deterministic per seed on the CPU backend for a given OpenMP thread count (unlike the frozen probes,
// the fits keep the caller's threads: the encoders' matrices are large enough to use them; not checked
// across thread counts).
//
// The model is modified in place: pass a fresh copy per seed.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/protst.h"
#include "probe/predictors.h"

namespace pe {

// Tokenised proteins (and texts) of one side of a task, one entry per protein.
struct JointInputs {
  std::vector<std::vector<int32_t>> residues;  // ESM ids of the residues (no <cls>/<eos>), already cut to length
  std::vector<std::vector<int32_t>> texts;     // BERT ids [CLS] ... [SEP]; empty vector: unimodal task
  int32_t text_pad = 0, text_cls = -1, text_sep = -1;
  int64_t size() const { return int64_t(residues.size()); }
  bool multimodal() const { return !texts.empty(); }
};
JointInputs select_rows(const JointInputs& x, const std::vector<int64_t>& rows);

struct JointBatch {
  Tensor protein_ids, protein_mask, residue_mask;  // [B, Lp] i64: <cls> seq <eos> <pad>...
  Tensor text_ids, text_mask, word_mask;           // [B, Lt] i64 (undefined for unimodal inputs)
};
JointBatch make_joint_batch(const JointInputs& x, const std::vector<int64_t>& rows, Device dev);

// Pooled features the head reads: [B, 2 * embed_dim] = [mean fused protein states, mean fused text
// states] (multimodal), or [B, protein hidden] pooled protein encoder states (unimodal).
Tensor joint_features(ProtSTModel& model, const JointBatch& b, bool train);

struct JointOptions {
  int64_t epochs = 3;
  int64_t batch_size = 32;
  double lr = 1e-3;                // head, projection MLPs, fusion block
  double encoder_lr_ratio = 0.1;   // encoders at lr * ratio
  double weight_decay = 1e-2;      // AdamW, decoupled
  bool fine_tune = true;           // false: only the head trains (a linear probe on the same frozen features)
  uint64_t seed = 0;
  int64_t predict_batch_size = 64;
  int threads = 0;                 // OpenMP threads while fitting (0 = leave as is)
  // After each optimiser step: steps done, steps in the fit.
  std::function<void(int64_t, int64_t)> progress;
};

struct JointFitStats {
  std::vector<double> epoch_loss;  // mean training loss of each epoch (over its mini-batches)
  int64_t steps = 0;
  int64_t trained_tensors = 0, trained_numel = 0;  // parameters the optimiser updates
};

// Steps one fit makes (for progress and ETA).
int64_t joint_fit_steps(int64_t train_rows, const JointOptions& o);

// Fine-tunes `model` on (x, y) and returns probabilities [x_test.size() x y.k] (row-major).
std::vector<double> joint_fit_predict(ProtSTModel& model, const JointInputs& x, const ProbeLabels& y,
                                      const JointInputs& x_test, const JointOptions& o, JointFitStats* stats = nullptr);

}  // namespace pe
