#include <doctest/doctest.h>

#include "tests/common/cuda_tests.h"

#include <cmath>
#include <cstdio>

#include "autograd/gradcheck.h"
#include "models/protst.h"

using namespace pe;

namespace {

ProtSTConfig tiny_config() {
  ProtSTConfig c;
  c.protein.hidden_size = 8;
  c.protein.num_layers = 1;
  c.protein.num_heads = 2;
  c.protein.intermediate_size = 16;
  c.text.vocab_size = 20;
  c.text.hidden_size = 8;
  c.text.num_layers = 1;
  c.text.num_heads = 2;
  c.text.intermediate_size = 16;
  c.text.max_position_embeddings = 16;
  c.embed_dim = 8;
  c.fusion_heads = 2;
  c.conversion_hidden = 8;
  return c;
}

// Three proteins (lengths 5, 3, 1 residues) and three texts (4, 2, 3 words), with masked positions.
ProtSTBatch tiny_batch(Device dev = Device::cpu()) {
  const int64_t B = 3, Lp = 7, Lt = 6;
  std::vector<int64_t> pid = {0, 5, 32, 7, 9, 32, 2,  //
                              0, 12, 32, 4, 2, 1, 1,  //
                              0, 32, 2, 1, 1, 1, 1};
  std::vector<int64_t> pmask = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0};
  std::vector<int64_t> rmask = {0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0};
  std::vector<int64_t> tid = {2, 7, 4, 9, 11, 3,  //
                              2, 4, 13, 3, 0, 0,  //
                              2, 8, 4, 15, 3, 0};
  std::vector<int64_t> tmask = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0};
  std::vector<int64_t> wmask = {0, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0};
  ProtSTBatch b;
  b.protein_ids = Tensor::from_vector(pid, {B, Lp}, dev);
  b.protein_mask = Tensor::from_vector(pmask, {B, Lp}, dev);
  b.residue_mask = Tensor::from_vector(rmask, {B, Lp}, dev);
  b.protein_mlm_index = Tensor::from_vector(std::vector<int64_t>{2, 5, 9, 15}, {4}, dev);
  b.protein_mlm_target = Tensor::from_vector(std::vector<int64_t>{6, 10, 8, 17}, {4}, dev);
  b.text_ids = Tensor::from_vector(tid, {B, Lt}, dev);
  b.text_mask = Tensor::from_vector(tmask, {B, Lt}, dev);
  b.word_mask = Tensor::from_vector(wmask, {B, Lt}, dev);
  b.text_mlm_index = Tensor::from_vector(std::vector<int64_t>{2, 8, 14}, {3}, dev);
  b.text_mlm_target = Tensor::from_vector(std::vector<int64_t>{5, 6, 12}, {3}, dev);
  b.pair_group = Tensor::from_vector(std::vector<int64_t>{0, 1, 0}, {3}, dev);  // rows 0 and 2 share a text
  return b;
}

}  // namespace

TEST_SUITE("gradcheck") {
  TEST_CASE("whole ProtST loss: float64 gradient check of every parameter tensor") {
    Generator gen(5);
    ProtSTModel model(tiny_config(), gen, {DType::F64, Device::cpu()});
    model.freeze_text_encoder(false);  // check the text encoder's gradients too
    ProtSTBatch b = tiny_batch();
    std::vector<Tensor> params = model.params().parameters();
    CHECK(params.size() > 60);
    auto f = [&](const std::vector<Tensor>&) { return model.forward(b, true).total; };
    GradcheckOptions opt;
    opt.max_elements_per_input = 4;
    opt.atol = 1e-6;
    opt.rtol = 1e-4;
    GradcheckResult r = gradcheck(f, params, opt);
    INFO(r.detail);
    CHECK(r.ok);
  }
}

TEST_SUITE("unit") {
  TEST_CASE("ProtST forward: finite losses near their chance values - frozen text encoder gets no gradient") {
    Generator gen(5);
    ProtSTModel model(tiny_config(), gen, {DType::F32, Device::cpu()});
    model.freeze_text_encoder(true);
    ProtSTOutput o = model.forward(tiny_batch(), true);
    CHECK(std::isfinite(o.total.item()));
    CHECK(o.mlm.item() == doctest::Approx(std::log(33.0)).epsilon(0.3));
    CHECK(o.logit_scale.item() == doctest::Approx(1 / 0.07).epsilon(1e-5));
    o.total.backward();
    for (const Tensor& p : model.params().parameters("text_model.")) CHECK_FALSE(p.grad().defined());
    CHECK(model.params().get("graph_mlp.layers.0.weight").grad().defined());
    CHECK(model.params().get("protein_model.esm.encoder.layer.0.attention.self.query.weight").grad().defined());
  }

  TEST_CASE("ProtST loss weights: w_cl = w_mmp = 0 leaves the masked-LM loss alone (the probe's MLM-only model)") {
    ProtSTConfig cfg = tiny_config();
    Generator g1(5), g2(5);
    ProtSTModel full(cfg, g1, {DType::F32, Device::cpu()});
    cfg.w_cl = 0;
    cfg.w_mmp = 0;
    ProtSTModel mlm_only(cfg, g2, {DType::F32, Device::cpu()});
    ProtSTOutput a = full.forward(tiny_batch(), true), b = mlm_only.forward(tiny_batch(), true);
    CHECK(a.total.item() == doctest::Approx(a.cl.item() + a.mlm.item() + a.mmp_protein.item() + a.mmp_text.item()).epsilon(1e-5));
    CHECK(b.cl.item() > 0.1);
    CHECK(b.total.item() == doctest::Approx(b.mlm.item()).epsilon(1e-6));
    b.total.backward();
    Tensor gs = mlm_only.params().get("graph_mlp.layers.0.weight").grad();  // read only by InfoNCE
    if (gs.defined())
      for (double v : gs.to_double_vector()) CHECK(v == 0.0);
    CHECK(mlm_only.params().get("protein_model.esm.encoder.layer.0.attention.self.query.weight").grad().defined());
  }

  TEST_CASE("InfoNCE: identical texts are not negatives - and the scale clamps at ln 100") {
    Tensor p = l2_normalize(Tensor::from_vector(std::vector<double>{1, 0, 0, 1, 1, 0.1}, {3, 2}));
    Tensor s = Tensor::scalar(std::log(10.0), DType::F64).requires_grad_();
    Tensor group = Tensor::from_vector(std::vector<int64_t>{0, 1, 0}, {3});
    InfoNceResult single = info_nce(p, p, s, std::log(100.0));
    InfoNceResult multi = info_nce(p, p, s, std::log(100.0), group);
    CHECK(multi.loss.item() < single.loss.item());
    // Hand computation of the p->t term with two positives in rows 0 and 2.
    std::vector<double> pv = p.to_double_vector();
    double expect = 0;
    for (int i = 0; i < 3; ++i) {
      double all = 0, pos = 0;
      for (int j = 0; j < 3; ++j) {
        double l = 10.0 * (pv[size_t(2 * i)] * pv[size_t(2 * j)] + pv[size_t(2 * i + 1)] * pv[size_t(2 * j + 1)]);
        all += std::exp(l);
        if ((i == j) || (i != 1 && j != 1)) pos += std::exp(l);
      }
      expect += std::log(all) - std::log(pos);
    }
    CHECK(multi.p2t.item() == doctest::Approx(expect / 3));
    Tensor big = Tensor::scalar(6.0, DType::F64).requires_grad_();
    InfoNceResult clamped = info_nce(p, p, big, std::log(100.0));
    CHECK(clamped.scale.item() == doctest::Approx(100.0));
    clamped.loss.backward();
    CHECK(big.grad().item() == 0.0);
  }
}

TEST_SUITE("cuda") {
  TEST_CASE("ProtST loss and gradients on CUDA match the float64 CPU model") {
    if (skip_without_cuda()) return;
    Generator g1(5), g2(5);
    ProtSTModel ref(tiny_config(), g1, {DType::F64, Device::cpu()});
    ProtSTModel gpu(tiny_config(), g2, {DType::F32, Device::cuda()});
    ProtSTOutput a = ref.forward(tiny_batch(), true), b = gpu.forward(tiny_batch(Device::cuda()), true);
    CHECK(b.total.item() == doctest::Approx(a.total.item()).epsilon(1e-4));
    a.total.backward();
    b.total.backward();
    for (const std::string& n : ref.params().names()) {
      Tensor ga = ref.params().get(n).grad(), gb = gpu.params().get(n).grad();
      if (!ga.defined()) continue;
      REQUIRE(gb.defined());
      std::vector<double> x = ga.to_double_vector(), y = gb.to_double_vector();
      double mag = 1e-6, err = 0;
      for (size_t i = 0; i < x.size(); ++i) {
        mag = std::max(mag, std::abs(x[i]));
        err = std::max(err, std::abs(x[i] - y[i]));
      }
      INFO("gradient of ", n);
      CHECK(err / mag < 1e-3);
    }
  }

  TEST_CASE("ProtST loss under bf16 autocast on CUDA stays within bf16 tolerance of the f32 model") {
    if (skip_without_cuda()) return;
    Generator g1(5), g2(5);
    ProtSTModel ref(tiny_config(), g1, {DType::F64, Device::cpu()});
    ProtSTModel gpu(tiny_config(), g2, {DType::F32, Device::cuda()});
    ProtSTOutput a = ref.forward(tiny_batch(), true);
    AutocastBf16 autocast;
    ProtSTOutput b = gpu.forward(tiny_batch(Device::cuda()), true);
    CHECK(b.total.item() == doctest::Approx(a.total.item()).epsilon(2e-2));
    b.total.backward();
    for (const Tensor& p : gpu.params().parameters())
      if (p.grad().defined()) CHECK(p.grad().dtype() == DType::F32);
  }
}

