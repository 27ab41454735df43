#include "app/model_io.h"

#include <dirent.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "app/device.h"
#include "models/checkpoint.h"

namespace pe {

using json = nlohmann::json;

json protst_config_to_json(const ProtSTConfig& c) {
  return {{"protein", json::parse(c.protein.to_json())},
          {"text", json::parse(c.text.to_json())},
          {"text_add_pooling_layer", c.text.add_pooling_layer},
          {"embed_dim", c.embed_dim},
          {"fusion_heads", c.fusion_heads},
          {"fusion_layers", c.fusion_layers},
          {"fusion_batch_norm", c.fusion_batch_norm},
          {"logit_scale_init", c.logit_scale_init},
          {"logit_scale_max", c.logit_scale_max},
          {"w_mlm", c.w_mlm},
          {"w_mmp", c.w_mmp},
          {"w_cl", c.w_cl},
          {"conversion_hidden", c.conversion_hidden}};
}

ProtSTConfig protst_config_from_json(const json& j, const std::string& source) {
  try {
    ProtSTConfig c;
    c.protein = EsmConfig::from_json_text(j.at("protein").dump(), source + " (protein config)");
    c.text = BertConfig::from_json_text(j.at("text").dump(), source + " (text config)");
    c.text.add_pooling_layer = j.value("text_add_pooling_layer", true);
    c.embed_dim = j.at("embed_dim");
    c.fusion_heads = j.at("fusion_heads");
    c.fusion_layers = j.at("fusion_layers");
    c.fusion_batch_norm = j.at("fusion_batch_norm");
    c.logit_scale_init = j.at("logit_scale_init");
    c.logit_scale_max = j.at("logit_scale_max");
    c.w_mlm = j.at("w_mlm");
    c.w_mmp = j.at("w_mmp");
    c.w_cl = j.value("w_cl", 1.0);  // absent in checkpoints written before it existed
    c.conversion_hidden = j.at("conversion_hidden");
    validate_protst_config(c, source);
    return c;
  } catch (const json::exception& e) {
    PE_FAIL(source, ": model configuration is incomplete or malformed: ", e.what());
  }
}

static uint32_t metadata_crc(const std::string& meta, const std::string& crc) {
  uLong c = crc32(0L, reinterpret_cast<const Bytef*>(meta.data()), uInt(meta.size()));
  return uint32_t(crc32(c, reinterpret_cast<const Bytef*>(crc.data()), uInt(crc.size())));
}

static uint32_t tensor_crc(const Tensor& t) {
  Tensor h = t.detach().to(Device::cpu()).contiguous();
  return uint32_t(crc32(0L, static_cast<const Bytef*>(h.raw_data()), uInt(h.nbytes())));
}

static Tensor vocab_tensor(const std::vector<std::string>& vocab) {
  std::string vocab_text;
  for (const auto& v : vocab) vocab_text += v + "\n";
  Tensor vt = Tensor::empty({int64_t(vocab_text.size())}, DType::U8);
  if (!vocab_text.empty()) std::copy(vocab_text.begin(), vocab_text.end(), vt.data<char>());
  return vt;
}

// The one writer of checkpoint files: tensors, metadata and their checksums.
static void write_checkpoint(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                             const json& meta) {
  json crc = json::object();
  for (const auto& [n, t] : tensors) crc[n] = tensor_crc(t);
  std::string m = meta.dump(), c = crc.dump();
  // The metadata (configuration, step, data position, options) and the tensor checksums have a
  // checksum of their own: an edited step or data position is detected like a damaged tensor.
  save_tensors(path, tensors, {{"protst", m}, {"crc32", c}, {"metadata_crc32", std::to_string(metadata_crc(m, c))}});
}

void write_checkpoint_file(const std::string& path, const LoadedCheckpoint& ck) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [n, t] : ck.model) tensors.emplace_back("model/" + n, t);
  for (const auto& [k, t] : ck.optim) tensors.emplace_back("optim/" + k, t);
  tensors.emplace_back("text_vocab", vocab_tensor(ck.vocab));
  write_checkpoint(path, tensors, ck.meta);
}

void save_checkpoint(const std::string& path, const ProtSTModel& model, const Adam* opt, const TrainProgress& prog,
                     const std::vector<std::string>& vocab, const json& extra_meta,
                     const std::vector<std::pair<std::string, Tensor>>& decoder) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [n, t] : named_tensors(model.params())) tensors.emplace_back("model/" + n, t);
  for (const auto& [n, t] : decoder) tensors.emplace_back("decoder/" + n, t);
  if (opt)
    for (const auto& [k, t] : opt->state()) tensors.emplace_back("optim/" + k, t);
  tensors.emplace_back("text_vocab", vocab_tensor(vocab));
  json meta = extra_meta;
  meta["format"] = "protst-engine checkpoint v1";
  meta["config"] = protst_config_to_json(model.config());
  meta["progress"] = {{"step", prog.step},   {"epoch", prog.epoch},          {"batch_in_epoch", prog.batch_in_epoch},
                      {"tokens", prog.tokens}, {"skipped_steps", prog.skipped_steps}, {"seconds", prog.seconds}};
  meta["adam_step"] = opt ? opt->steps() : 0;
  meta["text_frozen"] = model.text_frozen();
  write_checkpoint(path, tensors, meta);
}

LoadedCheckpoint load_checkpoint_file(const std::string& path) {
  SafetensorsFile f(path);
  LoadedCheckpoint ck;
  ck.path = path;
  auto it = f.metadata().find("protst");
  auto ic = f.metadata().find("crc32");
  PE_CHECK(it != f.metadata().end() && ic != f.metadata().end(), path,
           ": not a protst-engine training checkpoint (no 'protst'/'crc32' metadata)");
  auto im = f.metadata().find("metadata_crc32");
  if (im == f.metadata().end()) {  // written before metadata checksums: still readable, not verifiable
    std::fprintf(stderr, "warning: %s has no metadata checksum (an older checkpoint); its step, data position and "
                         "configuration cannot be verified\n", path.c_str());
  } else {
    PE_CHECK(im->second == std::to_string(metadata_crc(it->second, ic->second)), path,
             ": the metadata (configuration, step, data position, options) fails its CRC-32 check: the file was "
             "damaged or edited; resume from an earlier checkpoint");
  }
  json crc;
  try {
    ck.meta = json::parse(it->second);
    crc = json::parse(ic->second);
  } catch (const json::exception& e) {
    PE_FAIL(path, ": damaged checkpoint metadata: ", e.what());
  }
  SafetensorsCheckpoint one(path);
  for (const SafetensorsEntry& e : f.entries()) {
    Tensor t = read_tensor(one, e.name);
    PE_CHECK(crc.contains(e.name), path, ": tensor '", e.name, "' has no checksum (damaged checkpoint)");
    PE_CHECK(tensor_crc(t) == crc[e.name].get<uint32_t>(), path, ": tensor '", e.name,
             "' fails its CRC-32 check: the file is damaged; resume from an earlier checkpoint");
    if (e.name.rfind("model/", 0) == 0) ck.model[e.name.substr(6)] = t;
    else if (e.name.rfind("optim/", 0) == 0) ck.optim[e.name.substr(6)] = t;
    else if (e.name.rfind("decoder/", 0) == 0) ck.decoder[e.name.substr(8)] = t;
    else if (e.name == "text_vocab") {
      std::string s(t.data<char>(), size_t(t.numel()));
      size_t a = 0;
      while (a < s.size()) {
        size_t b = s.find('\n', a);
        if (b == std::string::npos) b = s.size();
        ck.vocab.push_back(s.substr(a, b - a));
        a = b + 1;
      }
    }
  }
  PE_CHECK(crc.size() == f.entries().size(), path, ": ", crc.size() - f.entries().size(),
           " checksummed tensor(s) are missing (damaged checkpoint)");
  try {
    ck.config = protst_config_from_json(ck.meta.at("config"), path);
    const json& p = ck.meta.at("progress");
    ck.progress.step = p.at("step");
    ck.progress.epoch = p.at("epoch");
    ck.progress.batch_in_epoch = p.at("batch_in_epoch");
    ck.progress.tokens = p.at("tokens");
    ck.progress.skipped_steps = p.at("skipped_steps");
    ck.progress.seconds = p.at("seconds");
  } catch (const json::exception& e) {
    PE_FAIL(path, ": malformed checkpoint metadata: ", e.what());
  }
  PE_CHECK(ck.progress.step >= 0 && ck.progress.epoch >= 0 && ck.progress.batch_in_epoch >= 0, path,
           ": malformed checkpoint metadata: negative step or data position");
  return ck;
}

std::unique_ptr<ProtSTModel> model_from_checkpoint(const LoadedCheckpoint& ck, Device dev, DType dtype) {
  Generator gen(0);
  auto model = std::make_unique<ProtSTModel>(ck.config, gen, InitSpec{dtype, dev});
  for (const std::string& n : model->params().names()) {
    auto it = ck.model.find(n);
    PE_CHECK(it != ck.model.end(), ck.path, ": missing model tensor '", n, "'");
    model->params().assign(n, it->second);
  }
  PE_CHECK(ck.model.size() == model->params().names().size(), ck.path, ": holds ", ck.model.size(),
           " model tensors, the configuration defines ", model->params().names().size());
  model->freeze_text_encoder(ck.meta.value("text_frozen", true));
  return model;
}

BertTokenizer tokenizer_from_checkpoint(const LoadedCheckpoint& ck) {
  std::vector<std::string> v = ck.vocab;
  while (!v.empty() && v.back().empty()) v.pop_back();
  // Casing and accent switches of the text tokenizer (absent in checkpoints written before they were
  // recorded: the uncased defaults those runs used).
  BertOptions opt;
  if (ck.meta.contains("text_tokenizer")) opt = BertOptions::from_json(ck.meta["text_tokenizer"], ck.path + " (text_tokenizer)");
  return BertTokenizer(v, ck.path + " (text_vocab)", opt);
}

std::vector<std::string> list_checkpoints(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      long long step;
      char tail[32];
      if (std::sscanf(n.c_str(), "step-%lld.safetenso%31s", &step, tail) == 2 && std::string(tail) == "rs")
        found.emplace_back(step, dir + "/" + n);
    }
    ::closedir(d);
  }
  std::sort(found.begin(), found.end(), [](auto& a, auto& b) { return a.first > b.first; });
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

void prune_checkpoints(const std::string& dir, int64_t keep) {
  std::vector<std::string> all = list_checkpoints(dir);
  for (size_t i = size_t(std::max<int64_t>(keep, 1)); i < all.size(); ++i) std::remove(all[i].c_str());
}

std::vector<std::string> read_vocab_lines(const std::string& path) {
  std::ifstream f(path);
  PE_CHECK(f.good(), "cannot read vocabulary ", path);
  std::vector<std::string> v;
  std::string line;
  while (std::getline(f, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    v.push_back(line);
  }
  return v;
}

OpenedModel open_model(const std::string& checkpoint, const std::string& device, int64_t batch_size,
                       int64_t max_protein_len, int64_t max_text_len) {
  OpenedModel m;
  m.eo.device = resolve_device(device);
  m.eo.batch_size = batch_size;
  m.eo.max_protein_len = max_protein_len;
  m.ck = load_checkpoint_file(checkpoint);
  m.model = model_from_checkpoint(m.ck, m.eo.device);
  m.tok = std::make_unique<BertTokenizer>(tokenizer_from_checkpoint(m.ck));
  m.max_text_len = std::min(max_text_len, m.ck.config.text.max_position_embeddings);
  return m;
}

}  // namespace pe
