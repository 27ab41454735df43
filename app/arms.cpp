#include "app/arms.h"

#include <algorithm>

#include "autograd/graph.h"
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

DecoderConfig arm_decoder_config(ArmTask task, const ProtSTModel& model, const BertTokenizer& tok, const ArmSizes& s) {
  DecoderConfig c;
  c.hidden_size = s.hidden;
  c.num_layers = s.layers;
  c.num_heads = s.heads;
  c.intermediate_size = 4 * s.hidden;
  c.max_positions = s.max_positions;
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

ArmBatch make_arm_batch(ArmTask task, const ProtSTModel& model, const PairDataset& ds, const std::vector<int64_t>& idx,
                        int64_t max_protein_len, const BertTokenizer& tok, Device dev, bool encoder_grad) {
  const int64_t B = int64_t(idx.size());
  ArmBatch b;
  // Source side (the encoder's input) and target side (start + tokens + end, right-padded).
  std::vector<std::vector<int64_t>> src(static_cast<size_t>(B)), tgt(static_cast<size_t>(B));
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
  std::vector<int64_t> smask;
  auto [sflat, Ls] = pad(src, pad_src, &smask);
  auto [tflat, Lt] = pad(tgt, pad_tgt, nullptr);
  Tensor ids = Tensor::from_vector(sflat, {B, Ls}).to(dev);
  Tensor mask = Tensor::from_vector(smask, {B, Ls}).to(dev);
  for (int64_t m : smask) b.source_tokens += m;
  for (const auto& t : tgt) b.target_tokens += int64_t(t.size()) - 1;
  {
    std::unique_ptr<NoGradGuard> ng;
    if (!encoder_grad) ng = std::make_unique<NoGradGuard>();
    b.memory = task == ArmTask::Describe ? model.protein_hidden(ids, mask) : model.text_hidden(ids, mask);
  }
  b.memory_mask = mask;
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
