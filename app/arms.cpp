#include "app/arms.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "app/design_eval.h"
#include "app/device.h"
#include "app/inputs.h"
#include "autograd/graph.h"
#include "data/text_io.h"
#include "data/tokenizer_esm.h"
#include "decoders/generate.h"
#include "models/checkpoint.h"

namespace pe {

ArmTask parse_arm_task(const std::string& name) {
  if (name == "describe") return ArmTask::Describe;
  if (name == "design") return ArmTask::Design;
  PE_FAIL("--task ", name, ": expected contrastive, describe or design");
}
const char* arm_task_name(ArmTask t) { return t == ArmTask::Describe ? "describe" : "design"; }

ArmCondition parse_arm_condition(const std::string& name) {
  if (name == "cross") return ArmCondition::Cross;
  if (name == "prefix") return ArmCondition::Prefix;
  if (name == "imputed") return ArmCondition::Imputed;
  PE_FAIL("--condition ", name, ": expected cross, prefix or imputed");
}
const char* arm_condition_name(ArmCondition c) {
  return c == ArmCondition::Cross ? "cross" : c == ArmCondition::Prefix ? "prefix" : "imputed";
}

DecoderConfig arm_decoder_config(ArmTask task, const ProtSTModel& model, const BertTokenizer& tok, const ArmSizes& s) {
  DecoderConfig c;
  c.hidden_size = s.hidden;
  c.num_layers = s.layers;
  c.num_heads = s.heads;
  c.intermediate_size = 4 * s.hidden;
  c.max_positions = s.max_positions;
  c.prefix_length = s.condition == ArmCondition::Cross ? 0 : s.prefix_length;
  if (task == ArmTask::Describe) {
    c.vocab_size = int64_t(tok.vocab_size());
    c.bos_id = tok.cls_id();
    c.eos_id = tok.sep_id();
    c.pad_id = tok.pad_id();
    c.memory_dim = model.config().protein.hidden_size;
  } else {
    c.vocab_size = esm::kVocabSize;
    c.bos_id = esm::kCls;
    c.eos_id = esm::kEos;
    c.pad_id = esm::kPad;
    c.memory_dim = model.config().text.hidden_size;
  }
  if (s.condition != ArmCondition::Cross) c.memory_dim = model.config().embed_dim;
  c.validate("decoder options");
  return c;
}

std::vector<int64_t> arm_target(ArmTask task, const Example& e, int64_t max_protein_len) {
  if (task == ArmTask::Describe) {
    // [CLS] ... [SEP]: the tokens between
    return std::vector<int64_t>(e.text.begin() + 1, e.text.end() - (e.text.size() >= 2 ? 1 : 0));
  }
  const size_t n = std::min(e.residues.size(), size_t(max_protein_len));
  return std::vector<int64_t>(e.residues.begin(), e.residues.begin() + int64_t(n));
}

ArmBatch make_arm_batch(ArmTask task, ArmCondition condition, const ProtSTModel& model, const PairDataset& ds,
                        const std::vector<int64_t>& idx, int64_t max_protein_len, const BertTokenizer& tok, Device dev,
                        bool encoder_grad, bool real_target) {
  const int64_t B = int64_t(idx.size());
  ArmBatch b;
  // Source side (the encoder's input), its other side (the imputed condition's real target) and the
  // decoder's target (start + tokens + end, right-padded).
  std::vector<std::vector<int64_t>> src(static_cast<size_t>(B)), other(static_cast<size_t>(B)),
      tgt(static_cast<size_t>(B));
  int64_t pad_src, pad_tgt, start, end;
  if (task == ArmTask::Describe) {
    pad_src = esm::kPad, pad_tgt = tok.pad_id(), start = tok.cls_id(), end = tok.sep_id();
  } else {
    pad_src = tok.pad_id(), pad_tgt = esm::kPad, start = esm::kCls, end = esm::kEos;
  }
  for (int64_t i = 0; i < B; ++i) {
    const Example& e = ds.items[size_t(idx[size_t(i)])];
    std::vector<int64_t> protein = {esm::kCls};
    const size_t n = std::min(e.residues.size(), size_t(max_protein_len));
    protein.insert(protein.end(), e.residues.begin(), e.residues.begin() + int64_t(n));
    protein.push_back(esm::kEos);
    std::vector<int64_t> text(e.text.begin(), e.text.end());
    std::vector<int64_t> target = arm_target(task, e, max_protein_len);
    target.insert(target.begin(), start);
    target.push_back(end);
    src[size_t(i)] = task == ArmTask::Describe ? protein : text;
    other[size_t(i)] = task == ArmTask::Describe ? text : protein;
    tgt[size_t(i)] = target;
  }
  auto pad = [](const std::vector<std::vector<int64_t>>& rows, int64_t value, std::vector<int64_t>* mask) {
    size_t L = 0;
    for (const auto& r : rows) L = std::max(L, r.size());
    std::vector<int64_t> flat(rows.size() * L, value);
    if (mask) mask->assign(rows.size() * L, 0);
    for (size_t i = 0; i < rows.size(); ++i)
      for (size_t j = 0; j < rows[i].size(); ++j) {
        flat[i * L + j] = rows[i][j];
        if (mask) (*mask)[i * L + j] = 1;
      }
    return std::make_pair(flat, int64_t(L));
  };
  // The imputed condition trains on the real target's embedding: the other side is encoded instead.
  const bool read_other = condition == ArmCondition::Imputed && real_target;
  const bool read_protein = (task == ArmTask::Describe) != read_other;
  std::vector<int64_t> smask;
  auto [sflat, Ls] = pad(read_other ? other : src, read_protein ? esm::kPad : tok.pad_id(), &smask);
  auto [tflat, Lt] = pad(tgt, pad_tgt, nullptr);
  (void)pad_src;
  Tensor ids = Tensor::from_vector(sflat, {B, Ls}).to(dev);
  Tensor mask = Tensor::from_vector(smask, {B, Ls}).to(dev);
  for (int64_t m : smask) b.source_tokens += m;
  for (const auto& t : tgt) b.target_tokens += int64_t(t.size()) - 1;
  {
    std::unique_ptr<NoGradGuard> ng;
    if (!encoder_grad) ng = std::make_unique<NoGradGuard>();
    if (condition == ArmCondition::Cross) {
      b.memory = task == ArmTask::Describe ? model.protein_hidden(ids, mask) : model.text_hidden(ids, mask);
      b.memory_mask = mask;
    } else {
      // The pooled joint-space embedding, as retrieval reads it (L2-normalised; the projections pool
      // residues without <cls>/<eos>, and tokens without [CLS]/[SEP]).
      std::vector<int64_t> inner(smask);
      for (int64_t i = 0; i < B; ++i) {
        int64_t n = 0;
        for (int64_t j = 0; j < Ls; ++j) n += smask[size_t(i * Ls + j)];
        inner[size_t(i * Ls)] = 0;
        if (n >= 1) inner[size_t(i * Ls + n - 1)] = 0;
      }
      Tensor pool = Tensor::from_vector(inner, {B, Ls}).to(dev);
      Tensor e = l2_normalize(read_protein ? model.embed_protein(ids, mask, pool) : model.embed_text(ids, mask, pool), -1);
      if (condition == ArmCondition::Imputed && !real_target)
        e = l2_normalize(task == ArmTask::Describe ? model.protein_to_text(e) : model.text_to_protein(e), -1);
      b.memory = e.view({B, 1, e.size(1)});
    }
  }
  b.targets = Tensor::from_vector(tflat, {B, Lt});
  return b;
}

std::string arm_decode(ArmTask task, const std::vector<int64_t>& ids, const BertTokenizer& tok) {
  std::vector<int32_t> v(ids.begin(), ids.end());
  return task == ArmTask::Describe ? tok.decode(v, true) : esm::decode(v, true);
}

void arm_generation_tokens(ArmTask task, const DecoderConfig& cfg, const BertTokenizer& tok, GenerateOptions& opt) {
  opt.bos_id = cfg.bos_id;
  opt.eos_id = cfg.eos_id;
  opt.allowed.clear();
  opt.banned.clear();
  if (task == ArmTask::Describe) {
    opt.banned = {tok.pad_id(), tok.cls_id(), tok.mask_id(), tok.unk_id()};
  } else {
    for (const char* aa : {"A", "R", "N", "D", "C", "Q", "E", "G", "H", "I", "L", "K", "M", "F", "P", "S", "T", "W",
                           "Y", "V"})
      opt.allowed.push_back(esm::token_id(aa));
  }
}

LoadedArm arm_from_checkpoint(const LoadedCheckpoint& ck, Device dev) {
  PE_CHECK(ck.meta.contains("decoder") && !ck.decoder.empty(), ck.path,
           ": holds no generative arm (train one with `protst train --task describe|design --from-checkpoint ...`)");
  const nlohmann::json& d = ck.meta.at("decoder");
  LoadedArm arm;
  arm.task = parse_arm_task(d.value("task", std::string()));
  arm.condition = parse_arm_condition(d.value("condition", std::string("cross")));
  DecoderConfig cfg = DecoderConfig::from_json_text(d.at("config").dump(), ck.path + " (decoder config)");
  Generator gen(0);
  arm.decoder = std::make_unique<Decoder>(cfg, gen, InitSpec{DType::F32, dev, false});
  ParamStore& ps = arm.decoder->params();
  for (const std::string& name : ps.names()) {
    auto it = ck.decoder.find(name);
    PE_CHECK(it != ck.decoder.end(), ck.path, ": decoder tensor '", name, "' is missing");
    ps.assign(name, it->second);
  }
  PE_CHECK(ck.decoder.size() == ps.names().size(), ck.path, ": ", ck.decoder.size() - ps.names().size(),
           " decoder tensor(s) the configuration does not use");
  return arm;
}

}  // namespace pe

// ------------------------------------------------------------------------------ describe / design

namespace pe {

int64_t run_arm_generation(ArmTask task, const ArmGenerateOptions& o) {
  const char* cmd = arm_task_name(task);
  PE_CHECK(!o.output.empty(), "--output must name a file");
  PE_CHECK(!o.input.empty(), "protst ", cmd, ": give the inputs with ", task == ArmTask::Design ? "--prompts" : "--input",
           task == ArmTask::Design ? " (or --evaluate with --train and --test)" : "");
  PE_CHECK(o.train.empty() && o.test.empty() && o.judge_checkpoint.empty(), "protst ", cmd,
           ": --train, --test and --judge-checkpoint belong to `protst design --evaluate`");
  PE_CHECK(o.batch_size >= 1, "--batch-size must be at least 1");
  PE_CHECK(o.max_protein_len >= 1, "--max-protein-len must be at least 1");
  Device dev = resolve_device(o.device);
  LoadedCheckpoint ck = load_checkpoint_file(o.checkpoint);
  LoadedArm arm = arm_from_checkpoint(ck, dev);
  PE_CHECK(arm.task == task, o.checkpoint, " holds a ", arm_task_name(arm.task), " arm; use `protst ",
           arm_task_name(arm.task), "` (or a checkpoint trained with --task ", cmd, ")");
  std::unique_ptr<ProtSTModel> model = model_from_checkpoint(ck, dev);
  BertTokenizer tok = tokenizer_from_checkpoint(ck);
  const Decoder& dec = *arm.decoder;

  GenerateOptions go;
  go.strategy = GenerateOptions::parse_strategy(o.strategy);
  arm_generation_tokens(task, dec.config(), tok, go);
  const int64_t room = dec.config().max_positions - 1;
  go.max_new_tokens = o.max_length > 0 ? o.max_length : room;
  PE_CHECK(go.max_new_tokens <= room, "--max-length ", o.max_length, " exceeds what the decoder's ",
           dec.config().max_positions, " positions allow (", room, " tokens after the start token)");
  go.min_new_tokens = o.min_length;
  go.temperature = o.temperature;
  go.top_k = o.top_k;
  go.top_p = o.top_p;
  go.repetition_penalty = o.repetition_penalty;
  go.num_beams = o.num_beams;
  go.length_penalty = o.length_penalty;
  go.num_return = o.num;
  go.seed = o.seed;
  go.validate(dec.config().vocab_size);

  // Inputs: proteins (FASTA) for describe, prompts (one per line) for design.
  const std::string kind = detect_input_kind(o.input, task == ArmTask::Describe ? "protein" : "text");
  std::vector<InputRecord> recs = read_inputs(o.input, kind, cmd);
  PairDataset ds;
  for (const InputRecord& r : recs) {
    Example e;
    e.id = r.id;
    if (task == ArmTask::Describe) {
      std::vector<int32_t> ids = esm::encode(r.body);
      PE_CHECK(ids.size() > 2, o.input, ": protein ", r.id, " has no residues");
      e.residues.assign(ids.begin() + 1, ids.end() - 1);
      e.text = {tok.cls_id(), tok.sep_id()};
    } else {
      PE_CHECK(r.body.find_first_not_of(" \t\r") != std::string::npos, o.input, ":", r.id,
               ": empty prompt (write one description per line)");
      std::vector<int32_t> t = tok.encode(r.body, size_t(std::min(o.max_text_len, model->config().text.max_position_embeddings)));
      e.text = t;
      e.residues = {};
    }
    ds.items.push_back(std::move(e));
  }

  TextWriter w(o.output);
  auto t0 = std::chrono::steady_clock::now();
  int64_t written = 0, tokens = 0;
  const int64_t N = int64_t(ds.items.size());
  for (int64_t i0 = 0; i0 < N; i0 += o.batch_size) {
    std::vector<int64_t> idx;
    for (int64_t i = i0; i < std::min(N, i0 + o.batch_size); ++i) idx.push_back(i);
    ArmBatch b = make_arm_batch(task, arm.condition, *model, ds, idx, o.max_protein_len, tok, dev, false);
    auto session = dec.session(b.memory, b.memory_mask);
    auto out = generate(*session, go);
    for (size_t r = 0; r < idx.size(); ++r) {
      const InputRecord& in = recs[size_t(idx[r])];
      for (size_t k = 0; k < out[r].size(); ++k) {
        const Generated& g = out[r][k];
        tokens += int64_t(g.tokens.size()) + (g.finished ? 1 : 0);
        const std::string body = arm_decode(task, g.tokens, tok);
        if (task == ArmTask::Describe) {
          w.write_line(nlohmann::json({{"id", in.id}, {"rank", k}, {"description", body}, {"logprob", g.logprob},
                                       {"finished", g.finished}})
                           .dump());
        } else {
          char head[160];
          std::snprintf(head, sizeof head, ">prompt%lld_%zu len=%zu logprob=%.3f%s", (long long)(idx[r] + 1), k,
                        body.size(), g.logprob, g.finished ? "" : " unfinished");
          w.write_line(std::string(head) + " prompt=" + in.body);
          w.write_line(body);
        }
        ++written;
      }
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (o.progress)
      std::fprintf(stderr, "\r%s: %lld/%lld inputs, %.0f tokens/s   ", cmd, (long long)std::min(N, i0 + o.batch_size),
                   (long long)N, s > 0 ? double(tokens) / s : 0.0);
  }
  w.close();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (o.progress) std::fprintf(stderr, "\n");
  std::printf("%s: wrote %lld %s for %lld inputs to %s (%s, %lld tokens in %.1f s, %.0f tokens/s)\n", cmd,
              (long long)written, task == ArmTask::Describe ? "descriptions" : "sequences", (long long)N,
              o.output.c_str(), o.strategy.c_str(), (long long)tokens, s, s > 0 ? double(tokens) / s : 0.0);
  return written;
}

void run_design_evaluation(const ArmGenerateOptions& o) {
  PE_CHECK(!o.train.empty() && !o.test.empty(),
           "protst design --evaluate needs --train and --test (the pairs the arm was trained and held out on: "
           "prompts are held-out texts that no training pair has)");
  PE_CHECK(o.input.empty(), "protst design: --prompts and --evaluate exclude each other (--evaluate takes its "
                            "prompts from --test)");
  PE_CHECK(!o.output.empty(), "--output must name the JSON report");
  PE_CHECK(o.strategy == "sample", "protst design --evaluate samples its designs (--strategy sample, the default "
                                   "here); got --strategy ", o.strategy);
  Device dev = resolve_device(o.device);
  LoadedCheckpoint ck = load_checkpoint_file(o.checkpoint);
  LoadedArm arm = arm_from_checkpoint(ck, dev);
  PE_CHECK(arm.task == ArmTask::Design, o.checkpoint, " holds a ", arm_task_name(arm.task),
           " arm; --evaluate evaluates design arms");
  std::unique_ptr<ProtSTModel> model = model_from_checkpoint(ck, dev);
  BertTokenizer tok = tokenizer_from_checkpoint(ck);
  ReadStats st_train, st_test;
  const std::vector<ProteinRecord> train = read_pairs(o.train, o.descriptions, st_train);
  const std::vector<ProteinRecord> test = read_pairs(o.test, o.descriptions, st_test);
  DesignEvalOptions de;
  de.prompts = o.eval_prompts;
  de.per_prompt = o.num;
  de.temperature = o.temperature;
  de.top_p = o.top_p;
  de.seed = o.seed;
  de.judge_checkpoint = o.judge_checkpoint;
  de.mmseqs_cache = o.go_cache;
  const std::filesystem::path parent = std::filesystem::absolute(o.output).parent_path();
  std::filesystem::create_directories(parent);
  de.out_dir = parent.string();
  de.max_protein_len = o.max_protein_len;
  de.max_text_len = o.max_text_len;
  de.batch_size = o.batch_size;
  de.device = dev;
  de.progress = o.progress;
  nlohmann::json report =
      evaluate_designs({model.get(), &tok, arm.decoder.get(), o.checkpoint, arm.condition}, train, test, de);
  report["checkpoint"] = o.checkpoint;
  report["train"] = o.train;
  report["test"] = o.test;
  write_text_atomic(o.output, report.dump(2) + "\n");
  std::printf("wrote %s and %s/designs.fasta\n", o.output.c_str(), de.out_dir.c_str());
}

}  // namespace pe
