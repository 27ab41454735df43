// probe/joint.h: the joint fusion predictor (ProtST's fused representation fine-tuned end to end).
// A float64 gradient check of the pooled-fusion head path (and of the unimodal pooled path), a task
// whose labels are the XOR of a sequence property and a text property (no linear probe on frozen
// features of the two modalities can separate it; fine-tuning through the fusion block can),
// determinism per seed, and a frozen text encoder left untouched.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/rng.h"
#include "data/tokenizer_esm.h"
#include "probe/joint.h"
#include "probe/suite.h"

using namespace pe;

namespace {

ProtSTConfig tiny_config(int64_t width = 8) {
  ProtSTConfig c;
  c.protein.hidden_size = width;
  c.protein.num_layers = 1;
  c.protein.num_heads = 2;
  c.protein.intermediate_size = 2 * width;
  c.text.vocab_size = 20;
  c.text.hidden_size = width;
  c.text.num_layers = 1;
  c.text.num_heads = 2;
  c.text.intermediate_size = 2 * width;
  c.text.max_position_embeddings = 16;
  c.embed_dim = width;
  c.fusion_heads = 2;
  c.conversion_hidden = 8;
  return c;
}

// Text ids: [CLS] = 2, [SEP] = 3, [PAD] = 0; words 4..19.
JointInputs with_specials(JointInputs x) {
  x.text_pad = 0;
  x.text_cls = 2;
  x.text_sep = 3;
  return x;
}

// Residue ids of a string of amino-acid letters.
std::vector<int32_t> residues(const std::string& s) {
  std::vector<int32_t> ids = esm::encode(s);
  return std::vector<int32_t>(ids.begin() + 1, ids.end() - 1);
}

// XOR task: the protein is made mostly of A/L (s = 0) or of K/E (s = 1), the text of words 4..8
// (t = 0) or 9..13 (t = 1); one term, on when s != t.
struct XorTask {
  JointInputs x;
  ProbeLabels y;
};
XorTask xor_task(int64_t n, uint64_t seed) {
  Generator g(seed);
  XorTask t;
  t.x = with_specials(JointInputs{});
  t.y.n = n;
  t.y.k = 1;
  for (int64_t i = 0; i < n; ++i) {
    const int s = int(i % 2), tt = int((i / 2) % 2);
    const std::string letters = s ? "KEKER" : "ALALG";
    std::string seq;
    const int64_t len = 6 + g.randint(0, 6);
    for (int64_t j = 0; j < len; ++j) seq += letters[size_t(g.randint(0, 5))];
    t.x.residues.push_back(residues(seq));
    std::vector<int32_t> text = {2};
    const int64_t words = 1 + g.randint(0, 3);
    for (int64_t j = 0; j < words; ++j) text.push_back(int32_t((tt ? 9 : 4) + g.randint(0, 5)));
    text.push_back(3);
    t.x.texts.push_back(text);
    t.y.y.push_back(uint8_t(s != tt));
  }
  return t;
}

double accuracy(const std::vector<double>& p, const ProbeLabels& y) {
  double ok = 0;
  for (int64_t i = 0; i < y.n; ++i) ok += (p[size_t(i)] > 0.5) == (y.y[size_t(i)] != 0);
  return ok / double(y.n);
}

// Pooled frozen encoder states of one modality (as `protst probe --features encoder`).
FeatureMatrix frozen(ProtSTModel& m, const JointInputs& x, bool text) {
  NoGradGuard ng;
  std::vector<int64_t> rows(size_t(x.size()));
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = int64_t(i);
  JointBatch b = make_joint_batch(x, rows, Device::cpu());
  Tensor f = text ? masked_mean(m.text_hidden(b.text_ids, b.text_mask), b.word_mask)
                  : masked_mean(m.protein_hidden(b.protein_ids, b.protein_mask), b.residue_mask);
  FeatureMatrix fm;
  fm.rows = f.size(0);
  fm.cols = f.size(1);
  fm.v = f.to_float_vector();
  return fm;
}

}  // namespace

TEST_SUITE("gradcheck") {
  TEST_CASE("joint fusion head path: float64 gradient check through pooling, fusion, projections and both encoders") {
    for (bool multimodal : {true, false}) {
      CAPTURE(multimodal);
      Generator gen(5);
      ProtSTModel model(tiny_config(), gen, {DType::F64, Device::cpu()});
      model.freeze_text_encoder(false);
      JointInputs x = with_specials(JointInputs{});
      x.residues = {residues("MKVLA"), residues("GWE"), residues("C")};
      if (multimodal) x.texts = {{2, 7, 4, 9, 11, 3}, {2, 4, 13, 3}, {2, 8, 4, 15, 3}};
      JointBatch b = make_joint_batch(x, {0, 1, 2}, Device::cpu());
      const int64_t in = multimodal ? 16 : 8, k = 2;
      Generator hg(9);
      std::vector<double> wv(static_cast<size_t>(k * in)), bv(static_cast<size_t>(k));
      for (auto& v : wv) v = hg.normal() * 0.5;
      for (auto& v : bv) v = hg.normal() * 0.1;
      Tensor hw = Tensor::from_vector(wv, {k, in}), hb = Tensor::from_vector(bv, {k});
      hw.requires_grad_(true);
      hb.requires_grad_(true);
      Tensor y = Tensor::from_vector(std::vector<double>{1, 0, 0, 1, 1, 1}, {3, k});
      std::vector<Tensor> inputs = {hw, hb};
      const ParamStore& ps = model.params();
      for (const std::string& n : ps.names()) {
        if (ps.is_buffer(n) || n.find("lm_head") != std::string::npos || n.find("pooler") != std::string::npos) continue;
        bool read = n.rfind("protein_model.", 0) == 0;
        if (multimodal)
          read = read || n.rfind("text_model.", 0) == 0 || n.rfind("residue_mlp.", 0) == 0 ||
                 n.rfind("word_mlp.", 0) == 0 || n.rfind("fusion.", 0) == 0;
        if (read && ps.get(n).requires_grad()) inputs.push_back(ps.get(n));
      }
      CHECK(inputs.size() > (multimodal ? size_t(40) : size_t(15)));
      auto f = [&](const std::vector<Tensor>&) {
        return probe_bce_with_logits(linear(joint_features(model, b, /*train=*/true), hw, hb), y);
      };
      GradcheckOptions opt;
      opt.max_elements_per_input = 4;
      opt.atol = 1e-6;
      opt.rtol = 1e-4;
      GradcheckResult r = gradcheck(f, inputs, opt);
      INFO(r.detail);
      CHECK(r.ok);
    }
  }
}

TEST_SUITE("unit") {
  TEST_CASE("joint fusion learns a sequence-XOR-text task that linear probes on frozen features cannot separate") {
    XorTask tr = xor_task(128, 1), te = xor_task(64, 2);
    const ProtSTConfig cfg = tiny_config(16);
    // Frozen features, linear probe on [protein, text] (early fusion, linear): additive in the two
    // modalities, so at best 3 of the 4 XOR cells.
    Generator g0(3);
    ProtSTModel m0(cfg, g0, {DType::F32, Device::cpu()});
    FeatureMatrix ptr = frozen(m0, tr.x, false), ttr = frozen(m0, tr.x, true);
    FeatureMatrix pte = frozen(m0, te.x, false), tte = frozen(m0, te.x, true);
    PredictorOptions lin;
    lin.epochs = 200;
    lin.batch_size = 32;
    lin.lr = 1e-2;
    const double acc_linear =
        accuracy(fit_predict(concat_features(ptr, ttr), tr.y, concat_features(pte, tte), lin), te.y);

    JointOptions o;
    o.epochs = 40;
    o.batch_size = 16;
    o.lr = 1e-2;
    o.encoder_lr_ratio = 0.1;
    o.weight_decay = 0;
    // Head only on the frozen fused features (the same model, nothing but the head trains).
    Generator g1(3);
    ProtSTModel m1(cfg, g1, {DType::F32, Device::cpu()});
    o.fine_tune = false;
    JointFitStats s_frozen;
    const double acc_frozen = accuracy(joint_fit_predict(m1, tr.x, tr.y, te.x, o, &s_frozen), te.y);
    // Fine-tuned end to end.
    Generator g2(3);
    ProtSTModel m2(cfg, g2, {DType::F32, Device::cpu()});
    o.fine_tune = true;
    JointFitStats s_tuned;
    const double acc_tuned = accuracy(joint_fit_predict(m2, tr.x, tr.y, te.x, o, &s_tuned), te.y);
    std::printf("XOR task: test accuracy linear probe on frozen [seq, text] %.3f; head on frozen fused %.3f "
                "(train loss %.4f); fine-tuned joint fusion %.3f (train loss %.4f, %lld tensors)\n",
                acc_linear, acc_frozen, s_frozen.epoch_loss.back(), acc_tuned, s_tuned.epoch_loss.back(),
                (long long)s_tuned.trained_tensors);
    CHECK(s_frozen.trained_tensors == 2);
    CHECK(s_tuned.steps == 40 * 8);
    CHECK(acc_linear <= 0.8);
    CHECK(s_tuned.epoch_loss.back() < 0.5 * s_frozen.epoch_loss.back());
    CHECK(s_tuned.epoch_loss.back() < s_tuned.epoch_loss.front());
    CHECK(acc_tuned >= 0.95);
  }

  TEST_CASE("joint fusion: deterministic per seed; a frozen text encoder stays frozen; unimodal fine-tuning") {
    XorTask tr = xor_task(24, 1), te = xor_task(8, 2);
    JointOptions o;
    o.epochs = 2;
    o.batch_size = 8;
    auto run = [&](uint64_t seed, bool freeze_text, const JointInputs& x, const JointInputs& xt) {
      Generator g(3);
      ProtSTModel m(tiny_config(), g, {DType::F32, Device::cpu()});
      m.freeze_text_encoder(freeze_text);
      const std::vector<double> text_before = m.params().get("text_model.embeddings.word_embeddings.weight").to_double_vector();
      const std::vector<double> prot_before =
          m.params().get("protein_model.esm.encoder.layer.0.attention.self.query.weight").to_double_vector();
      JointOptions oo = o;
      oo.seed = seed;
      std::vector<double> p = joint_fit_predict(m, x, tr.y, xt, oo);
      const bool text_moved = m.params().get("text_model.embeddings.word_embeddings.weight").to_double_vector() != text_before;
      const bool prot_moved =
          m.params().get("protein_model.esm.encoder.layer.0.attention.self.query.weight").to_double_vector() != prot_before;
      CHECK(prot_moved);
      CHECK(text_moved == (!freeze_text && x.multimodal()));
      return p;
    };
    std::vector<double> a = run(0, true, tr.x, te.x), b = run(0, true, tr.x, te.x), c = run(1, true, tr.x, te.x);
    REQUIRE(a.size() == 8);
    CHECK(a == b);
    CHECK(a != c);
    run(0, false, tr.x, te.x);
    // Unimodal: the pooled protein states, fine-tuned (no texts).
    JointInputs u = tr.x, ut = te.x;
    u.texts.clear();
    ut.texts.clear();
    std::vector<double> pu = run(0, false, u, ut), pu2 = run(0, false, u, ut);
    CHECK(pu == pu2);
    for (double v : pu) CHECK((v > 0 && v < 1));
  }

  TEST_CASE("add_probe_scores: a new row goes after its encoder's rows; seeds accumulate into mean and std") {
    ProbeLabels test;
    test.n = 2;
    test.k = 2;
    test.y = {1, 0, 0, 1};
    std::vector<ProbeRow> rows = {{"", "label-frequency", {}, 0}, {"A", "seq MLP", {}, 0}, {"B", "seq MLP", {}, 0}};
    add_probe_scores(rows, "A", "joint fusion (fine-tuned)", {0.9, 0.1, 0.1, 0.9}, test);
    add_probe_scores(rows, "A", "joint fusion (fine-tuned)", {0.1, 0.9, 0.9, 0.1}, test);
    REQUIRE(rows.size() == 4);
    CHECK(rows[2].label() == "A joint fusion (fine-tuned)");
    CHECK(rows[2].metrics["fmax"].values.size() == 2);
    CHECK(rows[2].metrics["fmax"].std > 0);
    add_probe_scores(rows, "C", "seq fine-tuned", {0.9, 0.1, 0.1, 0.9}, test);
    CHECK(rows.back().label() == "C seq fine-tuned");
  }
}
