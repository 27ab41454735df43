#include "probe/suite.h"

#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "probe/function_metrics.h"

namespace pe {

ProbeEval evaluate_scores(const std::vector<double>& scores, const ProbeLabels& test) {
  PE_CHECK(scores.size() == size_t(test.n * test.k), "probe: ", scores.size(), " scores for ", test.n, " x ", test.k,
           " labels");
  ProbeEval e;
  FmaxResult f = fmax_protein_centric(scores, test.y, test.n, test.k);
  AuprResult a = micro_aupr(scores, test.y, test.n, test.k);
  e.values["fmax"] = f.fmax;
  e.values["aupr"] = a.defined ? a.aupr : std::nan("");
  e.fmax_threshold = f.threshold;
  e.terms_without_positives = a.terms_without_positives;
  e.unannotated = f.unannotated;
  if (!test.multi_label) {
    std::vector<int64_t> pred(size_t(test.n));
    for (int64_t i = 0; i < test.n; ++i) {
      int64_t best = 0;
      for (int64_t k = 1; k < test.k; ++k)
        if (scores[size_t(i * test.k + k)] > scores[size_t(i * test.k + best)]) best = k;
      pred[size_t(i)] = best;
    }
    e.values["accuracy"] = accuracy(pred, test.cls);
    e.values["macro_f1"] = macro_f1(pred, test.cls, test.k);
  }
  return e;
}

namespace {
bool has_text(const EncoderFeatures& e) { return e.text_train.rows > 0; }

// Mean and sample standard deviation over the seeds of every metric of a row.
void summarise(ProbeRow& r) {
  for (auto& kv : r.metrics) {
    ProbeMetric& m = kv.second;
    double s = 0;
    for (double v : m.values) s += v;
    m.mean = s / double(m.values.size());
    double ss = 0;
    for (double v : m.values) ss += (v - m.mean) * (v - m.mean);
    m.std = m.values.size() > 1 ? std::sqrt(ss / double(m.values.size() - 1)) : 0.0;
  }
}
}  // namespace

int64_t probe_fit_count(const std::vector<EncoderFeatures>& encoders, const ProbeRunOptions& o) {
  int64_t per_seed = 0;
  for (const auto& e : encoders) per_seed += has_text(e) ? 5 + 2 * o.stacking_folds : 2;
  return per_seed * int64_t(o.seeds.size());
}

std::vector<ProbeRow> run_probe(const ProbeLabels& train, const ProbeLabels& test,
                                const std::vector<EncoderFeatures>& encoders, const ProbeRunOptions& o) {
  PE_CHECK(!o.seeds.empty(), "probe: no seeds");
  std::vector<ProbeRow> rows;
  std::map<std::string, size_t> index;
  auto add = [&](const std::string& enc, const std::string& pred, const std::vector<double>& scores) {
    ProbeEval ev = evaluate_scores(scores, test);
    std::string key = enc + "\x1f" + pred;
    auto it = index.find(key);
    if (it == index.end()) {
      it = index.emplace(key, rows.size()).first;
      rows.push_back(ProbeRow{enc, pred, {}, ev.fmax_threshold});
    }
    for (const auto& kv : ev.values) rows[it->second].metrics[kv.first].values.push_back(kv.second);
  };
  const int64_t total = probe_fit_count(encoders, o);
  int64_t done = 0;
  auto tick = [&](const std::string& what) {
    ++done;
    if (o.progress) o.progress(done, total, what);
  };
  // The baseline does not depend on the seed; it is scored once per seed so every row has as many values.
  std::vector<double> freq = label_frequency_scores(train, test.n);
  for (size_t s = 0; s < o.seeds.size(); ++s) add("", "label-frequency", freq);
  for (uint64_t seed : o.seeds) {
    for (const auto& e : encoders) {
      PredictorOptions lin = o.predictor, mlp = o.predictor;
      lin.hidden = 0;
      mlp.hidden = o.mlp_hidden;
      lin.seed = mlp.seed = seed;
      add(e.name, "seq linear", fit_predict(e.seq_train, train, e.seq_test, lin));
      tick(e.name + " seq linear, seed " + std::to_string(seed));
      std::vector<double> p_seq = fit_predict(e.seq_train, train, e.seq_test, mlp);
      add(e.name, "seq MLP", p_seq);
      tick(e.name + " seq MLP, seed " + std::to_string(seed));
      if (!has_text(e)) continue;
      PE_CHECK(e.text_train.rows == train.n && e.text_test.rows == test.n, "probe: text features of ", e.name,
               " do not match the task's rows");
      add(e.name, "text linear", fit_predict(e.text_train, train, e.text_test, lin));
      tick(e.name + " text linear, seed " + std::to_string(seed));
      std::vector<double> p_text = fit_predict(e.text_train, train, e.text_test, mlp);
      add(e.name, "text MLP", p_text);
      tick(e.name + " text MLP, seed " + std::to_string(seed));
      add(e.name, "early fusion MLP",
          fit_predict(concat_features(e.seq_train, e.text_train), train, concat_features(e.seq_test, e.text_test), mlp));
      tick(e.name + " early fusion MLP, seed " + std::to_string(seed));
      add(e.name, "late fusion average", average_scores(p_seq, p_text));
      std::vector<double> oof_seq = out_of_fold(e.seq_train, train, mlp, o.stacking_folds);
      done += o.stacking_folds - 1;
      tick(e.name + " out-of-fold seq MLP, seed " + std::to_string(seed));
      std::vector<double> oof_text = out_of_fold(e.text_train, train, mlp, o.stacking_folds);
      done += o.stacking_folds - 1;
      tick(e.name + " out-of-fold text MLP, seed " + std::to_string(seed));
      add(e.name, "late fusion stacking", stack_scores(oof_seq, oof_text, train, p_seq, p_text, seed));
    }
  }
  for (auto& r : rows) summarise(r);
  return rows;
}

void add_probe_scores(std::vector<ProbeRow>& rows, const std::string& enc, const std::string& pred,
                      const std::vector<double>& scores, const ProbeLabels& test) {
  ProbeEval ev = evaluate_scores(scores, test);
  size_t at = rows.size();
  bool found = false;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].encoder == enc && rows[i].predictor == pred) {
      at = i;
      found = true;
      break;
    }
  }
  if (!found) {
    size_t after = rows.size();
    for (size_t i = 0; i < rows.size(); ++i)
      if (rows[i].encoder == enc) after = i + 1;
    at = after;
    rows.insert(rows.begin() + int64_t(at), ProbeRow{enc, pred, {}, ev.fmax_threshold});
  }
  for (const auto& kv : ev.values) rows[at].metrics[kv.first].values.push_back(kv.second);
  summarise(rows[at]);
}

std::string probe_markdown_table(const std::vector<ProbeRow>& rows, bool single_label) {
  std::vector<std::pair<std::string, std::string>> cols = {{"fmax", "Fmax"}, {"aupr", "micro AUPR"}};
  if (single_label) {
    cols.push_back({"accuracy", "accuracy"});
    cols.push_back({"macro_f1", "macro-F1"});
  }
  std::string out = "| predictor |";
  for (const auto& c : cols) out += " " + c.second + " |";
  out += "\n|---|";
  for (size_t i = 0; i < cols.size(); ++i) out += "---|";
  out += "\n";
  char buf[64];
  for (const auto& r : rows) {
    out += "| " + r.label() + " |";
    for (const auto& c : cols) {
      auto it = r.metrics.find(c.first);
      if (it == r.metrics.end() || std::isnan(it->second.mean)) {
        out += " n/a |";
        continue;
      }
      std::snprintf(buf, sizeof buf, " %.3f ± %.3f |", it->second.mean, it->second.std);
      out += buf;
    }
    out += "\n";
  }
  return out;
}

}  // namespace pe
