#include "probe/joint.h"

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
#include "data/tokenizer_esm.h"

namespace pe {

JointInputs select_rows(const JointInputs& x, const std::vector<int64_t>& rows) {
  JointInputs s;
  s.text_pad = x.text_pad;
  s.text_cls = x.text_cls;
  s.text_sep = x.text_sep;
  for (int64_t r : rows) {
    s.residues.push_back(x.residues[size_t(r)]);
    if (x.multimodal()) s.texts.push_back(x.texts[size_t(r)]);
  }
  return s;
}

JointBatch make_joint_batch(const JointInputs& x, const std::vector<int64_t>& rows, Device dev) {
  const int64_t B = int64_t(rows.size());
  PE_CHECK(B > 0, "joint: empty batch");
  int64_t Lp = 0, Lt = 0;
  for (int64_t r : rows) {
    PE_CHECK(!x.residues[size_t(r)].empty(), "joint: protein ", r, " has no residues");
    Lp = std::max(Lp, int64_t(x.residues[size_t(r)].size()) + 2);
    if (x.multimodal()) Lt = std::max(Lt, int64_t(x.texts[size_t(r)].size()));
  }
  std::vector<int64_t> pid(size_t(B * Lp), esm::kPad), pmask(size_t(B * Lp), 0), rmask(size_t(B * Lp), 0);
  for (int64_t b = 0; b < B; ++b) {
    const auto& res = x.residues[size_t(rows[size_t(b)])];
    const int64_t n = int64_t(res.size());
    pid[size_t(b * Lp)] = esm::kCls;
    for (int64_t i = 0; i < n; ++i) pid[size_t(b * Lp + 1 + i)] = res[size_t(i)];
    pid[size_t(b * Lp + n + 1)] = esm::kEos;
    for (int64_t i = 0; i < n + 2; ++i) pmask[size_t(b * Lp + i)] = 1;
    for (int64_t i = 1; i <= n; ++i) rmask[size_t(b * Lp + i)] = 1;
  }
  JointBatch jb;
  jb.protein_ids = Tensor::from_vector(pid, {B, Lp}, dev);
  jb.protein_mask = Tensor::from_vector(pmask, {B, Lp}, dev);
  jb.residue_mask = Tensor::from_vector(rmask, {B, Lp}, dev);
  if (!x.multimodal()) return jb;
  std::vector<int64_t> tid(size_t(B * Lt), x.text_pad), tmask(size_t(B * Lt), 0), wmask(size_t(B * Lt), 0);
  for (int64_t b = 0; b < B; ++b) {
    const auto& t = x.texts[size_t(rows[size_t(b)])];
    PE_CHECK(!t.empty(), "joint: protein ", rows[size_t(b)], " has an empty text");
    for (size_t i = 0; i < t.size(); ++i) {
      const size_t at = size_t(b * Lt) + i;
      tid[at] = t[i];
      tmask[at] = 1;
      wmask[at] = (t[i] == x.text_cls || t[i] == x.text_sep || t[i] == x.text_pad) ? 0 : 1;
    }
  }
  jb.text_ids = Tensor::from_vector(tid, {B, Lt}, dev);
  jb.text_mask = Tensor::from_vector(tmask, {B, Lt}, dev);
  jb.word_mask = Tensor::from_vector(wmask, {B, Lt}, dev);
  return jb;
}

Tensor joint_features(ProtSTModel& model, const JointBatch& b, bool train) {
  if (!b.text_ids.defined()) return masked_mean(model.protein_hidden(b.protein_ids, b.protein_mask), b.residue_mask);
  auto [fp, ft] = model.fused_states(b.protein_ids, b.protein_mask, b.residue_mask, b.text_ids, b.text_mask, train);
  return concat({masked_mean(fp, b.residue_mask), masked_mean(ft, b.word_mask)}, -1);
}

int64_t joint_fit_steps(int64_t train_rows, const JointOptions& o) {
  return o.epochs * ((train_rows + o.batch_size - 1) / std::max<int64_t>(1, o.batch_size));
}

namespace {

// One epoch's batches: a seeded permutation, sorted by protein length within windows of 20 batches,
// cut into batches whose order is shuffled again. Every row once (without replacement).
std::vector<std::vector<int64_t>> epoch_batches(const JointInputs& x, int64_t batch, Generator& gen) {
  const int64_t n = x.size(), window = batch * 20;
  std::vector<int64_t> perm = gen.permutation(n);
  std::vector<std::vector<int64_t>> out;
  for (int64_t w = 0; w < n; w += window) {
    auto lo = perm.begin() + w, hi = perm.begin() + std::min(n, w + window);
    std::stable_sort(lo, hi, [&](int64_t a, int64_t b) { return x.residues[size_t(a)].size() < x.residues[size_t(b)].size(); });
    for (auto it = lo; it < hi; it += std::min<int64_t>(batch, hi - it)) out.emplace_back(it, it + std::min<int64_t>(batch, hi - it));
  }
  std::vector<int64_t> order = gen.permutation(int64_t(out.size()));
  std::vector<std::vector<int64_t>> shuffled;
  shuffled.reserve(out.size());
  for (int64_t i : order) shuffled.push_back(std::move(out[size_t(i)]));
  return shuffled;
}

}  // namespace

std::vector<double> joint_fit_predict(ProtSTModel& model, const JointInputs& x, const ProbeLabels& y,
                                      const JointInputs& x_test, const JointOptions& o, JointFitStats* stats) {
  PE_CHECK(x.size() == y.n && y.n > 0, "joint: ", x.size(), " training proteins for ", y.n, " labelled rows");
  PE_CHECK(x.multimodal() == x_test.multimodal(), "joint: training and test inputs differ in having texts");
  PE_CHECK(y.k >= 1 && o.epochs >= 1 && o.batch_size >= 1 && o.lr > 0 && o.encoder_lr_ratio >= 0,
           "joint: bad options");
  OmpThreads threads(o.threads);
  const bool fused = x.multimodal();
  const std::vector<Tensor> all = model.params().parameters();
  PE_CHECK(!all.empty(), "joint: the model has no trainable parameters");
  const DType dt = all[0].dtype();
  const Device dev = all[0].device();
  Generator gen(o.seed * 0x9E3779B97F4A7C15ULL + 0x701e7);

  // Head: uniform(+-1/sqrt(in)) weights; bias at the label prior (logit of each term's training
  // frequency; log class frequency for single-label), so the first steps do not spend themselves
  // learning the base rates.
  const int64_t in = fused ? 2 * model.config().embed_dim : model.config().protein.hidden_size;
  std::vector<double> w0(size_t(y.k * in)), b0(size_t(y.k));
  const double bound = 1.0 / std::sqrt(double(in));
  for (auto& v : w0) v = gen.uniform(-bound, bound);
  for (int64_t k = 0; k < y.k; ++k) {
    double f = 0;
    for (int64_t i = 0; i < y.n; ++i) f += y.y[size_t(i * y.k + k)];
    f = std::min(std::max(f / double(y.n), 1e-4), 1 - 1e-4);
    b0[size_t(k)] = y.multi_label ? std::log(f / (1 - f)) : std::log(f);
  }
  Tensor hw = Tensor::from_vector(w0, {y.k, in}, dev).to(dt).contiguous(), hb = Tensor::from_vector(b0, {y.k}, dev).to(dt).contiguous();
  hw.requires_grad_(true);
  hb.requires_grad_(true);

  // Parameter groups: the head, projection MLPs and fusion block at lr; the encoders at lr * ratio.
  // Only what the features read is handed to the optimiser (unimodal: the protein encoder).
  // (By the store's names: a tensor's own name() is the one its encoder gave it, without the prefix.)
  std::vector<Tensor> fast = {hw, hb}, slow;
  if (o.fine_tune) {
    const ParamStore& ps = model.params();
    auto take = [&](std::vector<Tensor>& dst, const char* prefix) {
      for (const Tensor& p : ps.parameters(prefix)) dst.push_back(p);
    };
    take(slow, "protein_model.");
    if (fused) {
      if (!model.text_frozen()) take(slow, "text_model.");
      for (const char* p : {"residue_mlp.", "word_mlp.", "fusion."}) take(fast, p);
    }
  }
  if (stats) {
    *stats = JointFitStats{};
    for (const auto* g : {&fast, &slow})
      for (const Tensor& p : *g) {
        ++stats->trained_tensors;
        stats->trained_numel += p.numel();
      }
  }
  // Frozen parameters must not collect gradients (nor cost backward work) in a head-only fit.
  std::vector<Tensor> restore;
  if (!o.fine_tune)
    for (Tensor p : all) {
      p.requires_grad_(false);
      restore.push_back(p);
    }
  AdamOptions ao;
  ao.lr = o.lr;
  ao.weight_decay = o.weight_decay;
  ao.decoupled = true;
  std::vector<ParamGroup> groups = {ParamGroup{fast, 1.0, true}};
  if (!slow.empty()) groups.push_back(ParamGroup{slow, o.encoder_lr_ratio, true});
  Adam opt(groups, ao);

  const int64_t total = joint_fit_steps(x.size(), o);
  int64_t step = 0;
  for (int64_t e = 0; e < o.epochs; ++e) {
    double loss_sum = 0;
    int64_t batches = 0;
    for (const std::vector<int64_t>& rows : epoch_batches(x, o.batch_size, gen)) {
      const int64_t n = int64_t(rows.size());
      JointBatch b = make_joint_batch(x, rows, dev);
      Tensor z = linear(joint_features(model, b, /*train=*/o.fine_tune), hw, hb);
      Tensor loss;
      if (y.multi_label) {
        std::vector<double> yb(size_t(n * y.k));
        for (int64_t i = 0; i < n; ++i)
          for (int64_t k = 0; k < y.k; ++k) yb[size_t(i * y.k + k)] = y.y[size_t(rows[size_t(i)] * y.k + k)];
        loss = probe_bce_with_logits(z, Tensor::from_vector(yb, {n, y.k}, dev).to(dt));
      } else {
        std::vector<int64_t> cb(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) cb[size_t(i)] = y.cls[size_t(rows[size_t(i)])];
        loss = cross_entropy(z, Tensor::from_vector(cb, {n}, dev));
      }
      opt.zero_grad();
      loss.backward();
      opt.step();
      loss_sum += loss.item();
      ++batches;
      ++step;
      if (o.progress) o.progress(step, total);
    }
    if (stats) stats->epoch_loss.push_back(loss_sum / double(std::max<int64_t>(1, batches)));
  }
  if (stats) stats->steps = step;
  for (Tensor& p : restore) p.requires_grad_(true);  // parameters() lists only trainable tensors

  // Predict: BatchNorm on its running statistics; batches sorted by length, rows back in order.
  NoGradGuard ng;
  std::vector<double> out(size_t(x_test.size() * y.k));
  std::vector<int64_t> order(size_t(x_test.size()));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return x_test.residues[size_t(a)].size() < x_test.residues[size_t(b)].size();
  });
  for (int64_t s = 0; s < x_test.size(); s += o.predict_batch_size) {
    std::vector<int64_t> rows(order.begin() + s, order.begin() + std::min(x_test.size(), s + o.predict_batch_size));
    Tensor z = linear(joint_features(model, make_joint_batch(x_test, rows, dev), /*train=*/false), hw, hb);
    std::vector<double> p = (y.multi_label ? sigmoid(z) : softmax(z, -1)).to_double_vector();
    for (size_t i = 0; i < rows.size(); ++i)
      std::copy(p.begin() + int64_t(i) * y.k, p.begin() + int64_t(i + 1) * y.k, out.begin() + rows[i] * y.k);
  }
  return out;
}

}  // namespace pe
