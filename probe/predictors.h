#pragma once
// Predictors of `protst probe` on frozen feature vectors (issue #13), trained with the engine's
// autograd on the CPU backend, deterministic per seed (initialisation and mini-batch order come from
// Philox streams of `seed`).
//
//  - linear probe: one linear layer on standardised features (mean/std of the training rows);
//  - MLP: linear -> ReLU -> linear (hidden width PredictorOptions::hidden);
//  multi-label: sigmoid outputs, loss = mean binary cross-entropy with logits over all (protein, term)
//  pairs (computed stably as max(z,0) - z*y + log(1 + exp(-|z|))); single-label: softmax, cross-entropy.
//  Adam with L2 weight decay, fixed number of epochs, mini-batches drawn without replacement.
//  - early fusion (Type II): the same predictors on [protein features, text features] concatenated;
//  - late fusion: one predictor per modality, combined by averaging their probabilities, or by a
//    stacking aggregator trained on out-of-fold predictions of the training set (k folds: each fold's
//    rows scored by predictors trained on the other folds). The aggregator is per term:
//    score_k = sigmoid(a_k logit(p1_k) + b_k logit(p2_k) + c_k) (multi-label), or a softmax over
//    a_k log p1_k + b_k log p2_k + c_k (single-label); a starts at 1/2, b at 1/2, c at 0;
//  - label-frequency baseline: every protein gets each term's training frequency (class prior).
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace pe {

struct FeatureMatrix {
  std::vector<float> v;  // [rows x cols] row-major
  int64_t rows = 0, cols = 0;
};
FeatureMatrix concat_features(const FeatureMatrix& a, const FeatureMatrix& b);
FeatureMatrix select_rows(const FeatureMatrix& x, const std::vector<int64_t>& rows);

struct ProbeLabels {
  int64_t n = 0, k = 0;
  bool multi_label = true;
  std::vector<uint8_t> y;     // [n x k] 0/1 (one-hot for single-label)
  std::vector<int64_t> cls;   // single-label: class per row
};
ProbeLabels select_rows(const ProbeLabels& l, const std::vector<int64_t>& rows);

struct PredictorOptions {
  int64_t hidden = 0;  // 0 = linear probe; > 0 = 2-layer MLP with this hidden width
  int64_t epochs = 30;
  int64_t batch_size = 128;
  double lr = 1e-3;
  double weight_decay = 1e-4;
  uint64_t seed = 0;
  // OpenMP threads while fitting and predicting (restored after). The probes' matrices are small, so
  // one thread is fastest (on a busy 2-core machine a 2-thread fit waited at every barrier: 10x the
  // wall time), and a fixed count makes the scores independent of OMP_NUM_THREADS. 0 = leave as is.
  int threads = 1;
};

// Mean binary cross-entropy with logits over all elements, stable form max(z,0) - z*y + log(1 + exp(-|z|)):
// the multi-label loss of every predictor (frozen and joint).
Tensor probe_bce_with_logits(const Tensor& z, const Tensor& y);

// Trains on (x, y) and returns probabilities [x_test.rows x y.k] for x_test (row-major).
std::vector<double> fit_predict(const FeatureMatrix& x, const ProbeLabels& y, const FeatureMatrix& x_test,
                                const PredictorOptions& o);

// Out-of-fold probabilities for every training row (`folds` >= 2 contiguous folds of a seeded
// permutation), [x.rows x y.k].
std::vector<double> out_of_fold(const FeatureMatrix& x, const ProbeLabels& y, const PredictorOptions& o, int64_t folds);

// (p1 + p2) / 2.
std::vector<double> average_scores(const std::vector<double>& p1, const std::vector<double>& p2);

// Learned per-term stacking aggregator: trained on the out-of-fold scores (oof1, oof2) of the training
// rows against y, applied to the test scores (p1, p2).
std::vector<double> stack_scores(const std::vector<double>& oof1, const std::vector<double>& oof2, const ProbeLabels& y,
                                 const std::vector<double>& p1, const std::vector<double>& p2, uint64_t seed,
                                 int64_t epochs = 200);

// Term frequencies of the training labels, repeated for `rows` test rows.
std::vector<double> label_frequency_scores(const ProbeLabels& y, int64_t rows);

}  // namespace pe
