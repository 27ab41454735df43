#pragma once
// The predictor table of `protst probe`: every predictor of probe/predictors.h on the features of each
// encoder, over several seeds, scored with probe/function_metrics.h.
//
// Rows (predictor names):
//   label-frequency                        training term frequencies (class prior); no features
//   <enc> seq linear | seq MLP             sequence features only
//   <enc> text linear | text MLP           text features only (multimodal tasks)
//   <enc> early fusion MLP                 Type II: [sequence, text] features concatenated, one MLP
//   <enc> late fusion average              mean of the seq MLP and text MLP probabilities
//   <enc> late fusion stacking             per-term aggregator on out-of-fold MLP scores of train
//   <enc> joint fusion (fine-tuned)        added by `protst probe` with add_probe_scores (probe/joint.h);
//   <enc> seq fine-tuned                   its unimodal counterpart (encoder fine-tuning, no fusion)
// Metrics per row: fmax, aupr (micro), and for single-label tasks accuracy and macro_f1; each as
// mean and sample standard deviation over the seeds (std 0 with one seed).
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "probe/predictors.h"

namespace pe {

struct EncoderFeatures {
  std::string name;  // e.g. "ProtST", "MLM only", "random init"
  FeatureMatrix seq_train, seq_test;
  FeatureMatrix text_train, text_test;  // rows 0 when the task has no text
};

struct ProbeRunOptions {
  std::vector<uint64_t> seeds = {0, 1, 2};
  PredictorOptions predictor;  // shared by all fits; hidden is set per predictor
  int64_t mlp_hidden = 256;
  int64_t stacking_folds = 5;
  // Called after each fit: done, total, what was just fitted.
  std::function<void(int64_t, int64_t, const std::string&)> progress;
};

struct ProbeMetric {
  std::vector<double> values;  // one per seed
  double mean = 0, std = 0;
};

struct ProbeRow {
  std::string encoder;    // "" for the baseline
  std::string predictor;  // e.g. "seq MLP"
  std::map<std::string, ProbeMetric> metrics;  // fmax, aupr[, accuracy, macro_f1]
  double fmax_threshold = 0;  // of the first seed
  std::string label() const { return encoder.empty() ? predictor : encoder + " " + predictor; }
};

struct ProbeEval {
  std::map<std::string, double> values;  // fmax, aupr[, accuracy, macro_f1]
  double fmax_threshold = 0;
  int64_t terms_without_positives = 0, unannotated = 0;
};
// Scores [rows x k] of the test rows against their labels.
ProbeEval evaluate_scores(const std::vector<double>& scores, const ProbeLabels& test);

// Number of predictor fits run_probe makes (for progress and ETA).
int64_t probe_fit_count(const std::vector<EncoderFeatures>& encoders, const ProbeRunOptions& o);

std::vector<ProbeRow> run_probe(const ProbeLabels& train, const ProbeLabels& test,
                                const std::vector<EncoderFeatures>& encoders, const ProbeRunOptions& o);

// Adds one seed's test scores of predictor `pred` of encoder `enc` to `rows` and updates that row's
// mean and std. A new row goes after the last row of the same encoder (at the end for a new encoder).
// How `protst probe` adds the joint fusion rows (probe/joint.h), which need the model, not features.
void add_probe_scores(std::vector<ProbeRow>& rows, const std::string& enc, const std::string& pred,
                      const std::vector<double>& scores, const ProbeLabels& test);

// Markdown table: rows predictors, columns metrics as "mean ± std".
std::string probe_markdown_table(const std::vector<ProbeRow>& rows, bool single_label);

}  // namespace pe
