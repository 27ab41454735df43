#include "probe/function_metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"

namespace pe {

namespace {
void check_dense(const char* what, const std::vector<double>& scores, const std::vector<uint8_t>& labels,
                 int64_t proteins, int64_t terms) {
  PE_CHECK(proteins >= 0 && terms >= 0, what, ": negative size ", proteins, " x ", terms);
  PE_CHECK(int64_t(scores.size()) == proteins * terms && int64_t(labels.size()) == proteins * terms, what,
           ": expected ", proteins, " x ", terms, " scores and labels, got ", scores.size(), " and ", labels.size());
  for (size_t i = 0; i < scores.size(); ++i)
    PE_CHECK(std::isfinite(scores[i]), what, ": score of protein ", int64_t(i) / std::max<int64_t>(terms, 1),
             " term ", int64_t(i) % std::max<int64_t>(terms, 1), " is not finite (", scores[i], ")");
}
}  // namespace

FmaxResult fmax_protein_centric(const std::vector<double>& scores, const std::vector<uint8_t>& labels, int64_t proteins,
                                int64_t terms) {
  check_dense("fmax", scores, labels, proteins, terms);
  FmaxResult best;
  std::vector<int64_t> n_true(size_t(proteins), 0);
  for (int64_t i = 0; i < proteins; ++i)
    for (int64_t j = 0; j < terms; ++j) n_true[size_t(i)] += labels[size_t(i * terms + j)] != 0;
  for (int64_t i = 0; i < proteins; ++i) (n_true[size_t(i)] > 0 ? best.evaluated : best.unannotated)++;
  if (best.evaluated == 0) return best;
  for (int step = 1; step <= 100; ++step) {
    const double t = step / 100.0;
    double prec_sum = 0, rec_sum = 0;
    int64_t with_pred = 0;
    for (int64_t i = 0; i < proteins; ++i) {
      if (n_true[size_t(i)] == 0) continue;
      int64_t pred = 0, hit = 0;
      for (int64_t j = 0; j < terms; ++j) {
        if (scores[size_t(i * terms + j)] >= t) {
          ++pred;
          hit += labels[size_t(i * terms + j)] != 0;
        }
      }
      if (pred > 0) {
        ++with_pred;
        prec_sum += double(hit) / double(pred);
      }
      rec_sum += double(hit) / double(n_true[size_t(i)]);
    }
    const double p = with_pred > 0 ? prec_sum / double(with_pred) : 0.0;
    const double r = rec_sum / double(best.evaluated);
    const double f = (p + r) > 0 ? 2 * p * r / (p + r) : 0.0;
    if (f > best.fmax) {
      best.fmax = f;
      best.threshold = t;
      best.precision = p;
      best.recall = r;
    }
  }
  return best;
}

AuprResult micro_aupr(const std::vector<double>& scores, const std::vector<uint8_t>& labels, int64_t proteins,
                      int64_t terms) {
  check_dense("micro AUPR", scores, labels, proteins, terms);
  AuprResult res;
  res.pairs = proteins * terms;
  for (int64_t j = 0; j < terms; ++j) {
    bool any = false;
    for (int64_t i = 0; i < proteins && !any; ++i) any = labels[size_t(i * terms + j)] != 0;
    res.terms_without_positives += !any;
  }
  for (uint8_t l : labels) res.positives += l != 0;
  if (res.positives == 0) {
    res.aupr = std::numeric_limits<double>::quiet_NaN();
    return res;
  }
  res.defined = true;
  std::vector<int64_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return scores[size_t(a)] > scores[size_t(b)]; });
  double tp = 0, fp = 0, prev_recall = 0, ap = 0;
  for (size_t k = 0; k < order.size();) {
    // Pairs with equal scores enter together (one point of the curve).
    size_t e = k;
    const double s = scores[size_t(order[k])];
    while (e < order.size() && scores[size_t(order[e])] == s) {
      (labels[size_t(order[e])] ? tp : fp) += 1;
      ++e;
    }
    const double recall = tp / double(res.positives), precision = tp / (tp + fp);
    ap += (recall - prev_recall) * precision;
    prev_recall = recall;
    k = e;
  }
  res.aupr = ap;
  return res;
}

double accuracy(const std::vector<int64_t>& predicted, const std::vector<int64_t>& truth) {
  PE_CHECK(predicted.size() == truth.size(), "accuracy: ", predicted.size(), " predictions for ", truth.size(),
           " examples");
  if (truth.empty()) return std::numeric_limits<double>::quiet_NaN();
  int64_t hit = 0;
  for (size_t i = 0; i < truth.size(); ++i) hit += predicted[i] == truth[i];
  return double(hit) / double(truth.size());
}

double macro_f1(const std::vector<int64_t>& predicted, const std::vector<int64_t>& truth, int64_t classes) {
  PE_CHECK(predicted.size() == truth.size(), "macro F1: ", predicted.size(), " predictions for ", truth.size(),
           " examples");
  std::vector<int64_t> tp(size_t(classes), 0), np(size_t(classes), 0), nt(size_t(classes), 0);
  for (size_t i = 0; i < truth.size(); ++i) {
    PE_CHECK(truth[i] >= 0 && truth[i] < classes && predicted[i] >= 0 && predicted[i] < classes, "macro F1: class of ",
             "example ", i, " outside [0, ", classes, ")");
    ++nt[size_t(truth[i])];
    ++np[size_t(predicted[i])];
    tp[size_t(truth[i])] += predicted[i] == truth[i];
  }
  double sum = 0;
  int64_t present = 0;
  for (int64_t c = 0; c < classes; ++c) {
    if (nt[size_t(c)] == 0 && np[size_t(c)] == 0) continue;
    ++present;
    sum += 2.0 * double(tp[size_t(c)]) / double(nt[size_t(c)] + np[size_t(c)]);
  }
  return present > 0 ? sum / double(present) : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace pe
