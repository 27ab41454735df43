#include "probe/predictors.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <omp.h>

#include "autograd/graph.h"
#include "autograd/ops.h"
#include "autograd/optim.h"
#include "core/error.h"
#include "probe/omp_threads.h"
#include "core/rng.h"

namespace pe {

FeatureMatrix concat_features(const FeatureMatrix& a, const FeatureMatrix& b) {
  PE_CHECK(a.rows == b.rows, "probe: cannot concatenate features of ", a.rows, " and ", b.rows, " rows");
  FeatureMatrix c;
  c.rows = a.rows;
  c.cols = a.cols + b.cols;
  c.v.resize(size_t(c.rows * c.cols));
  for (int64_t i = 0; i < a.rows; ++i) {
    std::copy(a.v.begin() + i * a.cols, a.v.begin() + (i + 1) * a.cols, c.v.begin() + i * c.cols);
    std::copy(b.v.begin() + i * b.cols, b.v.begin() + (i + 1) * b.cols, c.v.begin() + i * c.cols + a.cols);
  }
  return c;
}

FeatureMatrix select_rows(const FeatureMatrix& x, const std::vector<int64_t>& rows) {
  FeatureMatrix s;
  s.rows = int64_t(rows.size());
  s.cols = x.cols;
  s.v.resize(size_t(s.rows * s.cols));
  for (int64_t i = 0; i < s.rows; ++i)
    std::copy(x.v.begin() + rows[size_t(i)] * x.cols, x.v.begin() + (rows[size_t(i)] + 1) * x.cols,
              s.v.begin() + i * s.cols);
  return s;
}

ProbeLabels select_rows(const ProbeLabels& l, const std::vector<int64_t>& rows) {
  ProbeLabels s;
  s.n = int64_t(rows.size());
  s.k = l.k;
  s.multi_label = l.multi_label;
  s.y.resize(size_t(s.n * s.k));
  for (int64_t i = 0; i < s.n; ++i) {
    std::copy(l.y.begin() + rows[size_t(i)] * l.k, l.y.begin() + (rows[size_t(i)] + 1) * l.k, s.y.begin() + i * s.k);
    if (!l.multi_label) s.cls.push_back(l.cls[size_t(rows[size_t(i)])]);
  }
  return s;
}

namespace {

// Seeded Fisher-Yates permutation of 0..n-1.
std::vector<int64_t> permutation(int64_t n, Generator& gen) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  for (int64_t i = n - 1; i > 0; --i) {
    int64_t j = std::min<int64_t>(i, int64_t(gen.uniform() * double(i + 1)));
    std::swap(p[size_t(i)], p[size_t(j)]);
  }
  return p;
}

Tensor uniform_param(const Shape& shape, double bound, Generator& gen) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = float(gen.uniform(-bound, bound));
  Tensor t = Tensor::from_vector(v, shape);
  t.requires_grad_(true);
  return t;
}

struct Model {
  std::vector<float> mu, sd;  // standardisation of the inputs
  Tensor w1, b1, w2, b2;      // w2/b2 undefined for the linear probe
  bool mlp = false;
  Tensor forward(const Tensor& x) const {
    Tensor h = linear(x, w1, b1);
    return mlp ? linear(relu(h), w2, b2) : h;
  }
};

Tensor rows_tensor(const FeatureMatrix& x, const std::vector<float>& mu, const std::vector<float>& sd,
                   const int64_t* idx, int64_t n) {
  std::vector<float> v(size_t(n * x.cols));
  for (int64_t i = 0; i < n; ++i) {
    const float* src = x.v.data() + idx[i] * x.cols;
    float* dst = v.data() + i * x.cols;
    for (int64_t c = 0; c < x.cols; ++c) dst[c] = (src[c] - mu[size_t(c)]) / sd[size_t(c)];
  }
  return Tensor::from_vector(v, {n, x.cols});
}

std::vector<double> predict(const Model& m, const FeatureMatrix& x, bool multi_label) {
  NoGradGuard ng;
  std::vector<double> out;
  const int64_t chunk = 4096;
  std::vector<int64_t> idx(size_t(x.rows));
  std::iota(idx.begin(), idx.end(), 0);
  for (int64_t s = 0; s < x.rows; s += chunk) {
    int64_t n = std::min(chunk, x.rows - s);
    Tensor z = m.forward(rows_tensor(x, m.mu, m.sd, idx.data() + s, n));
    std::vector<double> p = (multi_label ? sigmoid(z) : softmax(z, -1)).to_double_vector();
    out.insert(out.end(), p.begin(), p.end());
  }
  return out;
}

}  // namespace

Tensor probe_bce_with_logits(const Tensor& z, const Tensor& y) {
  return mean(relu(z) - z * y + log(add(exp(neg(abs(z))), 1.0)));
}

std::vector<double> fit_predict(const FeatureMatrix& x, const ProbeLabels& y, const FeatureMatrix& x_test,
                                const PredictorOptions& o) {
  PE_CHECK(x.rows == y.n && x.rows > 0, "probe: ", x.rows, " feature rows for ", y.n, " labelled rows");
  PE_CHECK(x_test.cols == x.cols, "probe: test features have ", x_test.cols, " columns, training ", x.cols);
  PE_CHECK(y.k >= 1 && o.epochs >= 1 && o.batch_size >= 1 && o.hidden >= 0, "probe: bad predictor options");
  OmpThreads threads(o.threads);
  Generator gen(o.seed * 0x9E3779B97F4A7C15ULL + 0x70b3);
  Model m;
  m.mu.assign(size_t(x.cols), 0.f);
  m.sd.assign(size_t(x.cols), 1.f);
  for (int64_t c = 0; c < x.cols; ++c) {
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < x.rows; ++i) {
      double v = x.v[size_t(i * x.cols + c)];
      s += v;
      s2 += v * v;
    }
    double mu = s / double(x.rows), var = std::max(0.0, s2 / double(x.rows) - mu * mu);
    m.mu[size_t(c)] = float(mu);
    m.sd[size_t(c)] = float(std::max(std::sqrt(var), 1e-6));
  }
  m.mlp = o.hidden > 0;
  const int64_t in = x.cols, h = m.mlp ? o.hidden : y.k;
  m.w1 = uniform_param({h, in}, 1.0 / std::sqrt(double(in)), gen);
  m.b1 = uniform_param({h}, 1.0 / std::sqrt(double(in)), gen);
  std::vector<Tensor> params = {m.w1, m.b1};
  if (m.mlp) {
    m.w2 = uniform_param({y.k, h}, 1.0 / std::sqrt(double(h)), gen);
    m.b2 = uniform_param({y.k}, 1.0 / std::sqrt(double(h)), gen);
    params.push_back(m.w2);
    params.push_back(m.b2);
  }
  AdamOptions ao;
  ao.lr = o.lr;
  ao.weight_decay = o.weight_decay;
  ao.decoupled = false;
  Adam opt({ParamGroup{params, 1.0, true}}, ao);
  for (int64_t e = 0; e < o.epochs; ++e) {
    std::vector<int64_t> order = permutation(x.rows, gen);
    for (int64_t s = 0; s < x.rows; s += o.batch_size) {
      int64_t n = std::min(o.batch_size, x.rows - s);
      Tensor xb = rows_tensor(x, m.mu, m.sd, order.data() + s, n);
      Tensor loss;
      if (y.multi_label) {
        std::vector<float> yb(size_t(n * y.k));
        for (int64_t i = 0; i < n; ++i)
          for (int64_t k = 0; k < y.k; ++k) yb[size_t(i * y.k + k)] = y.y[size_t(order[size_t(s + i)] * y.k + k)];
        loss = probe_bce_with_logits(m.forward(xb), Tensor::from_vector(yb, {n, y.k}));
      } else {
        std::vector<int64_t> cb(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) cb[size_t(i)] = y.cls[size_t(order[size_t(s + i)])];
        loss = cross_entropy(m.forward(xb), Tensor::from_vector(cb, {n}));
      }
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
  }
  return predict(m, x_test, y.multi_label);
}

std::vector<double> out_of_fold(const FeatureMatrix& x, const ProbeLabels& y, const PredictorOptions& o, int64_t folds) {
  PE_CHECK(folds >= 2 && folds <= x.rows, "probe: stacking needs 2 <= folds <= training rows, got ", folds);
  Generator gen(o.seed * 0xD1B54A32D192ED03ULL + 0xf01d);
  std::vector<int64_t> perm = permutation(x.rows, gen);
  std::vector<double> out(size_t(x.rows * y.k), 0.0);
  for (int64_t f = 0; f < folds; ++f) {
    int64_t lo = x.rows * f / folds, hi = x.rows * (f + 1) / folds;
    std::vector<int64_t> tr, te(perm.begin() + lo, perm.begin() + hi);
    tr.insert(tr.end(), perm.begin(), perm.begin() + lo);
    tr.insert(tr.end(), perm.begin() + hi, perm.end());
    PredictorOptions of = o;
    of.seed = o.seed * 31 + uint64_t(f) + 1;
    std::vector<double> p = fit_predict(select_rows(x, tr), select_rows(y, tr), select_rows(x, te), of);
    for (size_t i = 0; i < te.size(); ++i)
      std::copy(p.begin() + int64_t(i) * y.k, p.begin() + int64_t(i + 1) * y.k, out.begin() + te[i] * y.k);
  }
  return out;
}

std::vector<double> average_scores(const std::vector<double>& p1, const std::vector<double>& p2) {
  PE_CHECK(p1.size() == p2.size(), "probe: averaging ", p1.size(), " and ", p2.size(), " scores");
  std::vector<double> a(p1.size());
  for (size_t i = 0; i < a.size(); ++i) a[i] = 0.5 * (p1[i] + p2[i]);
  return a;
}

std::vector<double> stack_scores(const std::vector<double>& oof1, const std::vector<double>& oof2, const ProbeLabels& y,
                                 const std::vector<double>& p1, const std::vector<double>& p2, uint64_t seed,
                                 int64_t epochs) {
  PE_CHECK(oof1.size() == size_t(y.n * y.k) && oof2.size() == oof1.size(), "probe: stacking inputs do not match labels");
  PE_CHECK(p1.size() == p2.size() && p1.size() % size_t(y.k) == 0, "probe: stacking test scores do not match");
  (void)seed;  // full-batch and deterministic: the initialisation is fixed (a = b = 1/2, c = 0)
  auto transform = [&](const std::vector<double>& p, int64_t rows) {
    std::vector<float> z(p.size());
    for (size_t i = 0; i < p.size(); ++i) {
      double q = std::min(std::max(p[i], 1e-6), 1 - 1e-6);
      z[i] = float(y.multi_label ? std::log(q / (1 - q)) : std::log(q));
    }
    return Tensor::from_vector(z, {rows, y.k});
  };
  OmpThreads threads(1);
  Tensor z1 = transform(oof1, y.n), z2 = transform(oof2, y.n);
  Tensor a = Tensor::full({y.k}, 0.5), b = Tensor::full({y.k}, 0.5), c = Tensor::zeros({y.k});
  a.requires_grad_(true);
  b.requires_grad_(true);
  c.requires_grad_(true);
  AdamOptions ao;
  ao.lr = 0.05;
  ao.decoupled = false;
  Adam opt({ParamGroup{{a, b, c}, 1.0, false}}, ao);
  Tensor yt;
  if (y.multi_label) {
    std::vector<float> yf(y.y.begin(), y.y.end());
    yt = Tensor::from_vector(yf, {y.n, y.k});
  } else {
    yt = Tensor::from_vector(y.cls, {y.n});
  }
  for (int64_t e = 0; e < epochs; ++e) {
    Tensor logits = z1 * a + z2 * b + c;
    Tensor loss = y.multi_label ? probe_bce_with_logits(logits, yt) : cross_entropy(logits, yt);
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  NoGradGuard ng;
  const int64_t rows = int64_t(p1.size()) / y.k;
  Tensor logits = transform(p1, rows) * a + transform(p2, rows) * b + c;
  return (y.multi_label ? sigmoid(logits) : softmax(logits, -1)).to_double_vector();
}

std::vector<double> label_frequency_scores(const ProbeLabels& y, int64_t rows) {
  std::vector<double> f(size_t(y.k), 0.0);
  for (int64_t i = 0; i < y.n; ++i)
    for (int64_t k = 0; k < y.k; ++k) f[size_t(k)] += y.y[size_t(i * y.k + k)];
  for (auto& v : f) v /= double(std::max<int64_t>(1, y.n));
  std::vector<double> out;
  out.reserve(size_t(rows * y.k));
  for (int64_t i = 0; i < rows; ++i) out.insert(out.end(), f.begin(), f.end());
  return out;
}

}  // namespace pe
