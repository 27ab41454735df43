#include "app/train.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "app/data_parallel.h"
#include "app/dataset_command.h"
#include "app/model_io.h"
#include "app/plot.h"
#include "app/run_dir.h"
#include "app/train_common.h"
#include "app/validate.h"
#include "data/go_dataset.h"
#include "data/tokenizer_esm.h"
#include "dist/autograd_collectives.h"
#include "dist/grad_buckets.h"
#include "dist/watchdog.h"
#include "dist/zero_adam.h"
#include "kernels/backend.h"
#include "models/checkpoint.h"

namespace pe {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

int64_t total_steps(int64_t steps, int64_t epochs, int64_t batches_per_epoch, int64_t grad_accum) {
  if (steps > 0) return steps;
  return std::max<int64_t>(1, epochs * std::max<int64_t>(1, batches_per_epoch / std::max<int64_t>(1, grad_accum)));
}

double lr_at(int64_t step, int64_t total, int64_t warmup, double lr, const std::string& schedule, double min_ratio) {
  if (warmup > 0 && step < warmup) return lr * double(step + 1) / double(warmup);
  if (schedule == "constant") return lr;
  PE_CHECK(schedule == "cosine", "unknown schedule '", schedule, "' (constant or cosine)");
  double t = total > warmup ? double(step - warmup) / double(total - warmup) : 1.0;
  t = std::min(std::max(t, 0.0), 1.0);
  return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + std::cos(M_PI * t)));
}


EvalReport train(const TrainOptions& o) {
  validate_train_options(o);  // before anything is allocated or written
  // Under an MPI launcher: data-parallel over the job's ranks (app/data_parallel.h); otherwise one process.
  std::unique_ptr<dist::Communicator> comm = dist::make_communicator(dist::CommKind::Auto, resolve_device(o.device));
  return train(o, *comm);
}

EvalReport train(const TrainOptions& o, dist::Communicator& comm) {
  validate_train_options(o);  // before anything is allocated or written
  // NCCL: this rank's GPU (cuda:<local rank>); otherwise the device asked for.
  Device dev = comm.kind() == dist::CommKind::Nccl ? comm.device() : resolve_device(o.device);
  PE_CHECK(!(o.precision == "bf16" && dev.is_cpu()), "--precision bf16 needs a CUDA device (the CPU backend computes in f32)");
  PE_CHECK(!(o.precision == "f64" && !dev.is_cpu()), "--precision f64 runs on the CPU only (the float64 reference backend)");
  const DType param_dtype = o.precision == "f64" ? DType::F64 : DType::F32;
  const bool dp = comm.world_size() > 1, lead = comm.rank() == 0;
  PE_CHECK(!dp || comm.device() == dev, "protst train: data-parallel on ", dev.str(), " needs a communicator there (",
           comm.describe(), " works on ", comm.device().str(), ")");
  PE_CHECK(!dp || o.batch_size >= comm.world_size(), "protst train: --batch-size ", o.batch_size,
           " is the global batch and must give each of the ", comm.world_size(), " ranks at least one pair");
  // Every rank the same binary and options, checked before anything is written (throws on every rank).
  if (dp) check_same_configuration(comm, o);
  // Rank 0 owns the run folder (lock, checkpoints, metrics, plots, final/); the others read it.
  std::unique_ptr<RunLock> lock;
  if (lead) {
    make_dirs(o.out);
    lock = std::make_unique<RunLock>(o.out);  // one writer per run folder
    prepare_run_folder(o);
  }
  if (dp) {
    comm.barrier();
    if (lead)
      std::printf("data-parallel: %d ranks (%s), global batch %lld split by rows, global-negative InfoNCE, %s\n",
                  comm.world_size(), dist::comm_kind_name(comm.kind()), (long long)o.batch_size,
                  o.local_batchnorm ? "fusion BatchNorm statistics per rank (--local-batchnorm)"
                                    : "sync fusion BatchNorm (statistics over all ranks)");
  }
  std::string ckdir = o.out + "/checkpoints";

  // ---- data paths
  const TrainingData data = resolve_training_data(o);
  const std::string &train_path = data.train_path, &test_path = data.test_path;

  // ---- resume or build
  std::unique_ptr<ProtSTModel> model;
  std::unique_ptr<LoadedCheckpoint> resumed;
  std::vector<std::string> vocab;
  if (o.resume) {
    // Newest first; any failure (damage, an edit, malformed metadata, a configuration the model
    // cannot be built from) falls back to the next older checkpoint.
    resumed = resume_newest_checkpoint(ckdir, [&](const LoadedCheckpoint& ck) { model = model_from_checkpoint(ck, dev, param_dtype); });
  }
  if (resumed) {
    vocab = resumed->vocab;
    while (!vocab.empty() && vocab.back().empty()) vocab.pop_back();
    std::printf("resuming from %s (step %lld)\n", resumed->path.c_str(), (long long)resumed->progress.step);
  }

  // Text vocabulary: from the HF folder, a given file, or trained on the training texts.
  if (vocab.empty()) {
    if (!o.text_model.empty()) vocab = read_vocab_lines(o.text_model + "/vocab.txt");
    else if (!o.text_vocab.empty()) vocab = read_vocab_lines(o.text_vocab);
    else {
      ReadStats st;
      std::vector<ProteinRecord> recs = read_pairs(train_path, o.descriptions, st);
      std::vector<std::string> lines;
      for (const auto& r : recs) lines.push_back(r.text);
      auto t0 = Clock::now();
      vocab = train_wordpiece(lines, size_t(o.text_vocab_size));
      std::printf("text vocabulary: trained %zu WordPiece tokens on %zu training texts in %.1f s\n", vocab.size(),
                  lines.size(), std::chrono::duration<double>(Clock::now() - t0).count());
    }
    if (lead) write_vocab(o.out + "/vocab.txt", vocab);
  }
  // A Hugging Face text model brings its casing/accent switches (tokenizer_config.json).
  const BertOptions tok_options = o.text_model.empty() ? BertOptions{} : BertOptions::from_hf_folder(o.text_model);
  BertTokenizer tok(vocab, o.out + "/vocab.txt", tok_options);

  if (!model) {
    ProtSTConfig cfg;
    cfg.protein = o.protein_model.empty() ? protein_preset_config(o.protein_preset)
                                          : EsmConfig::from_json_file(o.protein_model + "/config.json");
    if (!o.text_model.empty()) {
      cfg.text = BertConfig::from_json_file(o.text_model + "/config.json");
    } else {
      cfg.text.hidden_size = o.text_hidden;
      cfg.text.num_layers = o.text_layers;
      cfg.text.num_heads = o.text_heads;
      cfg.text.intermediate_size = 4 * o.text_hidden;
      cfg.text.max_position_embeddings = std::max<int64_t>(o.max_text_len, 64);
    }
    cfg.text.vocab_size = int64_t(vocab.size());
    cfg.text.pad_token_id = tok.pad_id();
    cfg.embed_dim = o.embed_dim;
    cfg.fusion_heads = o.fusion_heads;
    cfg.fusion_layers = o.fusion_layers;
    cfg.w_mlm = o.w_mlm;
    cfg.w_mmp = o.w_mmp;
    cfg.w_cl = o.w_cl;
    Generator init(o.seed);
    model = std::make_unique<ProtSTModel>(cfg, init, InitSpec{param_dtype, dev});
    if (!o.protein_model.empty()) {
      LoadReport r = model->protein_encoder().load(o.protein_model);
      std::printf("protein encoder: loaded %zu tensors from %s\n", r.loaded.size(), o.protein_model.c_str());
    }
    if (!o.text_model.empty()) {
      LoadReport r = model->text_encoder().load(o.text_model);
      std::printf("text encoder: loaded %zu tensors from %s (%zu ignored)\n", r.loaded.size(), o.text_model.c_str(),
                  r.ignored.size());
    }
    bool freeze = o.freeze_text == "auto" ? !o.text_model.empty() : o.freeze_text == "true";
    model->freeze_text_encoder(freeze);
  }
  // Data-parallel: sync BatchNorm (statistics over every rank's tokens) unless --local-batchnorm.
  if (dp && !o.local_batchnorm) model->sync_batch_norm(dist::sum_across(comm));

  // ---- data
  // Texts never exceed the text encoder's position table (512 for BERT checkpoints).
  int64_t max_text = std::min(o.max_text_len, model->config().text.max_position_embeddings);
  if (max_text < o.max_text_len)
    std::printf("note: --max-text-len %lld capped at the text encoder's %lld positions\n", (long long)o.max_text_len,
                (long long)max_text);
  PairDataset train_ds = load_pair_split(train_path, o.descriptions, tok, max_text, "train");
  PairDataset test_ds;
  if (!test_path.empty()) {
    test_ds = load_pair_split(test_path, o.descriptions, tok, max_text, "test");
    std::printf("%s\n", describe_split(test_path).c_str());
  }
  PairDataset eval_ds = test_ds;
  if (o.eval_subset > 0 && int64_t(eval_ds.items.size()) > o.eval_subset) eval_ds.items.resize(size_t(o.eval_subset));

  // ---- optimiser: ProtST's protein-encoder learning-rate ratio; heads at the full rate
  AdamOptions ao;
  ao.lr = o.lr;
  ao.weight_decay = o.weight_decay;
  ao.decoupled = o.adamw;
  std::vector<ParamGroup> groups;
  groups.push_back({model->params().parameters("protein_model."), o.protein_lr_ratio, true});
  groups.push_back({model->params().parameters("text_model."), 1.0, true});
  // Heads: every other trainable tensor, by its name in the model's store (an encoder's tensors keep
  // their own store's names, without the "protein_model."/"text_model." prefix, so Tensor::name()
  // cannot tell them apart: selecting by it listed both encoders a second time, and Adam stepped them
  // twice per step, the second time at the full learning rate).
  std::vector<Tensor> heads;
  const ParamStore& store = model->params();
  for (const std::string& n : store.names())
    if (n.rfind("protein_model.", 0) != 0 && n.rfind("text_model.", 0) != 0 && !store.is_buffer(n) &&
        store.get(n).requires_grad())
      heads.push_back(store.get(n));
  groups.push_back({heads, 1.0, true});
  PE_CHECK(groups[0].params.size() + groups[1].params.size() + heads.size() == store.parameters().size(),
           "protst train: the optimiser's groups do not list every trainable tensor exactly once");
  // ZeRO-1 (data-parallel with --zero 1): the Adam moments sharded over the ranks (dist/zero_adam.h);
  // otherwise every rank holds the whole optimiser.
  const bool zero = dp && o.zero == 1;
  std::unique_ptr<Adam> opt;
  std::unique_ptr<dist::ShardedAdam> zopt;
  if (zero) zopt = std::make_unique<dist::ShardedAdam>(comm, groups, ao);
  else opt = std::make_unique<Adam>(groups, ao);
  if (zero && lead) {
    std::string per_rank;
    for (int r = 0; r < comm.world_size(); ++r)
      per_rank += (r ? " / " : "") + format_bytes(double(zopt->state_bytes(r)));
    std::printf("ZeRO-1: Adam moments sharded over %d ranks (%lld of %lld parameters each at most): %s per rank "
                "(ranks 0..%d) instead of %s on every rank\n",
                comm.world_size(), (long long)zopt->shard_counts()[0], (long long)zopt->numel(), per_rank.c_str(),
                comm.world_size() - 1, format_bytes(double(zopt->unsharded_state_bytes())).c_str());
  } else if (o.zero == 1 && lead) {
    std::printf("note: --zero 1 shards the optimizer over the ranks of a data-parallel job; one process keeps it whole\n");
  }
  std::vector<Tensor> all_params = model->params().parameters();
  // Data-parallel gradient all-reduce: buckets started during the backward (--bucket-mb), or one
  // all-reduce per tensor after it (--bucket-mb 0).
  std::unique_ptr<dist::GradBucketReducer> buckets;
  if (dp && !zero && o.bucket_mb > 0) {
    buckets = std::make_unique<dist::GradBucketReducer>(comm, all_params, int64_t(o.bucket_mb * 1e6),
                                                        dist::Reduction::Sum, o.grad_comm == "bf16");
    if (lead) {
      int64_t largest = 0;
      for (int64_t n : buckets->bucket_numels()) largest = std::max(largest, n);
      std::printf("gradient all-reduce: %lld bucket(s) of up to %.3g MB (--bucket-mb %g; largest %.3g MB), started "
                  "during the backward%s\n",
                  (long long)buckets->bucket_count(), o.bucket_mb, o.bucket_mb,
                  double(largest) * double(dtype_size(param_dtype)) / 1e6,
                  o.grad_comm == "bf16" ? ", sent as bf16 (--grad-comm bf16)" : "");
    }
  }
  TrainProgress prog;
  if (resumed) {
    const int64_t adam_step = resumed->meta.value("adam_step", int64_t(0));
    size_t moments = 0;
    for (const auto& kv : resumed->optim) moments += kv.first.rfind("m.", 0) == 0;
    PE_CHECK(moments == store.parameters().size(), resumed->path, " holds Adam moments for ", moments,
             " tensors, this model trains ", store.parameters().size(),
             ": a checkpoint written before each parameter was listed once in the optimiser (protst train listed "
             "the encoders' tensors twice); start a new run (--no-resume), e.g. from its exported final/ folders");
    if (zopt) zopt->load_state(resumed->optim, adam_step);  // this rank's slice of the complete state
    else opt->load_state(resumed->optim, adam_step);
    prog = resumed->progress;
  }

  BatchOptions bo;
  bo.batch_size = o.batch_size;
  bo.seed = o.seed;
  CollateOptions co;
  co.max_protein_len = o.max_protein_len;
  co.bert_style_protein_mask = o.bert_mask;
  co.same_text_positives = o.contrastive_positives == "same-text";
  std::vector<std::vector<int64_t>> batches = epoch_batches(train_ds, prog.epoch, bo);
  PE_CHECK(!batches.empty(), "training set smaller than one batch");
  int64_t total = total_steps(o.steps, o.epochs, int64_t(batches.size()), o.grad_accum);
  if (lead)
    std::printf("model: %.2fM parameters (%.2fM trainable; protein %.2fM, text %.2fM%s) on %s\n",
                double(model->params().numel()) / 1e6, [&] {
                  int64_t n = 0;
                  for (const Tensor& p : all_params) n += p.numel();
                  return double(n) / 1e6;
                }(),
                double(model->params().numel("protein_model.")) / 1e6, double(model->params().numel("text_model.")) / 1e6,
                model->text_frozen() ? ", frozen" : "", device_summary(dev).c_str());
  if (lead)
    std::printf("training: %lld steps of %lld x %lld pairs, %zu batches per epoch, lr %g (%s, warm-up %lld)\n",
                (long long)total, (long long)o.batch_size, (long long)o.grad_accum, batches.size(), o.lr,
                o.schedule.c_str(), (long long)o.warmup);

  // The options that shape the optimisation and the data order; a resume with other values warns.
  json train_options = {{"seed", o.seed},
                        {"batch-size", o.batch_size},
                        {"grad-accum", o.grad_accum},
                        {"lr", o.lr},
                        {"protein-lr-ratio", o.protein_lr_ratio},
                        {"weight-decay", o.weight_decay},
                        {"adamw", o.adamw},
                        {"schedule", o.schedule},
                        {"warmup", o.warmup},
                        {"min-lr-ratio", o.min_lr_ratio},
                        {"clip", o.clip},
                        {"max-protein-len", o.max_protein_len},
                        {"max-text-len", o.max_text_len},
                        {"bert-mask", o.bert_mask},
                        {"contrastive-positives", o.contrastive_positives},
                        {"train", train_path}};
  json train_meta = {{"train_options", train_options},
                     // The job that wrote it (a resume may use another world size; see the note below).
                     {"world_size", comm.world_size()},
                     {"local_batchnorm", dp && o.local_batchnorm},
                     // eval/embed/convert rebuild the tokenizer from the checkpoint: keep its switches.
                     {"text_tokenizer", tok.options().to_json()}};
  if (resumed) {
    json was = resumed->meta.value("train_options", json::object());
    std::string changed;
    for (const auto& [k, v] : train_options.items())
      if (was.contains(k) && was[k] != v) changed += "\n  --" + k + " " + v.dump() + " (checkpoint: " + was[k].dump() + ")";
    if (!changed.empty())
      std::printf("warning: resuming %s with options that differ from the ones it was trained with:%s\n",
                  resumed->path.c_str(), changed.c_str());
    int64_t was_world = resumed->meta.value("world_size", int64_t(1));
    if (lead && was_world != comm.world_size())
      std::printf("note: %s was written by a run on %lld process(es); resuming on %d. Unchanged: the global batch "
                  "(--batch-size %lld), its order, crops and masks, the weights and the optimizer state. What changes: "
                  "how the batch's rows are split over the ranks, so sums are taken in another order (round-off)%s\n",
                  resumed->path.c_str(), (long long)was_world, comm.world_size(), (long long)o.batch_size,
                  o.local_batchnorm && o.w_mmp != 0
                      ? ", and with --local-batchnorm the fusion BatchNorm's per-rank statistics (other rows per rank)"
                      : "");
  }
  std::string metrics_path = o.out + "/metrics.jsonl";
  std::ofstream metrics;
  if (lead) {
    truncate_metrics(metrics_path, prog.step);
    metrics.open(metrics_path, std::ios::app);
  }
  auto plot = [&] {
    if (!lead) return;
    try {
      plot_metrics_jsonl(metrics_path, o.out + "/curves.png",
                         {{"total loss", {"loss"}},
                          {"contrastive (InfoNCE)", {"cl_p2t", "cl_t2p"}},
                          {"masked prediction", {"mlm", "mmp_protein", "mmp_text"}},
                          {"logit scale", {"logit_scale"}},
                          {"held-out recall@10", {"eval_p2t_r10", "eval_t2p_r10"}},
                          {"tokens / s", {"tokens_per_s"}}},
                         "protst train: " + o.out);
    } catch (const Error& e) {
      std::printf("warning: could not draw %s/curves.png: %s\n", o.out.c_str(), e.what());
    }
  };
  // Weights (and buffers) all finite: nothing non-finite is ever written as a checkpoint or to final/.
  auto weights_finite = [&] {
    std::vector<Tensor> ts;
    for (const auto& nt : named_tensors(model->params())) ts.push_back(nt.second);
    return ts.empty() || !backend_for(ts[0].device()).any_nonfinite(ts);
  };
  auto newest_checkpoint = [&] {
    std::vector<std::string> all = list_checkpoints(ckdir);
    return all.empty() ? std::string("(none)") : all.front();
  };
  int64_t saved_step = -1;
  auto save = [&] {
    // ZeRO-1: every rank contributes its slice of the moments; rank 0 writes the complete state as an
    // ordinary checkpoint (a transient unsharded optimiser on rank 0 only).
    std::map<std::string, Tensor> zero_state;
    if (zopt) zero_state = zopt->gather_state();
    saved_step = prog.step;  // on every rank: the final save() below must be called by all or none
    if (!lead) return;
    PE_CHECK(weights_finite(), "the weights hold NaN or infinite values at step ", prog.step,
             ": no checkpoint is written and final/ is not exported; the newest checkpoint, ", newest_checkpoint(),
             ", is the last good one (lower --lr, set --clip, or check the inputs)");
    std::string path = ckdir + "/step-" + std::to_string(prog.step) + ".safetensors";
    if (zopt) {
      Adam whole(groups, ao);
      whole.load_state(zero_state, zopt->steps());
      save_checkpoint(path, *model, &whole, prog, vocab, train_meta);
    } else {
      save_checkpoint(path, *model, opt.get(), prog, vocab, train_meta);
    }
    prune_checkpoints(ckdir, o.keep);
    std::printf("saved %s\n", path.c_str());
  };
  EvalOptions eo;
  eo.device = dev;
  eo.max_protein_len = o.eval_max_protein_len;
  eo.batch_size = std::max<int64_t>(o.batch_size, 32);

  bool bf16 = dev.is_cuda() && o.precision != "f32";
  if (lead)
    std::printf("precision: %s\n", bf16 ? "bf16 matrix products with fp32 accumulation, fp32 master weights, statistics and losses"
                                    : param_dtype == DType::F64 ? "f64 (reference run: every tensor in float64)"
                                                                : "f32");
  auto t_start = Clock::now();
  double seconds_before = prog.seconds;
  double allreduce_seconds = 0;  // data-parallel: wall time in the gradient all-reduce (this rank)
  int64_t buckets_early = 0, buckets_total = 0;  // bucket all-reduces started during the backward / all
  int64_t tokens_window = 0;
  auto t_window = Clock::now();
  int64_t consecutive_skipped = 0;
  saved_step = prog.step;  // fresh: step 0; resumed: the checkpoint it came from
  // Data-parallel: a rank that stops without failing must not leave the others waiting for ever
  // (dist/watchdog.h; --collective-timeout, 0 = off). Covers the training steps, not start-up or the
  // final export and evaluation.
  auto watchdog = std::make_unique<dist::Watchdog>(comm.rank(), comm.world_size(), dp ? o.collective_timeout : 0);
  auto at_step = [&](const char* what) { return "step " + std::to_string(prog.step + 1) + ": " + what; };
  while (prog.step < total) {
    watchdog->progress(at_step("forward and backward"));
    test_fault_injection(comm.rank(), prog.step + 1);  // test-only (app/data_parallel.h); inert unless set
    // ---- one optimiser step over grad_accum micro-batches
    double sums[7] = {0, 0, 0, 0, 0, 0, 0};
    double logit_scale = 0, accs[3] = {0, 0, 0};
    bool finite = true;
    for (int64_t micro = 0; micro < o.grad_accum; ++micro) {
      if (prog.batch_in_epoch >= int64_t(batches.size())) {
        ++prog.epoch;
        prog.batch_in_epoch = 0;
        batches = epoch_batches(train_ds, prog.epoch, bo);
      }
      // Masks and crops depend only on (seed, epoch, batch), so a resumed run draws the same ones.
      Generator g(o.seed * 0x9E3779B97F4A7C15ULL + uint64_t(prog.epoch) * 1000003ULL + uint64_t(prog.batch_in_epoch));
      CollateStats cs;
      const std::vector<int64_t>& rows = batches[size_t(prog.batch_in_epoch)];
      // Data-parallel: every rank collates the whole batch (the same crops and masks), keeps its rows.
      ProtSTBatch full = collate(train_ds, rows, co, tok, g, dp ? Device::cpu() : dev, &cs);
      ++prog.batch_in_epoch;
      ProtSTBatch b = full;
      if (dp) {
        std::vector<int64_t> counts = dist::balanced_counts(int64_t(rows.size()), comm.world_size());
        b = shard_batch(full, dist::shard_offset(counts, comm.rank()), counts[size_t(comm.rank())], dev);
      }
      AutocastBf16 autocast(bf16);
      ProtSTOutput out = model->forward(b, true);
      DataParallelStep step;
      if (dp) {
        step = data_parallel_objective(comm, *model, out, b, full);  // global values, the same on every rank
      } else {
        step.share = out.total;
        Tensor parts[7] = {out.total, out.cl, out.cl_p2t, out.cl_t2p, out.mlm, out.mmp_protein, out.mmp_text};
        for (int k = 0; k < 7; ++k) step.parts[k] = parts[k].item();
        step.logit_scale = out.logit_scale.item();
        step.accs[0] = out.mlm_acc;
        step.accs[1] = out.mmp_protein_acc;
        step.accs[2] = out.mmp_text_acc;
      }
      if (!std::isfinite(step.parts[0])) {
        finite = false;
        continue;
      }
      Tensor micro_loss = mul(step.share, 1.0 / double(o.grad_accum));
      if (buckets && micro == o.grad_accum - 1) {
        // Only the last micro-step communicates: the buckets start as its backward finalises them.
        LeafGradReadyHookGuard ready(buckets->arm());
        micro_loss.backward();
      } else {
        micro_loss.backward();
      }
      for (int k = 0; k < 7; ++k) sums[k] += step.parts[k] / double(o.grad_accum);
      logit_scale = step.logit_scale;
      for (int k = 0; k < 3; ++k) accs[k] += step.accs[k] / double(o.grad_accum);
      int64_t real = cs.residues + 2 * int64_t(full.protein_ids.size(0)) + cs.text_tokens;
      prog.tokens += real;
      tokens_window += real;
    }
    double gnorm = 0;
    int64_t step_buckets = 0, step_buckets_early = 0;
    // Per-rank shares of the global objective: their gradients are summed over ranks.
    watchdog->progress(at_step("gradient all-reduce"));
    // Buckets started by the last micro-step are finished on every rank (each took the same decisions
    // on the same global losses), also when an earlier micro-step makes this step a skipped one.
    if (buckets && buckets->armed()) {
      const auto t_ar = Clock::now();
      step_buckets = buckets->bucket_count();  // finish() may rebuild them (after the first step)
      buckets->finish();
      allreduce_seconds += std::chrono::duration<double>(Clock::now() - t_ar).count();
      step_buckets_early = buckets->started_during_backward();
      buckets_early += step_buckets_early;
      buckets_total += step_buckets;
    } else if (dp && finite && !buckets && !zero) {
      const auto t_ar = Clock::now();
      dist::all_reduce_gradients(comm, all_params, dist::Reduction::Sum);
      allreduce_seconds += std::chrono::duration<double>(Clock::now() - t_ar).count();
    }
    double zero_norm = 0;
    if (zero && finite) {
      // Reduce-scatter: each rank receives the summed gradient of its slice; the norm is global.
      const auto t_ar = Clock::now();
      zero_norm = zopt->reduce_gradients();
      allreduce_seconds += std::chrono::duration<double>(Clock::now() - t_ar).count();
      if (!std::isfinite(zero_norm)) finite = false;
    } else if (finite && grads_nonfinite(all_params)) {
      finite = false;
    }
    if (!finite) {
      ++prog.skipped_steps;
      if (zopt) zopt->zero_grad();
      else opt->zero_grad();
      if (lead)
        std::printf("step %lld: non-finite loss or gradient, step skipped (%lld so far)\n", (long long)prog.step + 1,
                    (long long)prog.skipped_steps);
      ++prog.step;
      PE_CHECK(++consecutive_skipped < o.max_skipped_steps, "training stopped at step ", prog.step, ": ",
               consecutive_skipped, " consecutive steps had a non-finite loss or gradient (--max-skipped-steps ",
               o.max_skipped_steps, "); the newest checkpoint, ", newest_checkpoint(),
               ", holds the last good weights (lower --lr, set --clip, or check the inputs)");
      continue;
    }
    consecutive_skipped = 0;
    watchdog->progress(at_step("optimizer step"));
    double lr = lr_at(prog.step, total, o.warmup, o.lr, o.schedule, o.min_lr_ratio);
    if (zopt) {
      gnorm = zero_norm;
      zopt->clip(o.clip);
      zopt->set_lr(lr);
      zopt->step();  // this rank's slice, then the parameters all-gathered
      zopt->zero_grad();
    } else {
      gnorm = clip_grad_norm(all_params, o.clip);
      opt->set_lr(lr);
      opt->step();
      opt->zero_grad();
    }
    ++prog.step;
    prog.seconds = seconds_before + std::chrono::duration<double>(Clock::now() - t_start).count();

    bool last = prog.step == total;
    if (lead && (prog.step % o.log_every == 0 || last || prog.step == 1)) {
      double dt = std::chrono::duration<double>(Clock::now() - t_window).count();
      double tps = dt > 0 ? double(tokens_window) / dt : 0;
      double per_step = (prog.seconds - seconds_before) / double(std::max<int64_t>(1, prog.step - (resumed ? resumed->progress.step : 0)));
      std::printf("step %lld/%lld | loss %.4f (cl %.3f = %.3f + %.3f, mlm %.3f, mmp %.3f + %.3f) | scale %.2f | "
                  "lr %.2e | |g| %.2f | %.0f tok/s | ETA %s\n",
                  (long long)prog.step, (long long)total, sums[0], sums[1], sums[2], sums[3], sums[4], sums[5], sums[6],
                  logit_scale, lr, gnorm, tps, fmt_duration(per_step * double(total - prog.step)).c_str());
      std::fflush(stdout);
      json m = {{"step", prog.step},       {"epoch", prog.epoch},   {"loss", sums[0]},        {"cl", sums[1]},
                {"cl_p2t", sums[2]},       {"cl_t2p", sums[3]},     {"mlm", sums[4]},         {"mmp_protein", sums[5]},
                {"mmp_text", sums[6]},     {"logit_scale", logit_scale}, {"lr", lr},          {"grad_norm", gnorm},
                {"mlm_acc", accs[0]},      {"mmp_protein_acc", accs[1]}, {"mmp_text_acc", accs[2]},
                {"tokens_per_s", tps},     {"tokens", prog.tokens}, {"seconds", prog.seconds}};
      if (buckets) {  // how many of this step's bucket all-reduces overlapped the backward
        m["grad_buckets"] = step_buckets;
        m["grad_buckets_in_backward"] = step_buckets_early;
      }
      metrics << m.dump() << "\n" << std::flush;
      tokens_window = 0;
      t_window = Clock::now();
    }
    const bool eval_now = o.eval_every > 0 && !eval_ds.items.empty() && prog.step % o.eval_every == 0 && !last;
    // Rank 0 evaluates alone; the others wait at a barrier, with the watchdog's clock stopped.
    if (eval_now) watchdog->pause("rank 0's evaluation after step " + std::to_string(prog.step));
    if (lead && eval_now) {
      EvalReport r = evaluate(*model, eval_ds, tok, eo);
      std::printf("eval @ step %lld: recall@10 p->t %.4f (chance %.4f), t->p %.4f (chance %.4f)\n",
                  (long long)prog.step, r.retrieval.p2t.recall10, r.retrieval.p2t.chance_recall10,
                  r.retrieval.t2p.recall10, r.retrieval.t2p.chance_recall10);
      json m = {{"step", prog.step}, {"eval_p2t_r10", r.retrieval.p2t.recall10}, {"eval_t2p_r10", r.retrieval.t2p.recall10},
                {"eval_p2t_r1", r.retrieval.p2t.recall1}, {"eval_mlm_acc", r.mlm_acc}};
      metrics << m.dump() << "\n" << std::flush;
    }
    if (eval_now && dp) comm.barrier();
    if ((o.save_every > 0 && prog.step % o.save_every == 0) || last) {
      watchdog->progress("checkpoint after step " + std::to_string(prog.step));
      save();
      plot();
    }
  }

  if (saved_step != prog.step) save();  // the last step was skipped: its checkpoint, if the weights allow
  watchdog.reset();
  if (dp && lead) {
    const double steps_s = std::chrono::duration<double>(Clock::now() - t_start).count();
    std::printf("data-parallel: rank 0 spent %.2f s of %.2f s of steps in the gradient all-reduce (%.1f %%; %s)\n",
                allreduce_seconds, steps_s, steps_s > 0 ? 100.0 * allreduce_seconds / steps_s : 0.0,
                zero      ? "ZeRO-1: the gradient reduce-scatter and the global norm, after the backward"
                : buckets ? "waiting for the buckets after the backward, the part not overlapped"
                          : "one all-reduce per parameter tensor, not overlapped with the backward");
    if (buckets)
      std::printf("data-parallel: %lld of %lld bucket all-reduces were started during the backward\n",
                  (long long)buckets_early, (long long)buckets_total);
  }
  if (!lead) {
    comm.barrier();  // rank 0 exports and evaluates
    return EvalReport();
  }
  // ---- final: HF-loadable encoders and the held-out evaluation
  PE_CHECK(weights_finite(), "the weights hold NaN or infinite values: final/ is not exported");
  std::string final_dir = o.out + "/final";
  make_dirs(final_dir);
  model->protein_encoder().save_pretrained(final_dir + "/protein_model");
  model->text_encoder().save_pretrained(final_dir + "/text_model");
  write_vocab(final_dir + "/text_model/vocab.txt", vocab);
  write_hf_tokenizer_files(final_dir + "/text_model", tok.options(), model->text_encoder().config().max_position_embeddings);
  std::printf("exported Hugging Face folders: %s/{protein_model,text_model}\n", final_dir.c_str());
  EvalReport rep;
  if (!test_ds.items.empty()) {
    rep = evaluate(*model, test_ds, tok, eo);
    std::printf("%s", rep.summary().c_str());
    json m = {{"step", prog.step}, {"eval_p2t_r10", rep.retrieval.p2t.recall10}, {"eval_t2p_r10", rep.retrieval.t2p.recall10},
              {"eval_p2t_r1", rep.retrieval.p2t.recall1}, {"eval_mlm_acc", rep.mlm_acc}, {"final", true}};
    metrics << m.dump() << "\n" << std::flush;
    write_text_atomic(o.out + "/eval.json",
                      json({{"p2t", {{"recall1", rep.retrieval.p2t.recall1}, {"recall10", rep.retrieval.p2t.recall10},
                                     {"mrr", rep.retrieval.p2t.mrr}, {"chance_recall10", rep.retrieval.p2t.chance_recall10}}},
                            {"t2p", {{"recall1", rep.retrieval.t2p.recall1}, {"recall10", rep.retrieval.t2p.recall10},
                                     {"mrr", rep.retrieval.t2p.mrr}, {"chance_recall10", rep.retrieval.t2p.chance_recall10}}},
                            {"mlm_acc", rep.mlm_acc}, {"mmp_protein_acc", rep.mmp_protein_acc},
                            {"mmp_text_acc", rep.mmp_text_acc}, {"step", prog.step}})
                              .dump(2) + "\n");
  }
  plot();
  if (dp) comm.barrier();
  return rep;
}

}  // namespace pe
