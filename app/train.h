#pragma once
// `protst train`: the training loop of ProtST on CPU or CUDA, with checkpoints that resume exactly.
#include <string>

#include "app/device.h"
#include "dist/communicator.h"
#include "app/evaluate.h"

namespace pe {

struct TrainOptions {
  // ---- data
  std::string train_path, test_path, descriptions;
  bool go_dataset = false;              // build/reuse the Swiss-Prot GO dataset (Debian metastudent-data)
  std::string go_cache = "datasets/go";
  int64_t go_subset_train = 0, go_subset_test = 0, go_max_len = 0;
  double go_split_identity = 0.5, go_split_coverage = 0.8;  // GoDatasetOptions::split_identity/coverage
  // ---- model
  std::string protein_model;            // HF EsmForMaskedLM folder; empty: from scratch with protein_preset
  std::string protein_preset = "tiny";  // tiny | esm2_8m | esm2_35m | esm2_150m | esm2_650m
  std::string text_model;               // HF BertModel/BertForMaskedLM folder with vocab.txt; empty: from scratch
  std::string text_vocab;               // vocab.txt for a from-scratch text encoder; empty: trained on the train texts
  int64_t text_vocab_size = 4000, text_layers = 2, text_hidden = 128, text_heads = 4;
  int64_t embed_dim = 512, fusion_heads = 8, fusion_layers = 1;
  std::string freeze_text = "auto";     // auto: frozen when loaded from a checkpoint (ProtST), trained from scratch
  double w_mlm = 1.0, w_mmp = 1.0, w_cl = 1.0;
  // Data-parallel runs only: each rank normalises the fusion BatchNorm with its own tokens' statistics
  // (PyTorch DDP without SyncBatchNorm, as ProtST trained). Default: sync BatchNorm over all ranks.
  bool local_batchnorm = false;
  // Data-parallel runs only: the gradient all-reduce in buckets of about this many MB (1e6 bytes),
  // started as their gradients become final during the backward (dist/grad_buckets.h); 0 = one
  // blocking all-reduce per parameter tensor after the backward.
  double bucket_mb = 25;
  // Data-parallel runs only: the dtype the gradient buckets travel in: f32 (the gradients' own: f32,
  // or f64 in --precision f64 runs) or bf16 (half the bytes; sums accumulate in f32 on MPI).
  std::string grad_comm = "f32";
  // Data-parallel runs only: 1 = ZeRO stage 1, the Adam moments sharded over the ranks (reduce-scatter
  // of the gradient, each rank updates its slice, all-gather of the parameters); 0 = off.
  int64_t zero = 0;
  // Data-parallel runs only: end the job (every rank, non-zero) when a training step has made no
  // progress for this many seconds -- a rank that hangs without failing (dist/watchdog.h); 0 = off.
  double collective_timeout = 600;
  // ---- optimisation
  double lr = 1e-5, protein_lr_ratio = 0.1, weight_decay = 0.0, clip = 0.0, min_lr_ratio = 0.0;
  bool adamw = false;
  std::string schedule = "constant";    // constant | cosine (both after linear warm-up)
  int64_t warmup = 0, grad_accum = 1, batch_size = 12, steps = 0, epochs = 20;
  int64_t max_protein_len = 450, max_text_len = 128, eval_max_protein_len = 1022;
  bool bert_mask = false;
  std::string contrastive_positives = "same-text";  // same-text: identical texts are positives | diagonal (ProtST)
  uint64_t seed = 0;
  std::string device = "auto";
  std::string precision = "auto";       // auto (bf16 matmuls on CUDA, f32 on CPU) | f32 | bf16 | f64 (CPU reference run)
  // ---- bookkeeping
  std::string out = "runs/protst";
  int64_t save_every = 500, keep = 3, eval_every = 0, log_every = 10;
  int64_t max_skipped_steps = 20;      // this many consecutive non-finite steps end the run with an error
  bool resume = true;                   // continue from the newest valid checkpoint in <out>/checkpoints
  bool overwrite = false;               // with resume = false: delete the results already in <out> first
  int64_t eval_subset = 2000;           // test pairs used by periodic evaluation (0 = all)
  // ---- generative arms (issue #12; app/train_arm.cpp)
  std::string task = "contrastive";     // contrastive (ProtST pretraining) | describe | design
  std::string from_checkpoint;          // the trained ProtST checkpoint an arm is trained on
  int64_t decoder_layers = 2, decoder_hidden = 256, decoder_heads = 4;
  double encoder_lr_ratio = 0.0;        // learning-rate factor of the conditioning encoder (0 = frozen)
  std::string condition = "cross";      // what the decoder reads: cross | prefix | imputed (app/arms.h)
  int64_t prefix_length = 8;            // prefix / imputed: prefix vectors projected from the embedding
  int64_t eval_generate = 200;          // held-out pairs decoded greedily at the end (samples.jsonl)
  // design: the final design evaluation (app/design_eval.h) on this many held-out prompts (0 = none),
  // with this many sampled designs each, judged by judge_checkpoint ("" = the arm's ProtST model)
  int64_t eval_design_prompts = 100, eval_design_per_prompt = 4;
  std::string judge_checkpoint;
};

// Runs training; returns the final held-out evaluation (empty when no test set). Started by an MPI
// launcher, it trains data-parallel over the job's ranks (app/data_parallel.h; rank 0 writes the
// run folder and evaluates, the other ranks return an empty report); otherwise in one process.
EvalReport train(const TrainOptions& opt);
// The same on a given communicator (world size 1: one process, exactly as without one).
EvalReport train(const TrainOptions& opt, dist::Communicator& comm);

int64_t total_steps(int64_t steps, int64_t epochs, int64_t batches_per_epoch, int64_t grad_accum);
// Learning rate at a step: linear warm-up to `lr`, then constant or cosine decay to lr * min_ratio.
double lr_at(int64_t step, int64_t total, int64_t warmup, double lr, const std::string& schedule, double min_ratio);

}  // namespace pe
