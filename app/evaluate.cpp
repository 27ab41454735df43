#include "app/evaluate.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <numeric>
#include <sstream>

namespace pe {

namespace {

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * double(b[i]);
  return s;
}

// Chance level of recall@k and MRR when m of n candidates are correct and the ranking is random:
// P(first correct at rank r) = C(n - r, m - 1) / C(n, m).
void chance(int64_t n, int64_t m, double& r1, double& r10, double& mrr) {
  r1 = r10 = mrr = 0;
  if (n <= 0 || m <= 0) return;
  // log C(n - r, m - 1) - log C(n, m), iterated over r = 1 .. n - m + 1
  auto lchoose = [](double a, double b) { return std::lgamma(a + 1) - std::lgamma(b + 1) - std::lgamma(a - b + 1); };
  double base = lchoose(double(n), double(m));
  for (int64_t r = 1; r <= n - m + 1; ++r) {
    double p = std::exp(lchoose(double(n - r), double(m - 1)) - base);
    if (r == 1) r1 += p;
    if (r <= 10) r10 += p;
    mrr += p / double(r);
  }
}

void finish(RetrievalMetrics& m, const std::vector<int64_t>& ranks, const std::vector<int64_t>& n_correct) {
  m.queries = int64_t(ranks.size());
  for (size_t i = 0; i < ranks.size(); ++i) {
    m.recall1 += ranks[i] <= 1;
    m.recall10 += ranks[i] <= 10;
    m.mrr += 1.0 / double(ranks[i]);
    double c1, c10, cm;
    chance(m.candidates, n_correct[i], c1, c10, cm);
    m.chance_recall1 += c1;
    m.chance_recall10 += c10;
    m.chance_mrr += cm;
  }
  double q = std::max<double>(1, double(m.queries));
  m.recall1 /= q;
  m.recall10 /= q;
  m.mrr /= q;
  m.chance_recall1 /= q;
  m.chance_recall10 /= q;
  m.chance_mrr /= q;
}

}  // namespace

RetrievalResult retrieval_metrics(const std::vector<std::vector<float>>& p, const std::vector<std::vector<float>>& t,
                                  const std::vector<int64_t>& group) {
  int64_t N = int64_t(p.size()), G = int64_t(t.size());
  PE_CHECK(int64_t(group.size()) == N, "retrieval: ", group.size(), " group ids for ", N, " proteins");
  for (int64_t g : group) PE_CHECK(g >= 0 && g < G, "retrieval: group id ", g, " outside [0, ", G, ")");
  std::vector<std::vector<double>> s(static_cast<size_t>(N), std::vector<double>(static_cast<size_t>(G)));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < G; ++j) s[size_t(i)][size_t(j)] = dot(p[size_t(i)], t[size_t(j)]);
  RetrievalResult r;
  // protein -> text: one correct text among G.
  r.p2t.candidates = G;
  std::vector<int64_t> ranks(static_cast<size_t>(N)), ncor(static_cast<size_t>(N), 1);
  for (int64_t i = 0; i < N; ++i) {
    double target = s[size_t(i)][size_t(group[size_t(i)])];
    int64_t higher = 0;
    for (int64_t j = 0; j < G; ++j) higher += s[size_t(i)][size_t(j)] > target;
    ranks[size_t(i)] = 1 + higher;
  }
  finish(r.p2t, ranks, ncor);
  // text -> protein: every protein of the group is correct.
  r.t2p.candidates = N;
  std::vector<int64_t> tranks, tcor;
  std::vector<int64_t> members(static_cast<size_t>(G), 0);
  for (int64_t g : group) ++members[size_t(g)];
  for (int64_t j = 0; j < G; ++j) {
    if (!members[size_t(j)]) continue;
    double best = -1e300;
    for (int64_t i = 0; i < N; ++i)
      if (group[size_t(i)] == j) best = std::max(best, s[size_t(i)][size_t(j)]);
    int64_t higher = 0;
    for (int64_t i = 0; i < N; ++i) higher += s[size_t(i)][size_t(j)] > best;
    tranks.push_back(1 + higher);
    tcor.push_back(members[size_t(j)]);
  }
  finish(r.t2p, tranks, tcor);
  return r;
}

namespace {
// Rows of e (L2-normalised unless they are pooled encoder states) into dst at the given indices.
void to_rows(const Tensor& e, bool normalize, std::vector<std::vector<float>>& dst, const std::vector<int64_t>& where) {
  Tensor n = normalize ? l2_normalize(e, -1) : e;
  std::vector<float> v = n.to_float_vector();
  int64_t d = e.size(1);
  for (size_t r = 0; r < where.size(); ++r) dst[size_t(where[r])].assign(v.begin() + int64_t(r) * d, v.begin() + int64_t(r + 1) * d);
}
CollateOptions embed_collate(const EvalOptions& opt) {
  CollateOptions co;
  co.max_protein_len = opt.max_protein_len;
  co.random_crop = false;
  co.mask = false;
  return co;
}
}  // namespace

std::vector<std::vector<float>> embed_proteins(ProtSTModel& model, const PairDataset& ds, const BertTokenizer& tok,
                                               const EvalOptions& opt, int64_t* cropped) {
  NoGradGuard ng;
  const int64_t N = int64_t(ds.items.size());
  std::vector<std::vector<float>> proteins(static_cast<size_t>(N));
  const CollateOptions co = embed_collate(opt);
  Generator gen(opt.seed);
  // Sort by length so batches pad little; outputs go back to input order.
  std::vector<int64_t> order(static_cast<size_t>(N));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return ds.items[size_t(a)].residues.size() < ds.items[size_t(b)].residues.size();
  });
  int64_t crop = 0;
  for (int64_t s = 0; s < N; s += opt.batch_size) {
    std::vector<int64_t> idx(order.begin() + s, order.begin() + std::min(N, s + opt.batch_size));
    CollateStats st;
    ProtSTBatch b = collate(ds, idx, co, tok, gen, opt.device, &st);
    crop += st.cropped;
    to_rows(opt.pooled_encoder ? masked_mean(model.protein_hidden(b.protein_ids, b.protein_mask), b.residue_mask)
                               : model.embed_protein(b.protein_ids, b.protein_mask, b.residue_mask),
            !opt.pooled_encoder, proteins, idx);
  }
  if (cropped) *cropped = crop;
  return proteins;
}

std::vector<std::vector<float>> embed_texts(ProtSTModel& model, const PairDataset& ds, const std::vector<int64_t>& items,
                                            const BertTokenizer& tok, const EvalOptions& opt) {
  NoGradGuard ng;
  const int64_t G = int64_t(items.size());
  std::vector<std::vector<float>> texts(static_cast<size_t>(G));
  const CollateOptions co = embed_collate(opt);
  Generator gen(opt.seed);
  for (int64_t s = 0; s < G; s += opt.batch_size) {
    std::vector<int64_t> idx(items.begin() + s, items.begin() + std::min(G, s + opt.batch_size));
    ProtSTBatch b = collate(ds, idx, co, tok, gen, opt.device);
    std::vector<int64_t> where(idx.size());
    for (size_t r = 0; r < idx.size(); ++r) where[r] = s + int64_t(r);
    to_rows(opt.pooled_encoder ? masked_mean(model.text_hidden(b.text_ids, b.text_mask), b.word_mask)
                               : model.embed_text(b.text_ids, b.text_mask, b.word_mask),
            !opt.pooled_encoder, texts, where);
  }
  return texts;
}

void embed_dataset(ProtSTModel& model, const PairDataset& ds, const BertTokenizer& tok, const EvalOptions& opt,
                   std::vector<std::vector<float>>& proteins, std::vector<std::vector<float>>& texts,
                   std::vector<int64_t>& group, int64_t* cropped) {
  int64_t N = int64_t(ds.items.size());
  group.assign(size_t(N), 0);
  // Distinct texts, numbered in order of first appearance.
  std::map<int64_t, int64_t> remap;
  std::vector<int64_t> first_of;
  for (int64_t i = 0; i < N; ++i) {
    auto it = remap.emplace(ds.items[size_t(i)].group, int64_t(remap.size()));
    if (it.second) first_of.push_back(i);
    group[size_t(i)] = it.first->second;
  }
  proteins = embed_proteins(model, ds, tok, opt, cropped);
  texts = embed_texts(model, ds, first_of, tok, opt);
}

EvalReport evaluate(ProtSTModel& model, const PairDataset& ds, const BertTokenizer& tok, const EvalOptions& opt) {
  EvalReport rep;
  std::vector<std::vector<float>> P, T;
  std::vector<int64_t> group;
  embed_dataset(model, ds, tok, opt, P, T, group, &rep.cropped);
  rep.proteins = int64_t(P.size());
  rep.texts = int64_t(T.size());
  rep.retrieval = retrieval_metrics(P, T, group);
  // Masked-prediction accuracy with a fixed masking seed (eval-mode BatchNorm).
  NoGradGuard ng;
  CollateOptions co;
  co.max_protein_len = opt.max_protein_len;
  co.random_crop = false;
  Generator gen(opt.seed);
  BatchOptions bo;
  bo.batch_size = opt.batch_size;
  bo.shuffle = false;
  bo.drop_last = false;
  double w = 0;
  for (const auto& idx : epoch_batches(ds, 0, bo)) {
    if (idx.size() < 2) continue;
    ProtSTBatch b = collate(ds, idx, co, tok, gen, opt.device);
    ProtSTOutput o = model.forward(b, false);
    double n = double(idx.size());
    rep.mlm_acc += o.mlm_acc * n;
    rep.mmp_protein_acc += o.mmp_protein_acc * n;
    rep.mmp_text_acc += o.mmp_text_acc * n;
    rep.loss += o.total.item() * n;
    w += n;
  }
  if (w > 0) {
    rep.mlm_acc /= w;
    rep.mmp_protein_acc /= w;
    rep.mmp_text_acc /= w;
    rep.loss /= w;
  }
  return rep;
}

std::string EvalReport::summary() const {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(4);
  auto row = [&](const char* name, const RetrievalMetrics& m) {
    os << "  " << name << " (" << m.queries << " queries x " << m.candidates << " candidates)\n"
       << "    recall@1  " << m.recall1 << "   chance " << m.chance_recall1 << "   (x" << m.recall1 / std::max(m.chance_recall1, 1e-12) << ")\n"
       << "    recall@10 " << m.recall10 << "   chance " << m.chance_recall10 << "   (x" << m.recall10 / std::max(m.chance_recall10, 1e-12) << ")\n"
       << "    MRR       " << m.mrr << "   chance " << m.chance_mrr << "\n";
  };
  os << "held-out retrieval: " << proteins << " proteins, " << texts << " distinct texts";
  if (cropped) os << " (" << cropped << " proteins cut to the length limit)";
  os << "\n";
  row("protein -> text", retrieval.p2t);
  row("text -> protein", retrieval.t2p);
  os << "masked prediction accuracy: MLM " << mlm_acc << ", MMP protein " << mmp_protein_acc << ", MMP text "
     << mmp_text_acc << "   (held-out loss " << loss << ")\n";
  return os.str();
}

ZeroShotResult zero_shot(ProtSTModel& model, const BertTokenizer& tok, const std::string& prompts_tsv,
                         const PairDataset& data, const std::vector<std::string>& labels_of_data,
                         const EvalOptions& opt, int64_t max_text_len) {
  std::ifstream f(prompts_tsv);
  PE_CHECK(f.good(), "zero-shot: cannot read prompts ", prompts_tsv);
  std::vector<std::string> labels;
  std::vector<Example> prompts;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(f, line)) {
    ++lineno;
    if (line.empty() || line[0] == '#') continue;
    size_t tab = line.find('\t');
    PE_CHECK(tab != std::string::npos, prompts_tsv, ":", lineno, ": expected 'label<TAB>prompt'");
    labels.push_back(line.substr(0, tab));
    Example e;
    e.text = tok.encode(line.substr(tab + 1), size_t(max_text_len));
    e.residues = {4};
    e.group = int64_t(prompts.size());
    prompts.push_back(e);
  }
  PE_CHECK(!labels.empty(), "zero-shot: no prompts in ", prompts_tsv);
  PairDataset pd;
  pd.items = prompts;
  std::vector<std::vector<float>> P, T, unused;
  std::vector<int64_t> g;
  embed_dataset(model, pd, tok, opt, unused, T, g);
  embed_dataset(model, data, tok, opt, P, unused, g);
  ZeroShotResult r;
  r.labels = int64_t(labels.size());
  r.examples = int64_t(P.size());
  for (size_t i = 0; i < P.size(); ++i) {
    int64_t best = 0;
    for (size_t j = 1; j < T.size(); ++j)
      if (dot(P[i], T[j]) > dot(P[i], T[size_t(best)])) best = int64_t(j);
    r.correct += labels[size_t(best)] == labels_of_data[i];
  }
  r.accuracy = r.examples ? double(r.correct) / double(r.examples) : 0;
  r.chance = 1.0 / double(r.labels);
  return r;
}

}  // namespace pe
