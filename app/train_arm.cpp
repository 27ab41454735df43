// `protst train --task describe|design`: trains a generative arm (decoders/decoder.h) on a trained
// ProtST checkpoint's encoders, on the same pairs and split as pretraining. Checkpoints hold the
// ProtST model they started from and the decoder, so one file serves `protst describe` / `design`.
#include "app/train_arm.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "app/arms.h"
#include "app/design_eval.h"
#include "app/evaluate.h"
#include "app/plot.h"
#include "app/run_dir.h"
#include "app/train_common.h"
#include "app/validate.h"
#include "autograd/graph.h"
#include "data/records.h"
#include "data/text_io.h"
#include "decoders/generate.h"
#include "decoders/text_metrics.h"
#include "dist/communicator.h"
#include "kernels/backend.h"
#include "models/checkpoint.h"

namespace pe {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// Teacher-forced held-out loss and next-token accuracy over ds (no graph).
struct HeldOut {
  double loss = 0, accuracy = 0;
  int64_t tokens = 0;
};
HeldOut held_out_loss(ArmTask task, ArmCondition cond, const ProtSTModel& model, const Decoder& dec,
                      const PairDataset& ds, const BertTokenizer& tok, int64_t max_protein_len, int64_t batch_size,
                      Device dev, bool real_target = false) {
  NoGradGuard ng;
  HeldOut h;
  double loss_sum = 0, acc_sum = 0;
  for (size_t i0 = 0; i0 < ds.items.size(); i0 += size_t(batch_size)) {
    std::vector<int64_t> idx;
    for (size_t i = i0; i < std::min(ds.items.size(), i0 + size_t(batch_size)); ++i) idx.push_back(int64_t(i));
    ArmBatch b = make_arm_batch(task, cond, model, ds, idx, max_protein_len, tok, dev, false, real_target);
    DecoderLoss l = dec.loss(b.targets, b.memory, b.memory_mask);
    loss_sum += l.loss.item() * double(l.tokens);
    acc_sum += l.accuracy * double(l.tokens);
    h.tokens += l.tokens;
  }
  if (h.tokens > 0) {
    h.loss = loss_sum / double(h.tokens);
    h.accuracy = acc_sum / double(h.tokens);
  }
  return h;
}

}  // namespace

void train_arm(const TrainOptions& o) {
  validate_train_options(o);
  std::string launcher;
  PE_CHECK(!dist::launched_by_mpi(&launcher), "--task ", o.task, " is not data-parallel yet (issue #11 covers ProtST "
           "pretraining only): run it without mpirun/srun (found ", launcher, ")");
  const ArmTask task = parse_arm_task(o.task);
  PE_CHECK(!o.from_checkpoint.empty(), "--task ", o.task,
           " trains a generative arm on a trained ProtST model: give its checkpoint with --from-checkpoint "
           "(e.g. runs/quickstart/checkpoints/step-2000.safetensors)");
  Device dev = resolve_device(o.device);
  PE_CHECK(o.precision != "bf16" && o.precision != "f64", "--task ", o.task, ": --precision ", o.precision,
           " is not supported for the generative arms yet (auto or f32)");
  make_dirs(o.out);
  RunLock lock(o.out);
  prepare_run_folder(o);
  const std::string ckdir = o.out + "/checkpoints";
  const TrainingData data = resolve_training_data(o);

  // ---- the ProtST model and the decoder: resumed from this run, or started from --from-checkpoint
  std::unique_ptr<LoadedCheckpoint> ck;
  std::unique_ptr<ProtSTModel> model;
  LoadedArm arm;
  bool resumed = false;
  if (o.resume) {
    ck = resume_newest_checkpoint(ckdir, [&](const LoadedCheckpoint& c) {
      LoadedArm a = arm_from_checkpoint(c, dev);
      PE_CHECK(a.task == task, c.path, " holds a ", arm_task_name(a.task), " arm, not ", o.task);
      PE_CHECK(arm_condition_name(a.condition) == o.condition, c.path, " holds a decoder trained with --condition ",
               arm_condition_name(a.condition), ", not ", o.condition, " (use another --out)");
      model = model_from_checkpoint(c, dev);
      arm = std::move(a);
    });
    resumed = ck != nullptr;
  }
  if (resumed) {
    std::printf("resuming from %s (step %lld)\n", ck->path.c_str(), (long long)ck->progress.step);
  } else {
    ck = std::make_unique<LoadedCheckpoint>(load_checkpoint_file(o.from_checkpoint));
    model = model_from_checkpoint(*ck, dev);
    PE_CHECK(o.condition != "imputed" || ck->meta.contains("converted_from"), "--condition imputed reads the "
             "embedding the conversion MLP imputes, and ", o.from_checkpoint, " holds untrained conversion MLPs: "
             "train them first (`protst convert --checkpoint ", o.from_checkpoint, " ... --output with_conversion."
             "safetensors`) and start from that checkpoint");
  }
  const ArmCondition cond = parse_arm_condition(o.condition);
  BertTokenizer tok = tokenizer_from_checkpoint(*ck);
  std::vector<std::string> vocab = ck->vocab;
  while (!vocab.empty() && vocab.back().empty()) vocab.pop_back();
  const int64_t max_text = std::min(o.max_text_len, model->config().text.max_position_embeddings);
  if (!resumed) {
    ArmSizes s;
    s.layers = o.decoder_layers;
    s.hidden = o.decoder_hidden;
    s.heads = o.decoder_heads;
    // Room for the longest target: the text cap, or the protein cap plus start and end.
    s.max_positions = task == ArmTask::Describe ? max_text : o.max_protein_len + 2;
    s.condition = cond;
    s.prefix_length = o.prefix_length;
    Generator init(o.seed);
    arm.task = task;
    arm.decoder = std::make_unique<Decoder>(arm_decoder_config(task, *model, tok, s), init, InitSpec{DType::F32, dev});
  }
  Decoder& dec = *arm.decoder;
  // The encoder that reads the conditioning side: frozen (ratio 0, the default) or fine-tuned.
  const std::string enc_prefix = task == ArmTask::Describe ? "protein_model." : "text_model.";
  model->params().set_trainable("", false);
  const bool tune_encoder = o.encoder_lr_ratio > 0;
  if (tune_encoder) model->params().set_trainable(enc_prefix, true);

  PairDataset train_ds = load_pair_split(data.train_path, o.descriptions, tok, max_text, "train");
  PairDataset test_ds;
  if (!data.test_path.empty()) test_ds = load_pair_split(data.test_path, o.descriptions, tok, max_text, "test");
  PairDataset eval_ds = test_ds;
  if (o.eval_subset > 0 && int64_t(eval_ds.items.size()) > o.eval_subset) eval_ds.items.resize(size_t(o.eval_subset));

  AdamOptions ao;
  ao.lr = o.lr;
  ao.weight_decay = o.weight_decay;
  ao.decoupled = o.adamw;
  std::vector<ParamGroup> groups = {{dec.params().parameters(), 1.0, true}};
  if (tune_encoder) groups.push_back({model->params().parameters(enc_prefix), o.encoder_lr_ratio, true});
  Adam opt(groups, ao);
  std::vector<Tensor> all_params;
  for (const ParamGroup& g : groups) all_params.insert(all_params.end(), g.params.begin(), g.params.end());
  TrainProgress prog;
  if (resumed) {
    opt.load_state(ck->optim, ck->meta.value("adam_step", int64_t(0)));
    prog = ck->progress;
  }
  BatchOptions bo;
  bo.batch_size = o.batch_size;
  bo.seed = o.seed;
  std::vector<std::vector<int64_t>> batches = epoch_batches(train_ds, prog.epoch, bo);
  PE_CHECK(!batches.empty(), "training set smaller than one batch");
  const int64_t total = total_steps(o.steps, o.epochs, int64_t(batches.size()), o.grad_accum);
  int64_t n_dec = 0;
  for (const Tensor& p : dec.params().parameters()) n_dec += p.numel();
  const char* conditioning =
      cond == ArmCondition::Cross ? "cross-attention to the encoder's hidden states;"
      : cond == ArmCondition::Prefix
          ? (task == ArmTask::Describe ? "prefix from the protein's ProtST embedding;" : "prefix from the text's ProtST embedding;")
          : (task == ArmTask::Describe ? "prefix from the text's ProtST embedding (trained on the real text's, evaluated on "
                                         "protein_to_text of the protein's);"
                                       : "prefix from the protein's ProtST embedding (trained on the real protein's, "
                                         "evaluated on text_to_protein of the text's);");
  std::printf("%s arm: decoder %.2fM parameters (%lld layers, width %lld, %lld heads, vocabulary %lld), %s %s encoder "
              "%s, on %s\n",
              arm_task_name(task), double(n_dec) / 1e6, (long long)dec.config().num_layers,
              (long long)dec.config().hidden_size, (long long)dec.config().num_heads, (long long)dec.config().vocab_size,
              conditioning, task == ArmTask::Describe ? "protein" : "text",
              tune_encoder ? ("fine-tuned at lr x " + std::to_string(o.encoder_lr_ratio)).c_str() : "frozen",
              device_summary(dev).c_str());
  std::printf("training: %lld steps of %lld x %lld pairs, %zu batches per epoch, lr %g (%s, warm-up %lld)\n",
              (long long)total, (long long)o.batch_size, (long long)o.grad_accum, batches.size(), o.lr,
              o.schedule.c_str(), (long long)o.warmup);

  json arm_meta = {{"task", arm_task_name(task)},
                   {"condition", arm_condition_name(cond)},
                   {"config", json::parse(dec.config().to_json())},
                   {"from_checkpoint", resumed ? ck->meta.at("decoder").value("from_checkpoint", std::string())
                                               : o.from_checkpoint},
                   {"from_step", resumed ? ck->meta.at("decoder").value("from_step", int64_t(0)) : ck->progress.step},
                   {"encoder_lr_ratio", o.encoder_lr_ratio}};
  json meta = ck->meta;  // the ProtST model's own metadata (train options, tokenizer switches) travels along
  for (const char* k : {"format", "config", "progress", "adam_step", "text_frozen"}) meta.erase(k);
  meta["decoder"] = arm_meta;
  meta["arm_train_options"] = {{"seed", o.seed}, {"batch-size", o.batch_size}, {"lr", o.lr}, {"train", data.train_path}};

  const std::string metrics_path = o.out + "/metrics.jsonl";
  truncate_metrics(metrics_path, prog.step);
  std::ofstream metrics(metrics_path, std::ios::app);
  auto plot = [&] {
    try {
      plot_metrics_jsonl(metrics_path, o.out + "/curves.png",
                         {{"next-token loss", {"loss", "eval_loss"}},
                          {"next-token accuracy", {"accuracy", "eval_accuracy"}},
                          {"tokens / s", {"tokens_per_s"}}},
                         std::string("protst train --task ") + arm_task_name(task) + ": " + o.out);
    } catch (const Error& e) {
      std::printf("warning: could not draw %s/curves.png: %s\n", o.out.c_str(), e.what());
    }
  };
  auto save = [&] {
    std::vector<Tensor> ts;
    for (const auto& nt : named_tensors(dec.params())) ts.push_back(nt.second);
    PE_CHECK(!backend_for(dev).any_nonfinite(ts), "the decoder's weights hold NaN or infinite values at step ",
             prog.step, ": no checkpoint is written (lower --lr or set --clip)");
    const std::string path = ckdir + "/step-" + std::to_string(prog.step) + ".safetensors";
    save_checkpoint(path, *model, &opt, prog, vocab, meta, named_tensors(dec.params()));
    prune_checkpoints(ckdir, o.keep);
    std::printf("saved %s\n", path.c_str());
  };

  auto t_start = Clock::now();
  const double seconds_before = prog.seconds;
  const int64_t step_before = prog.step;
  int64_t tokens_window = 0, consecutive_skipped = 0;
  auto t_window = Clock::now();
  while (prog.step < total) {
    double loss_sum = 0, acc_sum = 0;
    bool finite = true;
    for (int64_t micro = 0; micro < o.grad_accum; ++micro) {
      if (prog.batch_in_epoch >= int64_t(batches.size())) {
        ++prog.epoch;
        prog.batch_in_epoch = 0;
        batches = epoch_batches(train_ds, prog.epoch, bo);
      }
      ArmBatch b = make_arm_batch(task, cond, *model, train_ds, batches[size_t(prog.batch_in_epoch)],
                                  o.max_protein_len, tok, dev, tune_encoder, /*real_target=*/true);
      ++prog.batch_in_epoch;
      DecoderLoss l = dec.loss(b.targets, b.memory, b.memory_mask);
      const double lv = l.loss.item();
      if (!std::isfinite(lv)) {
        finite = false;
        continue;
      }
      mul(l.loss, 1.0 / double(o.grad_accum)).backward();
      loss_sum += lv / double(o.grad_accum);
      acc_sum += l.accuracy / double(o.grad_accum);
      prog.tokens += b.target_tokens + b.source_tokens;
      tokens_window += b.target_tokens + b.source_tokens;
    }
    if (finite && grads_nonfinite(all_params)) finite = false;
    if (!finite) {
      ++prog.skipped_steps;
      opt.zero_grad();
      ++prog.step;
      std::printf("step %lld: non-finite loss or gradient, step skipped\n", (long long)prog.step);
      PE_CHECK(++consecutive_skipped < o.max_skipped_steps, "training stopped at step ", prog.step, ": ",
               consecutive_skipped, " consecutive non-finite steps (--max-skipped-steps ", o.max_skipped_steps, ")");
      continue;
    }
    consecutive_skipped = 0;
    const double gnorm = clip_grad_norm(all_params, o.clip);
    const double lr = lr_at(prog.step, total, o.warmup, o.lr, o.schedule, o.min_lr_ratio);
    opt.set_lr(lr);
    opt.step();
    opt.zero_grad();
    ++prog.step;
    prog.seconds = seconds_before + std::chrono::duration<double>(Clock::now() - t_start).count();
    const bool last = prog.step == total;
    if (prog.step % o.log_every == 0 || last || prog.step == 1) {
      const double dt = std::chrono::duration<double>(Clock::now() - t_window).count();
      const double tps = dt > 0 ? double(tokens_window) / dt : 0;
      const double per_step = (prog.seconds - seconds_before) / double(std::max<int64_t>(1, prog.step - step_before));
      std::printf("step %lld/%lld | loss %.4f (ppl %.1f) | acc %.3f | lr %.2e | |g| %.2f | %.0f tok/s | ETA %s\n",
                  (long long)prog.step, (long long)total, loss_sum, std::exp(std::min(loss_sum, 50.0)), acc_sum, lr,
                  gnorm, tps, fmt_duration(per_step * double(total - prog.step)).c_str());
      std::fflush(stdout);
      metrics << json({{"step", prog.step}, {"epoch", prog.epoch}, {"loss", loss_sum}, {"accuracy", acc_sum},
                       {"lr", lr}, {"grad_norm", gnorm}, {"tokens_per_s", tps}, {"tokens", prog.tokens},
                       {"seconds", prog.seconds}})
                     .dump()
              << "\n"
              << std::flush;
      tokens_window = 0;
      t_window = Clock::now();
    }
    if (o.eval_every > 0 && !eval_ds.items.empty() && prog.step % o.eval_every == 0 && !last) {
      HeldOut h =
          held_out_loss(task, cond, *model, dec, eval_ds, tok, o.max_protein_len, std::max<int64_t>(o.batch_size, 32), dev);
      std::printf("eval @ step %lld: held-out loss %.4f (ppl %.1f), next-token accuracy %.3f over %lld tokens\n",
                  (long long)prog.step, h.loss, std::exp(std::min(h.loss, 50.0)), h.accuracy, (long long)h.tokens);
      metrics << json({{"step", prog.step}, {"eval_loss", h.loss}, {"eval_accuracy", h.accuracy}}).dump() << "\n"
              << std::flush;
    }
    if ((o.save_every > 0 && prog.step % o.save_every == 0) || last) {
      save();
      plot();
    }
  }

  // ---- held-out: teacher-forced loss, and greedy generations next to their references
  if (!test_ds.items.empty()) {
    HeldOut h =
        held_out_loss(task, cond, *model, dec, eval_ds, tok, o.max_protein_len, std::max<int64_t>(o.batch_size, 32), dev);
    std::printf("held-out (%zu pairs): loss %.4f (ppl %.1f), next-token accuracy %.3f\n", eval_ds.items.size(), h.loss,
                std::exp(std::min(h.loss, 50.0)), h.accuracy);
    HeldOut h_real;  // imputed: the decoder given the real target's embedding (oracle; what it trained on)
    if (cond == ArmCondition::Imputed) {
      h_real = held_out_loss(task, cond, *model, dec, eval_ds, tok, o.max_protein_len,
                             std::max<int64_t>(o.batch_size, 32), dev, /*real_target=*/true);
      std::printf("held-out, given the real %s's embedding instead of the imputed one (oracle): loss %.4f (ppl %.1f), "
                  "next-token accuracy %.3f\n",
                  task == ArmTask::Describe ? "text" : "protein", h_real.loss, std::exp(std::min(h_real.loss, 50.0)),
                  h_real.accuracy);
    }
    metrics << json({{"step", prog.step}, {"eval_loss", h.loss}, {"eval_accuracy", h.accuracy}, {"final", true}}).dump()
            << "\n"
            << std::flush;
    const int64_t n = std::min<int64_t>(o.eval_generate, int64_t(test_ds.items.size()));
    json report = {{"task", arm_task_name(task)}, {"condition", arm_condition_name(cond)}, {"step", prog.step},
                   {"held_out_loss", h.loss}, {"held_out_accuracy", h.accuracy},
                   {"held_out_pairs", eval_ds.items.size()}};
    if (cond == ArmCondition::Imputed)
      report["real_target"] = {{"held_out_loss", h_real.loss}, {"held_out_accuracy", h_real.accuracy}};
    if (n > 0) {
      GenerateOptions go;
      arm_generation_tokens(task, dec.config(), tok, go);
      go.max_new_tokens = dec.config().max_positions - 1;
      TextWriter samples(o.out + "/samples.jsonl");
      auto t0 = Clock::now();
      int64_t generated = 0;
      std::vector<std::string> hyps, refs, hyps_real;
      for (int64_t i0 = 0; i0 < n; i0 += 16) {
        std::vector<int64_t> idx;
        for (int64_t i = i0; i < std::min(n, i0 + 16); ++i) idx.push_back(i);
        ArmBatch b = make_arm_batch(task, cond, *model, test_ds, idx, o.max_protein_len, tok, dev, false);
        auto session = dec.session(b.memory, b.memory_mask);
        auto out = generate(*session, go);
        std::vector<std::vector<Generated>> out_real;
        if (cond == ArmCondition::Imputed) {
          ArmBatch br = make_arm_batch(task, cond, *model, test_ds, idx, o.max_protein_len, tok, dev, false, true);
          auto sr = dec.session(br.memory, br.memory_mask);
          out_real = generate(*sr, go);
        }
        for (size_t r = 0; r < idx.size(); ++r) {
          const Example& e = test_ds.items[size_t(idx[r])];
          generated += int64_t(out[r][0].tokens.size()) + 1;
          refs.push_back(arm_decode(task, arm_target(task, e, o.max_protein_len), tok));
          hyps.push_back(arm_decode(task, out[r][0].tokens, tok));
          json line = {{"id", e.id}, {"reference", refs.back()}, {"generated", hyps.back()}};
          if (!out_real.empty()) {
            hyps_real.push_back(arm_decode(task, out_real[r][0].tokens, tok));
            line["generated_from_real_target"] = hyps_real.back();
          }
          samples.write_line(line.dump());
        }
      }
      samples.close();
      const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
      std::printf("wrote %s/samples.jsonl: %lld greedy generations for held-out pairs (%.0f tokens/s)\n", o.out.c_str(),
                  (long long)n, secs > 0 ? double(generated) / secs : 0.0);
      if (task == ArmTask::Describe) {
        // The most frequent training description, as every answer: the floor a describer must beat.
        std::map<std::string, int64_t> counts;
        for (const Example& e : train_ds.items) ++counts[arm_decode(task, arm_target(task, e, o.max_protein_len), tok)];
        std::string most_frequent;
        int64_t best = -1;
        for (const auto& [text, c] : counts)
          if (c > best) best = c, most_frequent = text;
        const std::vector<std::string> mf(hyps.size(), most_frequent);
        // Nearest neighbour: the description of the training protein closest to the test protein in
        // the ProtST joint space (cosine of the L2-normalised protein embeddings).
        EvalOptions eo;
        eo.device = dev;
        eo.max_protein_len = o.max_protein_len;
        eo.batch_size = std::max<int64_t>(o.batch_size, 32);
        std::vector<std::vector<float>> ptrain, ttrain, ptest, ttest;
        std::vector<int64_t> gtrain, gtest;
        PairDataset test_head = test_ds;
        test_head.items.resize(size_t(n));
        auto te0 = Clock::now();
        embed_dataset(*model, train_ds, tok, eo, ptrain, ttrain, gtrain);
        embed_dataset(*model, test_head, tok, eo, ptest, ttest, gtest);
        std::vector<std::string> nn;
        for (const auto& q : ptest) {
          size_t best_j = 0;
          double best_s = -1e300;
          for (size_t j = 0; j < ptrain.size(); ++j) {
            double dot = 0;
            for (size_t k = 0; k < q.size(); ++k) dot += double(q[k]) * double(ptrain[j][k]);
            if (dot > best_s) best_s = dot, best_j = j;
          }
          nn.push_back(arm_decode(task, arm_target(task, train_ds.items[best_j], o.max_protein_len), tok));
        }
        std::printf("nearest-neighbour baseline: %zu training proteins embedded in %.1f s\n", ptrain.size(),
                    std::chrono::duration<double>(Clock::now() - te0).count());
        const BleuScore bleu = corpus_bleu(hyps, refs), bleu_mf = corpus_bleu(mf, refs), bleu_nn = corpus_bleu(nn, refs);
        const double rouge = mean_rouge_l_f1(hyps, refs), rouge_mf = mean_rouge_l_f1(mf, refs),
                     rouge_nn = mean_rouge_l_f1(nn, refs);
        // GO-term recall: how many of the true GO term names (parsed from the full held-out text, not
        // the --max-text-len reference) a description names (whole words, rouge tokens, no stemming).
        std::map<std::string, std::string> full_text;
        {
          ReadStats st;
          for (const ProteinRecord& r : read_pairs(data.test_path, o.descriptions, st)) full_text.emplace(r.id, r.text);
        }
        struct Recall {
          size_t found = 0, total = 0;
          double mean = 0;  // per-protein recall, averaged over proteins with at least one term
          int64_t proteins = 0;
        };
        auto recall_of = [&](const std::vector<std::string>& h) {
          Recall r;
          for (size_t i = 0; i < h.size(); ++i) {
            auto it = full_text.find(test_ds.items[i].id);
            if (it == full_text.end()) continue;
            const TermRecall tr = term_recall(h[i], go_term_names(it->second));
            if (tr.total == 0) continue;
            r.found += tr.found, r.total += tr.total, r.mean += tr.recall, ++r.proteins;
          }
          if (r.proteins > 0) r.mean /= double(r.proteins);
          return r;
        };
        const Recall tr_dec = recall_of(hyps), tr_nn = recall_of(nn), tr_mf = recall_of(mf);
        const std::string dec_name = std::string("decoder (greedy, ") + arm_condition_name(cond) + ")";
        auto micro = [](const Recall& r) { return r.total ? double(r.found) / double(r.total) : 0.0; };
        std::printf("held-out descriptions (%lld proteins; sacrebleu 13a corpus BLEU-4, rouge-score ROUGE-L F1 mean; "
                    "GO-term recall: true GO term names named, all proteins' terms pooled / mean per protein):\n"
                    "  %-34s BLEU %6.2f  ROUGE-L %.4f  GO-term recall %.4f / %.4f\n"
                    "  %-34s BLEU %6.2f  ROUGE-L %.4f  GO-term recall %.4f / %.4f\n"
                    "  %-34s BLEU %6.2f  ROUGE-L %.4f  GO-term recall %.4f / %.4f\n",
                    (long long)n, dec_name.c_str(), bleu.score, rouge, micro(tr_dec), tr_dec.mean,
                    "nearest training protein (ProtST)", bleu_nn.score, rouge_nn, micro(tr_nn), tr_nn.mean,
                    "most frequent description", bleu_mf.score, rouge_mf, micro(tr_mf), tr_mf.mean);
        // The ceiling at this --max-text-len: the reference itself, cut to the tokens a describer can write.
        const Recall tr_ref = recall_of(refs);
        std::printf("  %-34s %26s  GO-term recall %.4f / %.4f\n", "reference cut at --max-text-len", "", micro(tr_ref),
                    tr_ref.mean);
        std::printf("  (%lld proteins with GO terms, %zu true term names)\n", (long long)tr_dec.proteins, tr_dec.total);
        auto recall_json = [&](const Recall& r) {
          return json({{"pooled", micro(r)}, {"mean_per_protein", r.mean}, {"found", r.found}, {"terms", r.total},
                       {"proteins", r.proteins}});
        };
        report["generated"] = n;
        report["decoder"] = {{"bleu", bleu.score}, {"rouge_l", rouge}, {"go_term_recall", recall_json(tr_dec)}};
        report["nearest_neighbour"] = {{"bleu", bleu_nn.score}, {"rouge_l", rouge_nn}, {"go_term_recall", recall_json(tr_nn)}};
        report["most_frequent"] = {{"bleu", bleu_mf.score}, {"rouge_l", rouge_mf}, {"go_term_recall", recall_json(tr_mf)},
                                   {"text", most_frequent}};
        report["reference_cut"] = {{"go_term_recall", recall_json(tr_ref)}, {"max_text_len", max_text}};
        if (cond == ArmCondition::Imputed) {
          // The same decoder given the real text's embedding: the ceiling the imputation can reach
          // (an oracle: the text is what a describer lacks).
          const BleuScore bleu_real = corpus_bleu(hyps_real, refs);
          const double rouge_real = mean_rouge_l_f1(hyps_real, refs);
          const Recall tr_real = recall_of(hyps_real);
          std::printf("  %-34s BLEU %6.2f  ROUGE-L %.4f  GO-term recall %.4f / %.4f\n",
                      "same decoder, real text embedding", bleu_real.score, rouge_real, micro(tr_real), tr_real.mean);
          report["decoder_real_target"] = {{"bleu", bleu_real.score}, {"rouge_l", rouge_real},
                                           {"go_term_recall", recall_json(tr_real)}};
        }
      } else {
        double len = 0;
        for (const std::string& x : hyps) len += double(x.size());
        double ref_len = 0;
        for (const std::string& x : refs) ref_len += double(x.size());
        std::printf("held-out designs: mean length %.1f residues (references %.1f)\n", len / double(hyps.size()),
                    ref_len / double(refs.size()));
        report["generated"] = n;
        report["mean_length"] = len / double(hyps.size());
        report["reference_mean_length"] = ref_len / double(refs.size());
      }
    }
    if (task == ArmTask::Design && o.eval_design_prompts > 0) {
      ReadStats st_train, st_test;
      const std::vector<ProteinRecord> train_recs = read_pairs(data.train_path, o.descriptions, st_train);
      const std::vector<ProteinRecord> test_recs = read_pairs(data.test_path, o.descriptions, st_test);
      DesignEvalOptions de;
      de.prompts = o.eval_design_prompts;
      de.per_prompt = o.eval_design_per_prompt;
      de.seed = o.seed;
      de.judge_checkpoint = o.judge_checkpoint;
      de.mmseqs_cache = o.go_cache;
      de.out_dir = o.out;
      de.max_protein_len = o.max_protein_len;
      de.max_text_len = max_text;
      de.batch_size = std::max<int64_t>(o.batch_size, 16);
      de.device = dev;
      const std::string from = arm_meta.value("from_checkpoint", std::string());
      // The run's checkpoints are written: an evaluation that cannot run (too few held-out prompts)
      // is reported, and eval.json still written, rather than failing the run at its end.
      try {
        report["design_evaluation"] = evaluate_designs({model.get(), &tok, &dec, from, cond}, train_recs, test_recs, de);
      } catch (const Error& e) {
        std::printf("design evaluation not done: %s\n", e.what());
        report["design_evaluation"] = {{"error", e.what()}};
      }
    }
    write_text_atomic(o.out + "/eval.json", report.dump(2) + "\n");
  }
  plot();
}

}  // namespace pe
