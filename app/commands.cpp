#include "app/commands.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "app/dataset_command.h"
#include "app/model_io.h"
#include "app/train.h"
#include "app/validate.h"
#include "data/fasta.h"
#include "models/checkpoint.h"

namespace pe {

using json = nlohmann::json;


EvalReport run_eval(const EvalCommandOptions& o) {
  validate_eval_options(o);
  OpenedModel m = open_model(o.checkpoint, o.device, o.batch_size, o.max_protein_len, o.max_text_len);
  const LoadedCheckpoint& ck = m.ck;
  ProtSTModel* model = m.model.get();
  const BertTokenizer& tok = *m.tok;
  const EvalOptions& eo = m.eo;
  EvalReport rep;
  json j = {{"checkpoint", o.checkpoint}, {"step", ck.progress.step}};
  if (!o.test_path.empty()) {
    ReadStats st;
    PairDataset ds = tokenize_pairs(read_pairs(o.test_path, o.descriptions, st), tok, m.max_text_len);
    std::printf("test: %s: %s\n", o.test_path.c_str(), st.summary().c_str());
    std::printf("%s\n", describe_split(o.test_path).c_str());
    j["split"] = describe_split(o.test_path);
    PE_CHECK(!ds.items.empty(), o.test_path, ": no usable pairs");
    rep = evaluate(*model, ds, tok, eo);
    std::printf("%s", rep.summary().c_str());
    auto dir = [](const RetrievalMetrics& m) {
      return json{{"recall1", m.recall1}, {"recall10", m.recall10}, {"mrr", m.mrr}, {"chance_recall1", m.chance_recall1},
                  {"chance_recall10", m.chance_recall10}, {"chance_mrr", m.chance_mrr}, {"queries", m.queries},
                  {"candidates", m.candidates}};
    };
    j["p2t"] = dir(rep.retrieval.p2t);
    j["t2p"] = dir(rep.retrieval.t2p);
    j["mlm_acc"] = rep.mlm_acc;
    j["mmp_protein_acc"] = rep.mmp_protein_acc;
    j["mmp_text_acc"] = rep.mmp_text_acc;
  }
  if (!o.zero_shot_prompts.empty()) {
    PE_CHECK(!o.zero_shot_data.empty(), "--zero-shot-prompts needs --zero-shot-data (pairs whose text is the label)");
    ReadStats st;
    std::vector<ProteinRecord> recs = read_pairs(o.zero_shot_data, o.descriptions, st);
    std::vector<std::string> labels;
    for (const auto& r : recs) labels.push_back(r.text);
    PairDataset ds = tokenize_pairs(recs, tok, m.max_text_len);
    PE_CHECK(ds.items.size() == recs.size(), o.zero_shot_data, ": some proteins have no residues");
    ZeroShotResult z = zero_shot(*model, tok, o.zero_shot_prompts, ds, labels, eo, m.max_text_len);
    std::printf("zero-shot: %lld proteins, %lld labels: accuracy %.4f (chance %.4f)\n", (long long)z.examples,
                (long long)z.labels, z.accuracy, z.chance);
    j["zero_shot"] = {{"accuracy", z.accuracy}, {"chance", z.chance}, {"examples", z.examples}, {"labels", z.labels}};
  }
  if (!o.json_out.empty()) write_text_atomic(o.json_out, j.dump(2) + "\n");
  return rep;
}

void run_convert(const ConvertOptions& o) {
  validate_convert_options(o);
  OpenedModel m = open_model(o.checkpoint, o.device, 64, o.max_protein_len, o.max_text_len);
  const LoadedCheckpoint& ck = m.ck;
  ProtSTModel* model = m.model.get();
  const BertTokenizer& tok = *m.tok;
  const EvalOptions& eo = m.eo;
  Device dev = eo.device;
  auto load = [&](const std::string& path, std::vector<std::vector<float>>& P, std::vector<std::vector<float>>& T,
                  std::vector<int64_t>& g) {
    ReadStats st;
    PairDataset ds = tokenize_pairs(read_pairs(path, o.descriptions, st), tok, m.max_text_len);
    PE_CHECK(!ds.items.empty(), path, ": no usable pairs");
    embed_dataset(*model, ds, tok, eo, P, T, g);
  };
  std::vector<std::vector<float>> trP, trT, teP, teT;
  std::vector<int64_t> trG, teG;
  load(o.train_path, trP, trT, trG);
  std::printf("convert: %zu train proteins embedded with the frozen encoders\n", trP.size());
  auto to_tensor = [&](const std::vector<std::vector<float>>& rows, const std::vector<int64_t>* idx) {
    std::vector<float> flat;
    if (idx)
      for (int64_t i : *idx) flat.insert(flat.end(), rows[size_t(i)].begin(), rows[size_t(i)].end());
    else
      for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
    int64_t n = idx ? int64_t(idx->size()) : int64_t(rows.size());
    return Tensor::from_vector(flat, {n, int64_t(rows[0].size())}, dev);
  };
  // Train: every parameter frozen but the conversion MLPs.
  model->params().set_trainable("", false);
  model->params().set_trainable("conversion.", true);
  AdamOptions ao;
  ao.lr = o.lr;
  Adam opt({{model->params().parameters("conversion.")}}, ao);
  Generator gen(o.seed);
  int64_t N = int64_t(trP.size());
  for (int64_t step = 1; step <= o.steps; ++step) {
    std::vector<int64_t> idx, tidx;
    for (int64_t i = 0; i < std::min(o.batch_size, N); ++i) {
      int64_t k = gen.randint(0, N);
      idx.push_back(k);
      tidx.push_back(trG[size_t(k)]);
    }
    Tensor p = to_tensor(trP, &idx), t = to_tensor(trT, &tidx);
    Tensor loss = add(mse_loss(model->protein_to_text(p), t), mse_loss(model->text_to_protein(t), p));
    opt.zero_grad();
    loss.backward();
    opt.step();
    if (step % 200 == 0 || step == 1 || step == o.steps)
      std::printf("convert step %lld/%lld | mse (p->t + t->p) %.5f\n", (long long)step, (long long)o.steps, loss.item());
  }
  if (!o.test_path.empty()) {
    load(o.test_path, teP, teT, teG);
    NoGradGuard ng;
    Tensor P = to_tensor(teP, nullptr), T = to_tensor(teT, nullptr);
    std::vector<int64_t> gidx(teG.begin(), teG.end());
    Tensor Tp = to_tensor(teT, &gidx);  // each protein's own text embedding
    double mse_p2t = mse_loss(model->protein_to_text(P), Tp).item();
    auto rows = [](const Tensor& x) {
      Tensor n = l2_normalize(x, -1);
      std::vector<float> v = n.to_float_vector();
      int64_t d = x.size(1);
      std::vector<std::vector<float>> out;
      for (int64_t i = 0; i < x.size(0); ++i) out.emplace_back(v.begin() + i * d, v.begin() + (i + 1) * d);
      return out;
    };
    // Imputed text embedding of each protein, matched against the real text embeddings.
    RetrievalResult imputed = retrieval_metrics(rows(model->protein_to_text(P)), teT, teG);
    RetrievalResult direct = retrieval_metrics(teP, teT, teG);
    std::printf("convert held-out: mse protein->text %.5f | recall@10 with imputed text embeddings %.4f "
                "(direct cross-modal %.4f, chance %.4f)\n",
                mse_p2t, imputed.p2t.recall10, direct.p2t.recall10, direct.p2t.chance_recall10);
  }
  TrainProgress prog = ck.progress;
  // The model's own metadata (tokenizer switches, training options) travels along, as in the arms.
  json meta = ck.meta;
  for (const char* k : {"format", "config", "progress", "adam_step", "text_frozen"}) meta.erase(k);
  meta["converted_from"] = o.checkpoint;
  save_checkpoint(o.output, *model, nullptr, prog, ck.vocab, meta);
  std::printf("wrote %s (with trained conversion MLPs)\n", o.output.c_str());
}

}  // namespace pe
