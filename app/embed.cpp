#include "app/embed.h"
#include "app/inputs.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <numeric>

#include "app/device.h"
#include "app/model_io.h"
#include "data/fasta.h"
#include "data/text_io.h"
#include "data/tokenizer_esm.h"
#include "models/bert.h"
#include "models/checkpoint.h"
#include "models/esm.h"

namespace pe {

namespace {

using Clock = std::chrono::steady_clock;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void write_ids(const std::string& output, const std::vector<std::string>& ids) {
  TextWriter w(embed_ids_path(output));
  for (const auto& id : ids) w.write_line(id);
  w.close();
}

// Progress on stderr at most twice a second: items, tokens/s, ETA.
class Progress {
 public:
  Progress(bool on, int64_t total_items, int64_t total_tokens, const char* unit)
      : on_(on), items_(total_items), tokens_(total_tokens), unit_(unit), t0_(Clock::now()), last_(t0_) {}
  void update(int64_t items, int64_t tokens, bool final = false) {
    auto now = Clock::now();
    if (!final && std::chrono::duration<double>(now - last_).count() < 0.5) return;
    last_ = now;
    double s = std::chrono::duration<double>(now - t0_).count();
    double rate = s > 0 ? double(tokens) / s : 0;
    double eta = rate > 0 ? double(tokens_ - tokens) / rate : 0;
    if (on_)
      std::fprintf(stderr, "\rembed: %lld/%lld, %.0f %s/s, %.1f s elapsed, ETA %.0f s   %s", (long long)items,
                   (long long)items_, rate, unit_, s, eta, final ? "\n" : "");
    seconds_ = s;
  }
  double seconds() const { return seconds_; }

 private:
  bool on_;
  int64_t items_, tokens_;
  const char* unit_;
  Clock::time_point t0_, last_;
  double seconds_ = 0;
};

// ------------------------------------------------------------------ raw encoder embeddings
struct Encoder {
  std::unique_ptr<EsmModel> esm;
  std::unique_ptr<BertModel> bert;
  std::unique_ptr<BertTokenizer> tok;
  int64_t num_layers = 0, hidden = 0, pad_id = 0;
};

Encoder open_encoder(const EmbedOptions& o, const Device& dev) {
  Encoder e;
  Generator gen(0);
  InitSpec spec{DType::F32, dev, /*random_init=*/false};  // every weight is loaded next
  if (!o.protein_model.empty()) {
    EsmConfig cfg = EsmConfig::from_json_file(o.protein_model + "/config.json");
    e.esm = std::make_unique<EsmModel>(cfg, gen, spec);
    LoadReport r = e.esm->load(o.protein_model);
    std::printf("protein encoder: %s (%lld layers, hidden %lld; %zu tensors)\n", o.protein_model.c_str(),
                (long long)cfg.num_layers, (long long)cfg.hidden_size, r.loaded.size());
    e.num_layers = cfg.num_layers;
    e.hidden = cfg.hidden_size;
    e.pad_id = esm::kPad;
  } else {
    BertConfig cfg = BertConfig::from_json_file(o.text_model + "/config.json");
    e.tok = std::make_unique<BertTokenizer>(BertTokenizer::from_hf_folder(o.text_model));
    PE_CHECK(int64_t(e.tok->vocab_size()) <= cfg.vocab_size, o.text_model, "/vocab.txt has ", e.tok->vocab_size(),
             " tokens but config.json vocab_size is ", cfg.vocab_size);
    e.bert = std::make_unique<BertModel>(cfg, gen, spec);
    LoadReport r = e.bert->load(o.text_model);
    std::printf("text encoder: %s (%lld layers, hidden %lld; %zu tensors)\n", o.text_model.c_str(),
                (long long)cfg.num_layers, (long long)cfg.hidden_size, r.loaded.size());
    e.num_layers = cfg.num_layers;
    e.hidden = cfg.hidden_size;
    e.pad_id = e.tok->pad_id();
  }
  return e;
}

int64_t embed_with_encoder(const EmbedOptions& o, const std::string& kind) {
  PE_CHECK(!(o.protein_model.empty() == o.text_model.empty()), "give one of --protein-model or --text-model");
  PE_CHECK(kind == (o.protein_model.empty() ? "text" : "protein"), o.input, " holds ", kind == "protein" ? "proteins" : "texts",
           ", which ", o.protein_model.empty() ? "--text-model" : "--protein-model", " cannot embed");
  PE_CHECK(o.batch_size >= 1, "--batch-size must be at least 1, got ", o.batch_size);
  PE_CHECK(o.max_protein_len >= 1 && o.max_text_len >= 3, "--max-protein-len must be >= 1 and --max-text-len >= 3");
  bool want_mean = false, want_tok = false;
  for (const auto& s : o.include) {
    PE_CHECK(s == "mean" || s == "per_tok", "--include takes mean and/or per_tok, got '", s, "'");
    (s == "mean" ? want_mean : want_tok) = true;
  }
  PE_CHECK(want_mean || want_tok, "--include is empty");
  Device dev = resolve_device(o.device);
  std::printf("device: %s\n", device_summary(dev).c_str());
  Encoder enc = open_encoder(o, dev);
  std::vector<int64_t> layers;
  for (int64_t l : o.repr_layers) {
    int64_t r = l < 0 ? enc.num_layers + 1 + l : l;
    PE_CHECK(r >= 0 && r <= enc.num_layers, "--repr-layers ", l, " is outside [", -(enc.num_layers + 1), ", ",
             enc.num_layers, "] for a ", enc.num_layers, "-layer encoder");
    if (std::find(layers.begin(), layers.end(), r) == layers.end()) layers.push_back(r);
  }
  PE_CHECK(!layers.empty(), "--repr-layers is empty");
  bool npy = !ends_with(o.output, ".safetensors");
  PE_CHECK(!npy || (layers.size() == 1 && !want_tok), "--output ", o.output,
           ": a .npy file holds one [N, dim] array (one layer, --include mean); use a .safetensors output for ",
           want_tok ? "per-token vectors" : "several layers");

  // Tokenise; every record keeps its input row.
  std::vector<InputRecord> recs = read_inputs(o.input, kind, "embed");
  int64_t N = int64_t(recs.size()), cut = 0, total_tokens = 0;
  std::vector<std::vector<int32_t>> ids(static_cast<size_t>(N));
  // Each input is tokenised once in full; a longer one keeps its first tokens and its closing
  // <eos>/[SEP], as the encoders' own length caps do.
  const int64_t cap = enc.esm ? o.max_protein_len + 2 : std::min(o.max_text_len, enc.bert->config().max_position_embeddings);
  for (int64_t i = 0; i < N; ++i) {
    const std::string& body = recs[size_t(i)].body;
    std::vector<int32_t> full = enc.esm ? esm::encode(body) : enc.tok->encode(body, 0);
    if (enc.esm) PE_CHECK(full.size() > 2, o.input, ": record '", recs[size_t(i)].id, "' has no residues");
    if (int64_t(full.size()) > cap) {
      ++cut;
      int32_t last = full.back();
      full.resize(size_t(cap));
      full.back() = last;
    }
    total_tokens += int64_t(full.size()) - 2;
    ids[size_t(i)] = std::move(full);
  }
  // Longest first, so the largest batch comes first and memory does not grow later.
  std::vector<int64_t> order(static_cast<size_t>(N));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return ids[size_t(a)].size() > ids[size_t(b)].size(); });

  const int64_t d = enc.hidden;
  std::map<int64_t, std::vector<float>> mean;   // layer -> [N, d]
  std::map<int64_t, std::vector<float>> per_tok;  // layer -> [tokens, d] in input order
  std::vector<int64_t> offsets(size_t(N) + 1, 0);
  for (int64_t i = 0; i < N; ++i) offsets[size_t(i) + 1] = offsets[size_t(i)] + int64_t(ids[size_t(i)].size()) - 2;
  for (int64_t l : layers) {
    if (want_mean) mean[l].assign(size_t(N * d), 0.f);
    if (want_tok) per_tok[l].assign(size_t(offsets.back() * d), 0.f);
  }
  bool need_hidden = std::any_of(layers.begin(), layers.end(), [&](int64_t l) { return l < enc.num_layers; });

  NoGradGuard ng;
  Progress prog(o.progress, N, total_tokens, kind == "protein" ? "residues" : "tokens");
  int64_t done = 0, done_tokens = 0;
  for (int64_t s = 0; s < N; s += o.batch_size) {
    int64_t B = std::min(o.batch_size, N - s);
    int64_t L = int64_t(ids[size_t(order[size_t(s)])].size());
    std::vector<int64_t> tok(size_t(B * L), enc.pad_id), msk(size_t(B * L), 0);
    for (int64_t b = 0; b < B; ++b) {
      const auto& v = ids[size_t(order[size_t(s + b)])];
      for (size_t j = 0; j < v.size(); ++j) {
        tok[size_t(b * L) + j] = v[j];
        msk[size_t(b * L) + j] = 1;
      }
    }
    Tensor t_ids = Tensor::from_vector(tok, {B, L}).to(dev), t_mask = Tensor::from_vector(msk, {B, L}).to(dev);
    std::vector<Tensor> hs;
    Tensor last;
    if (enc.esm) {
      EsmOutput out = enc.esm->forward_packed(t_ids, t_mask, false, need_hidden);
      hs = std::move(out.hidden_states);
      last = out.last_hidden_state;
    } else {
      BertOutput out = enc.bert->forward_packed(t_ids, Tensor::zeros({B, L}, DType::I64, dev), t_mask, need_hidden);
      hs = std::move(out.hidden_states);
      last = out.last_hidden_state;
    }
    for (int64_t l : layers) {
      const Tensor& h = l == enc.num_layers ? last : hs[size_t(l)];
      std::vector<float> v = h.to(Device::cpu()).to_float_vector();  // [B, L, d]
      for (int64_t b = 0; b < B; ++b) {
        int64_t row = order[size_t(s + b)];
        int64_t n = int64_t(ids[size_t(row)].size()) - 2;  // tokens 1 .. n: no <cls>/<eos> ([CLS]/[SEP])
        const float* src = v.data() + size_t(b * L * d);
        if (want_mean) {
          std::vector<double> acc(size_t(d), 0.0);
          for (int64_t j = 1; j <= n; ++j)
            for (int64_t c = 0; c < d; ++c) acc[size_t(c)] += src[j * d + c];
          float* dst = mean[l].data() + size_t(row * d);
          for (int64_t c = 0; c < d; ++c) dst[c] = float(acc[size_t(c)] / double(n));
        }
        if (want_tok)
          std::copy(src + d, src + (n + 1) * d, per_tok[l].begin() + offsets[size_t(row)] * d);
      }
    }
    done += B;
    for (int64_t b = 0; b < B; ++b) done_tokens += int64_t(ids[size_t(order[size_t(s + b)])].size()) - 2;
    prog.update(done, done_tokens);
  }
  prog.update(done, done_tokens, true);

  std::vector<std::string> id_list;
  for (const auto& r : recs) id_list.push_back(r.id);
  if (npy) {
    write_npy(o.output, mean.begin()->second, N, d);
  } else {
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (auto& kv : mean) tensors.push_back({"mean.layer" + std::to_string(kv.first), Tensor::from_vector(kv.second, {N, d})});
    for (auto& kv : per_tok)
      tensors.push_back({"per_tok.layer" + std::to_string(kv.first), Tensor::from_vector(kv.second, {offsets.back(), d})});
    if (want_tok) tensors.push_back({"per_tok.offsets", Tensor::from_vector(offsets, {N + 1})});
    save_tensors(o.output, tensors,
                 {{"kind", kind}, {"source", o.input}, {"model", enc.esm ? o.protein_model : o.text_model}});
  }
  write_ids(o.output, id_list);
  std::printf("wrote %lld %s embeddings (dimension %lld, layer%s", (long long)N, kind.c_str(), (long long)d,
              layers.size() > 1 ? "s" : "");
  for (int64_t l : layers) std::printf(" %lld", (long long)l);
  std::printf(") to %s and ids to %s: %lld %s in %.2f s, %.0f %s/s%s\n", o.output.c_str(),
              embed_ids_path(o.output).c_str(), (long long)total_tokens, kind == "protein" ? "residues" : "tokens",
              prog.seconds(), prog.seconds() > 0 ? double(total_tokens) / prog.seconds() : 0.0,
              kind == "protein" ? "residues" : "tokens",
              cut ? (" (" + std::to_string(cut) + " inputs cut to the length limit)").c_str() : "");
  return N;
}

// ------------------------------------------------------------------ ProtST joint-space embeddings
int64_t embed_with_checkpoint(const EmbedOptions& o, const std::string& kind) {
  OpenedModel m = open_model(o.checkpoint, o.device, o.batch_size, o.max_protein_len, o.max_text_len);
  std::printf("device: %s\n", device_summary(m.eo.device).c_str());
  const BertTokenizer& tok = *m.tok;
  std::vector<InputRecord> in = read_inputs(o.input, kind, "embed");
  std::vector<ProteinRecord> recs;
  for (size_t i = 0; i < in.size(); ++i) {
    ProteinRecord r;
    r.id = in[i].id;
    if (kind == "protein") {
      r.seq = in[i].body;
    } else {
      r.seq = "A";  // placeholder protein; only the text side is embedded
      r.text = in[i].body;
    }
    recs.push_back(r);
  }
  PairDataset ds = tokenize_pairs(recs, tok, m.max_text_len);
  PE_CHECK(ds.items.size() == recs.size(), o.input, ": some sequences are empty");
  if (kind == "text")
    for (size_t i = 0; i < ds.items.size(); ++i) ds.items[i].group = int64_t(i);  // every line its own row
  std::vector<std::vector<float>> P, T;
  std::vector<int64_t> g;
  int64_t cropped = 0;
  auto t0 = Clock::now();
  embed_dataset(*m.model, ds, tok, m.eo, P, T, g, &cropped);
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const auto& rows = kind == "protein" ? P : T;
  int64_t N = int64_t(rows.size()), E = int64_t(rows[0].size());
  std::vector<float> flat;
  for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  if (ends_with(o.output, ".safetensors"))
    save_tensors(o.output, {{"embeddings", Tensor::from_vector(flat, {N, E})}}, {{"kind", kind}, {"source", o.input}});
  else
    write_npy(o.output, flat, N, E);
  std::vector<std::string> id_list;
  for (const auto& r : recs) id_list.push_back(r.id);
  write_ids(o.output, id_list);
  std::printf("wrote %lld %s embeddings of dimension %lld to %s (ids: %s) in %.2f s%s\n", (long long)N, kind.c_str(),
              (long long)E, o.output.c_str(), embed_ids_path(o.output).c_str(), secs,
              cropped ? (" (" + std::to_string(cropped) + " proteins cut to the length limit)").c_str() : "");
  return N;
}

}  // namespace

std::string embed_ids_path(const std::string& output) {
  size_t slash = output.find_last_of('/');
  size_t dot = output.find_last_of('.');
  std::string stem = (dot != std::string::npos && (slash == std::string::npos || dot > slash)) ? output.substr(0, dot) : output;
  return stem + ".ids.txt";
}

void write_npy(const std::string& path, const std::vector<float>& data, int64_t rows, int64_t cols) {
  PE_CHECK(int64_t(data.size()) == rows * cols, "write_npy: ", data.size(), " values for [", rows, ", ", cols, "]");
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                       std::to_string(cols) + "), }";
  size_t total = 10 + header.size() + 1;
  header += std::string((64 - total % 64) % 64, ' ') + "\n";
  std::string out = "\x93NUMPY";
  out += char(1);
  out += char(0);
  uint16_t hl = uint16_t(header.size());
  out += char(hl & 0xff);
  out += char(hl >> 8);
  out += header;
  out.append(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(float));
  write_text_atomic(path, out);
}

int64_t run_embed(const EmbedOptions& o) {
  int sources = int(!o.checkpoint.empty()) + int(!o.protein_model.empty()) + int(!o.text_model.empty());
  PE_CHECK(sources == 1, "give exactly one of --checkpoint (ProtST embeddings), --protein-model or --text-model "
           "(raw encoder embeddings from a Hugging Face folder)");
  std::string kind = o.kind;
  if (kind == "auto" && !o.protein_model.empty()) kind = "protein";
  if (kind == "auto" && !o.text_model.empty()) kind = "text";
  kind = detect_input_kind(o.input, kind);
  return o.checkpoint.empty() ? embed_with_encoder(o, kind) : embed_with_checkpoint(o, kind);
}

}  // namespace pe
