// Data-parallel `protst train` (app/data_parallel.h) under mpirun: the tiny training run of the app
// tests on N ranks x B/N pairs against the same run in one process x B pairs (every rank runs that
// reference itself, on the single-process communicator). w_mmp = 0: the fusion BatchNorm's statistics
// are still per rank (no sync BatchNorm yet), so the cross-modal terms are left out of this comparison.
//
// In float64 (--precision f64) the two runs must agree to 1e-12: losses of every step and every
// parameter at the end (the attention key biases, whose exact gradient is zero, must stay at zero). In f32 the losses must agree to 1e-5; the parameters are compared too, but
// Adam divides each gradient element by its own running magnitude, so the f32 round-off of a gradient
// element that cancels (a bias gradient summed over tokens whose terms nearly cancel) reaches the
// update undamped: 1e-5 relative held on one machine and failed at 1.01e-5 on another (CI, a
// LayerNorm bias). The f32 parameter check is therefore 1e-4; the exact statement is the f64 one.
#include <doctest/doctest.h>

#include <cstdio>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "app/model_io.h"
#include "tests/app/tiny_train.h"
#include "tests/common/compare.h"
#include "tests/common/temp_dir.h"
#include "tests/dist/dist_env.h"

using namespace pe;
using namespace pe::dist;

namespace {

// Rank 0's string on every rank (at most 1023 bytes).
std::string broadcast_string(Communicator& c, const std::string& s) {
  std::vector<int64_t> v(1024, 0);
  for (size_t i = 0; i < s.size() && i < 1023; ++i) v[i] = int64_t((unsigned char)s[i]);
  Tensor t = Tensor::from_vector(v, {1024});
  c.broadcast(t, 0);
  std::string out;
  for (int64_t x : t.to_int_vector()) {
    if (!x) break;
    out.push_back(char(x));
  }
  return out;
}

std::vector<nlohmann::json> step_metrics(const std::string& path) {
  std::ifstream f(path);
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(f, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (j.contains("loss")) out.push_back(j);
  }
  return out;
}

}  // namespace

TEST_SUITE("dist") {

// Trains o on every rank of the job and, on each rank, the same run in one process; checks losses
// of every step to loss_tol and every parameter at the end to param_tol (relative to its magnitude).
void check_equivalence(TrainOptions o, double loss_tol, double param_tol, bool skip_key_bias) {
  Communicator& c = test_comm();
  const int W = c.world_size();
  std::unique_ptr<pe::testing::TempDir> tmp;
  if (c.rank() == 0) tmp = std::make_unique<pe::testing::TempDir>("dist_train");
  std::string base = broadcast_string(c, c.rank() == 0 ? tmp->dir.string() : std::string());
  o.out = base + "/dp";
  o.batch_size = 7;  // uneven shards: 4 + 3, 3 + 2 + 2
  o.steps = 6;
  o.w_mmp = 0;
  train(o, c);  // rank 0 writes base/dp
  TrainOptions r = o;
  r.out = base + "/ref-" + std::to_string(c.rank());
  auto single = make_single_communicator();
  train(r, *single);
  std::vector<nlohmann::json> got = step_metrics(o.out + "/metrics.jsonl"), ref = step_metrics(r.out + "/metrics.jsonl");
  REQUIRE(got.size() == ref.size());
  REQUIRE(got.size() >= 3);
  double worst_loss = 0;
  for (size_t k = 0; k < got.size(); ++k) {
    for (const char* key : {"loss", "cl", "cl_p2t", "cl_t2p", "mlm", "logit_scale", "mlm_acc"}) {
      INFO("step ", got[k]["step"].get<int64_t>(), " ", key, " on ", c.describe());
      double a = got[k][key].get<double>(), b = ref[k][key].get<double>();
      double e = std::fabs(a - b) / std::max(std::fabs(b), 1e-30);
      worst_loss = std::max(worst_loss, e);
      CHECK(e <= loss_tol);
    }
  }
  CHECK(ref.back()["loss"].get<double>() != ref.front()["loss"].get<double>());
  LoadedCheckpoint a = load_checkpoint_file(o.out + "/checkpoints/step-6.safetensors");
  LoadedCheckpoint b = load_checkpoint_file(r.out + "/checkpoints/step-6.safetensors");
  REQUIRE(a.model.size() == b.model.size());
  size_t compared = 0;
  double worst = 0;
  std::string worst_name;
  for (const auto& [name, t] : a.model) {
    if (name.find("running_") != std::string::npos) continue;  // BatchNorm statistics: per rank (no sync BN yet)
    // BERT's attention key biases get a zero gradient in exact arithmetic (softmax ignores a constant
    // added to a query's logits), so they hold only what Adam made of round-off; ESM's are rotated by
    // position, so theirs is not zero, but it nearly cancels. In f32 that round-off is near Adam's
    // epsilon and becomes steps of up to lr, in any two runs that sum in different orders,
    // data-parallel or not: key biases are not compared in f32. In f64 it is far below epsilon: ESM's
    // are compared like every other tensor, and BERT's must stay at zero to 1e-9 (lr x 1e-6) in both
    // runs, the exact-arithmetic statement.
    const bool key_bias = name.find("attention.self.key.bias") != std::string::npos;
    if (key_bias && skip_key_bias) continue;
    REQUIRE(b.model.count(name));
    if (key_bias && name.rfind("text_model.", 0) == 0) {
      for (const Tensor* x : {&t, static_cast<const Tensor*>(&b.model.at(name))})
        for (double v : x->to_double_vector()) CHECK_MESSAGE(std::fabs(v) < 1e-9, name, " moved to ", v);
      ++compared;
      continue;
    }
    CHECK(t.dtype() == (o.precision == "f64" ? DType::F64 : DType::F32));
    double e = pe::testing::rel_err(t, b.model.at(name), 1e-6);
    if (e >= worst) {
      worst = e;
      worst_name = name;
    }
    CHECK_MESSAGE(e < param_tol, name, " differs by ", e);
    ++compared;
  }
  CHECK(compared > 20);
  MESSAGE("data-parallel (", o.precision, ") on ", W, " ranks vs one process: losses within ", worst_loss, "; ", compared,
          " tensors, largest relative difference ", worst, " (", worst_name, ")");
  c.barrier();  // rank 0's folder stays until every rank has read it
}

TEST_CASE("protst train --precision f64: N ranks x B/N pairs equal 1 rank x B pairs to 1e-12 (losses, final parameters)") {
  TrainOptions o = tiny_options("");
  o.precision = "f64";
  check_equivalence(o, 1e-12, 1e-12, /*skip_key_bias=*/false);
}

TEST_CASE("protst train (f32): N ranks x B/N pairs equal 1 rank x B pairs (losses 1e-5, final parameters 1e-4)") {
  TrainOptions o = tiny_options("");
  o.precision = "f32";
  o.lr = 1e-4;  // smaller Adam steps: less room for the round-off described above
  check_equivalence(o, 1e-5, 1e-4, /*skip_key_bias=*/true);
}

}  // TEST_SUITE("dist")
