#pragma once
// Metrics of protein function prediction (issue #13, `protst probe`): CAFA's protein-centric Fmax and
// the micro-averaged area under the precision-recall curve, plus accuracy and macro-F1 for
// single-label tasks. Pure functions over host arrays; no engine dependency.
//
// Scores and labels are dense row-major [proteins x terms] (scores in [0, 1], labels 0/1).
//
// Fmax (CAFA, Radivojac et al. 2013; Jiang et al. 2016), protein-centric: for each threshold t in
// 0.01, 0.02, ..., 1.00 a protein's predicted terms are those scored >= t;
//   precision(t) = mean over the proteins with at least one predicted term of |pred & true| / |pred|,
//   recall(t)    = mean over the evaluated proteins of |pred & true| / |true|,
//   F(t) = 2 precision recall / (precision + recall) (0 when both are 0);  Fmax = max over t.
// Proteins with no true term are not evaluated (CAFA's benchmark only holds annotated proteins); they
// are counted in `unannotated`. A threshold at which no protein predicts anything has precision 0.
//
// Micro AUPR: every (protein, term) pair is one binary decision; the area is scikit-learn's
// average_precision_score on the flattened arrays: sum over distinct score thresholds, from the
// highest, of (R_k - R_{k-1}) * P_k, pairs with equal scores entering together. Terms without any
// positive in the set contribute negatives only; they are reported (terms_without_positives) rather
// than dividing by zero anywhere. With no positive at all the AUPR is undefined (NaN, and `defined`
// false).
#include <cstdint>
#include <vector>

namespace pe {

struct FmaxResult {
  double fmax = 0;
  double threshold = 0;              // the t reaching Fmax (the smallest such t)
  double precision = 0, recall = 0;  // at that threshold
  int64_t evaluated = 0;             // proteins with at least one true term
  int64_t unannotated = 0;           // proteins without any (left out)
};
FmaxResult fmax_protein_centric(const std::vector<double>& scores, const std::vector<uint8_t>& labels, int64_t proteins,
                                int64_t terms);

struct AuprResult {
  double aupr = 0;
  bool defined = false;                  // false when no pair is positive
  int64_t positives = 0, pairs = 0;
  int64_t terms_without_positives = 0;   // columns with no positive (reported, not an error)
};
AuprResult micro_aupr(const std::vector<double>& scores, const std::vector<uint8_t>& labels, int64_t proteins,
                      int64_t terms);

// Single-label tasks: predicted and true class per example in [0, classes).
double accuracy(const std::vector<int64_t>& predicted, const std::vector<int64_t>& truth);
// Mean over the classes present in truth or predictions of the per-class F1 (scikit-learn's
// f1_score(average='macro') over those labels; a class with no true and no predicted example is absent).
double macro_f1(const std::vector<int64_t>& predicted, const std::vector<int64_t>& truth, int64_t classes);

}  // namespace pe
