// Data-parallel `protst train` (app/data_parallel.h) under mpirun: the tiny training run of the app
// tests on N ranks x B/N pairs against the same run in one process x B pairs (every rank runs that
// reference itself, on the single-process communicator), with every loss term on (w_mmp = 1): the
// fusion BatchNorm is synchronised over the ranks (sync BatchNorm, the data-parallel default), so its
// statistics, its gradients and its running statistics are those of the whole batch. A third case
// shows that the sync path is what makes the runs equal: with --local-batchnorm (per-rank statistics,
// as ProtST's DDP) the cross-modal losses of N > 1 ranks differ from one process by far more than
// round-off. A fourth: ranks given different options refuse to start, all of them, naming the rank.
//
// In float64 (--precision f64) the two runs must agree to 1e-12: losses of every step and every
// parameter and BatchNorm running statistic at the end (the attention key biases, whose exact gradient is zero, must stay at zero). In f32 the losses must agree to 1e-5; the parameters are compared too, but
// Adam divides each gradient element by its own running magnitude, so the f32 round-off of a gradient
// element that cancels (a bias gradient summed over tokens whose terms nearly cancel) reaches the
// update undamped: 1e-5 relative held on one machine and failed at 1.01e-5 on another (CI, a
// LayerNorm bias). The f32 parameter check is therefore 1e-4; the exact statement is the f64 one.
#include <doctest/doctest.h>

#include <cstdio>
#include <cmath>
#include <cstring>
#include <iterator>
#include <string>
#include <vector>
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

// The job's communicator, counting what goes through it: the async all-reduces (the gradient
// buckets) and their elements, and the order of async ('A') and blocking ('B') collectives.
class CountingComm final : public Communicator {
 public:
  explicit CountingComm(Communicator& c) : c_(c) {}
  CommKind kind() const override { return c_.kind(); }
  int rank() const override { return c_.rank(); }
  int world_size() const override { return c_.world_size(); }
  int local_rank() const override { return c_.local_rank(); }
  int local_size() const override { return c_.local_size(); }
  Device device() const override { return c_.device(); }
  void all_reduce(const Tensor& t, Reduction op) override {
    log += 'B';
    c_.all_reduce(t, op);
  }
  std::unique_ptr<Work> all_reduce_async(const Tensor& t, Reduction op) override {
    log += 'A';
    ++async_calls;
    async_elements += t.numel();
    async_bytes += int64_t(t.nbytes());
    return c_.all_reduce_async(t, op);
  }
  void all_gather(const Tensor& in, const Tensor& out, const std::vector<int64_t>& counts) override {
    log += 'B';
    c_.all_gather(in, out, counts);
  }
  void reduce_scatter(const Tensor& in, const Tensor& out, Reduction op, const std::vector<int64_t>& counts) override {
    log += 'B';
    c_.reduce_scatter(in, out, op, counts);
  }
  void broadcast(const Tensor& t, int root) override {
    log += 'B';
    c_.broadcast(t, root);
  }
  void barrier() override { c_.barrier(); }

  int64_t async_calls = 0, async_elements = 0, async_bytes = 0;
  std::string log;

 private:
  Communicator& c_;
};

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

const char* const kLossKeys[] = {"loss", "cl", "cl_p2t", "cl_t2p", "mlm", "mmp_protein", "mmp_text", "logit_scale",
                                 "mlm_acc", "mmp_protein_acc", "mmp_text_acc"};

// Trains o on every rank of the job (rank 0 writes base/dp) and, on each rank, the same run in one
// process (base/ref-<rank>); returns base. Uneven shards: a global batch of 7 is 4 + 3, 3 + 2 + 2.
// `steps` steps (6; fewer where a step is slow, the emulated device's), the last one checkpointed.
std::string train_both(TrainOptions& o, TrainOptions& r, const char* tag, Communicator* dp_comm = nullptr,
                       int steps = 6) {
  Communicator& c = test_comm();
  static std::vector<std::unique_ptr<pe::testing::TempDir>> dirs;  // removed at exit
  std::string mine;
  if (c.rank() == 0) {
    dirs.push_back(std::make_unique<pe::testing::TempDir>(tag));
    mine = dirs.back()->dir.string();
  }
  std::string base = broadcast_string(c, mine);
  o.out = base + "/dp";
  o.batch_size = 7;
  o.steps = steps;
  if (steps != 6) o.save_every = steps;
  train(o, dp_comm ? *dp_comm : c);
  r = o;
  r.out = base + "/ref-" + std::to_string(c.rank());
  auto single = make_single_communicator();
  train(r, *single);
  return base;
}

// Largest relative difference of the logged losses and accuracies over every step.
double worst_metric_difference(const std::string& a_path, const std::string& b_path, double loss_tol,
                               std::vector<std::string> keys = {std::begin(kLossKeys), std::end(kLossKeys)}) {
  std::vector<nlohmann::json> got = step_metrics(a_path), ref = step_metrics(b_path);
  REQUIRE(got.size() == ref.size());
  REQUIRE(got.size() >= 3);
  double worst = 0;
  for (size_t k = 0; k < got.size(); ++k) {
    for (const std::string& key : keys) {
      INFO("step ", got[k]["step"].get<int64_t>(), " ", key, " on ", test_comm().describe());
      double a = got[k][key].get<double>(), b = ref[k][key].get<double>();
      double e = std::fabs(a - b) / std::max(std::fabs(b), 1e-30);
      worst = std::max(worst, e);
      if (loss_tol >= 0) CHECK(e <= loss_tol);
    }
  }
  CHECK(ref.back()["loss"].get<double>() != ref.front()["loss"].get<double>());
  return worst;
}

// Trains o on every rank of the job and, on each rank, the same run in one process; checks losses
// of every step to loss_tol and every parameter and buffer at the end to param_tol (relative to its
// magnitude).
// Returns the data-parallel run's last (step-6) checkpoint path.
std::string check_equivalence(TrainOptions o, double loss_tol, double param_tol, bool skip_key_bias,
                              Communicator* dp_comm = nullptr, int steps = 6) {
  Communicator& c = test_comm();
  const int W = c.world_size();
  TrainOptions r;
  train_both(o, r, "dist_train", dp_comm, steps);
  const std::string last = "/checkpoints/step-" + std::to_string(steps) + ".safetensors";
  CHECK(o.w_mmp > 0);  // every loss term, the fusion BatchNorm's included
  double worst_loss = worst_metric_difference(o.out + "/metrics.jsonl", r.out + "/metrics.jsonl", loss_tol);
  LoadedCheckpoint a = load_checkpoint_file(o.out + last);
  LoadedCheckpoint b = load_checkpoint_file(r.out + last);
  REQUIRE(a.model.size() == b.model.size());
  size_t compared = 0, running = 0;
  double worst = 0;
  std::string worst_name;
  for (const auto& [name, t] : a.model) {
    if (name.find("running_") != std::string::npos) ++running;  // sync BatchNorm: compared like parameters
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
  CHECK(running == 4);  // the fusion BatchNorms' running_mean and running_var, protein and text
  MESSAGE("data-parallel (", o.precision, ") on ", W, " ranks vs one process: losses within ", worst_loss, "; ", compared,
          " tensors (", running, " BatchNorm running statistics), largest relative difference ", worst, " (",
          worst_name, ")");
  return o.out + last;
}

// Largest relative difference between two checkpoints' tensors (same names: the model's and the
// optimizer's), and checks every one (BERT's key biases: both at zero instead, as check_equivalence).
double checkpoint_difference(const std::string& a_path, const std::string& b_path, double tol) {
  LoadedCheckpoint a = load_checkpoint_file(a_path), b = load_checkpoint_file(b_path);
  CHECK(a.meta.value("adam_step", int64_t(-1)) == b.meta.value("adam_step", int64_t(-2)));
  double worst = 0;
  for (auto* maps : {&a.model, &a.optim}) {
    const auto& other = maps == &a.model ? b.model : b.optim;
    REQUIRE(maps->size() == other.size());
    REQUIRE(!maps->empty());
    for (const auto& [name, t] : *maps) {
      REQUIRE(other.count(name));
      if (name.rfind("text_model.", 0) == 0 && name.find("attention.self.key.bias") != std::string::npos) {
        // Exact gradient zero (see check_equivalence): both must stay at zero, not agree in round-off.
        for (const Tensor* x : {&t, &other.at(name)})
          for (double v : x->to_double_vector()) CHECK_MESSAGE(std::fabs(v) < 1e-9, name, " moved to ", v);
        continue;
      }
      double e = pe::testing::rel_err(t, other.at(name), 1e-6);
      CHECK_MESSAGE(e <= tol, name, " differs by ", e);
      worst = std::max(worst, e);
    }
  }
  return worst;
}

int64_t text_tower_numel(const std::string& checkpoint, int64_t* tensors) {
  LoadedCheckpoint a = load_checkpoint_file(checkpoint);
  int64_t n = 0;
  *tensors = 0;
  for (const auto& [name, t] : a.model)
    if (name.rfind("text_model.", 0) == 0) {
      n += t.numel();
      ++*tensors;
    }
  return n;
}

TEST_CASE("protst train --precision f64: N ranks x B/N pairs equal 1 rank x B pairs to 1e-12 (losses, final parameters)") {
  TrainOptions o = tiny_options("");
  o.precision = "f64";
  check_equivalence(o, 1e-12, 1e-12, /*skip_key_bias=*/false);
  test_comm().barrier();  // rank 0's folder stays until every rank has read it
}

// The gradient buckets (dist/grad_buckets.h). The model has 0.1 MB of f64 parameters: --bucket-mb
// 0.0005 (500 bytes, 62 elements) makes many buckets of odd sizes, and parameters larger than a
// bucket (the 300 x 16 token embeddings) buckets of their own.
TEST_CASE("protst train --bucket-mb (f64): small buckets, one bucket and per-tensor all-reduces all equal one process to 1e-12") {
  Communicator& c = test_comm();
  TrainOptions o = tiny_options("");
  o.precision = "f64";
  o.bucket_mb = 0.0005;
  CountingComm small(c);
  std::string small_ck = check_equivalence(o, 1e-12, 1e-12, false, &small);
  o.bucket_mb = 0;  // the per-tensor path
  CountingComm per_tensor(c);
  std::string per_tensor_ck = check_equivalence(o, 1e-12, 1e-12, false, &per_tensor);
  o.bucket_mb = 25;  // the default: the whole model is one bucket
  CountingComm one(c);
  std::string one_ck = check_equivalence(o, 1e-12, 1e-12, false, &one);
  double d_small = checkpoint_difference(small_ck, per_tensor_ck, 1e-12);
  double d_one = checkpoint_difference(one_ck, per_tensor_ck, 1e-12);
  if (c.world_size() > 1) {
    CHECK(per_tensor.async_calls == 0);
    CHECK(one.async_calls == 6);  // one bucket, once per step
    // Bucketed = same elements + one flag per tensor, whatever the bucket size.
    CHECK(small.async_elements == one.async_elements);
    // Buckets start while the backward runs (the hook), not after it: in the first step in the reverse
    // registration order, then in the order the first backward finalised the gradients, which lets
    // more of them start early (only buckets of tensors the backward never reaches wait for its end).
    // The blocking collectives of the backward itself (InfoNCE's reduce-scatter, sync BatchNorm's
    // sums) then come between a step's buckets in the communicator's log.
    std::vector<nlohmann::json> steps = step_metrics(small_ck.substr(0, small_ck.find("/checkpoints/")) + "/metrics.jsonl");
    REQUIRE(steps.size() == 6);
    int64_t nb = 0, early = 0, started = 0, first_early = 0, first_nb = 0;
    for (size_t k = 0; k < steps.size(); ++k) {
      nb = steps[k]["grad_buckets"].get<int64_t>();
      int64_t e = steps[k]["grad_buckets_in_backward"].get<int64_t>();
      INFO("step ", k + 1, ": ", e, " of ", nb, " buckets started in the backward");
      CHECK(nb > 20);
      CHECK(e > 0);
      if (k == 0) first_early = e, first_nb = nb;
      if (k > 0) CHECK(e > first_early);  // the reordered buckets overlap more
      if (k > 0) CHECK(e > 3 * nb / 4);
      early += e;
      started += nb;
    }
    CHECK(small.async_calls == started);
    size_t a = small.log.find('A'), b = small.log.find('B', a), a2 = small.log.find('A', b);
    CHECK((a != std::string::npos && b != std::string::npos && a2 != std::string::npos));
    MESSAGE(first_nb, " buckets in step 1 (", first_early, " started during the backward), then ", nb, " (",
            steps.back()["grad_buckets_in_backward"].get<int64_t>(), "); bucketed vs per-tensor "
            "all-reduce: parameters within ", d_small, " (small buckets), ", d_one, " (one bucket)");
  }
  c.barrier();
}

TEST_CASE("protst train, frozen text tower (f64): equals one process; the frozen parameters never communicate") {
  Communicator& c = test_comm();
  TrainOptions o = tiny_options("");
  o.precision = "f64";
  o.bucket_mb = 0.0005;
  CountingComm trained(c);
  std::string trained_ck = check_equivalence(o, 1e-12, 1e-12, false, &trained);
  o.freeze_text = "true";
  CountingComm frozen(c);
  std::string frozen_ck = check_equivalence(o, 1e-12, 1e-12, false, &frozen);
  int64_t text_tensors = 0, text = text_tower_numel(frozen_ck, &text_tensors);
  if (c.world_size() > 1) {
    // Per step, the frozen run reduces exactly the text tower's elements (and its has-gradient flags) less.
    CHECK(trained.async_elements - frozen.async_elements == 6 * (text + text_tensors));
    MESSAGE("frozen text tower: ", frozen.async_elements / 6, " elements all-reduced per step instead of ",
            trained.async_elements / 6, " (text tower: ", text, " in ", text_tensors, " tensors)");
  }
  c.barrier();
}

TEST_CASE("protst train --grad-accum 2 (f64): equals one process; only the last micro-step communicates") {
  Communicator& c = test_comm();
  TrainOptions o = tiny_options("");
  o.precision = "f64";
  o.bucket_mb = 0.0005;
  CountingComm accum1(c);
  check_equivalence(o, 1e-12, 1e-12, false, &accum1);
  o.grad_accum = 2;
  CountingComm accum2(c);
  check_equivalence(o, 1e-12, 1e-12, false, &accum2);
  if (c.world_size() > 1) {
    CHECK(accum1.async_calls > 6);
    CHECK(accum2.async_calls == accum1.async_calls);  // 2 micro-steps, the buckets of one
    CHECK(accum2.async_elements == accum1.async_elements);
    MESSAGE("--grad-accum 2: ", accum2.async_calls, " bucket all-reduces in 6 steps, as with --grad-accum 1");
  }
  c.barrier();
}

// ZeRO-1 (dist/zero_adam.h): the moments sharded over the ranks (the tiny model's parameters split
// unevenly over 2 and 3 ranks), the gradient reduce-scattered, the parameters all-gathered. Clipping
// is on and active (--clip below the steps' gradient norms), so the global norm over the shards must
// be right for the runs to agree.
TEST_CASE("protst train --zero 1 (f64): equals plain data parallel and one process to 1e-12, clipping on the global norm") {
  Communicator& c = test_comm();
  TrainOptions o = tiny_options("");
  o.precision = "f64";
  o.clip = 1.0;
  std::string plain = check_equivalence(o, 1e-12, 1e-12, false);
  o.zero = 1;
  std::string zero = check_equivalence(o, 1e-12, 1e-12, false);
  // The whole trajectory: losses and gradient norms of every step, then parameters and moments.
  std::string zdir = zero.substr(0, zero.find("/checkpoints/")), pdir = plain.substr(0, plain.find("/checkpoints/"));
  double worst_steps = worst_metric_difference(zdir + "/metrics.jsonl", pdir + "/metrics.jsonl", 1e-12,
                                               {"loss", "cl", "mlm", "mmp_protein", "mmp_text", "grad_norm"});
  int clipped = 0;
  for (const nlohmann::json& m : step_metrics(zdir + "/metrics.jsonl")) clipped += m["grad_norm"].get<double>() > o.clip;
  CHECK(clipped >= 3);
  double worst = checkpoint_difference(zero, plain, 1e-12);
  MESSAGE("--zero 1 on ", c.world_size(), " rank(s) vs plain data parallel: losses and gradient norms within ",
          worst_steps, ", parameters and Adam moments within ", worst, "; ", clipped, " of 6 steps clipped");
  c.barrier();
}

// --grad-comm bf16: the buckets travel in bf16 (each rank's gradient rounded once, the sum taken in
// f32 by the MPI communicator and rounded once more), against the same run sending f32. The losses
// of 6 steps at lr 1e-4 stay within 1e-4 relative. Parameters are bounded at 5e-2 of each tensor's
// largest magnitude: the biases have moved only six lr-sized steps from zero, and Adam divides each
// gradient element by its own running magnitude, so bf16's rounding (2^-9 relative) of a nearly
// cancelling element becomes a visible part of its step (measured 1.1e-2 on 2 ranks, 1.8e-2 on 3,
// in 6e-4-sized biases). The runs must differ at all (bf16 was really used).
TEST_CASE("protst train --grad-comm bf16 (f32): half the bytes, losses within 1e-4 of the f32 run") {
  Communicator& c = test_comm();
  TrainOptions o = tiny_options("");
  o.precision = "f32";
  o.lr = 1e-4;
  o.bucket_mb = 0.0005;
  CountingComm f32(c);
  std::string f32_ck = check_equivalence(o, 1e-5, 1e-4, /*skip_key_bias=*/true, &f32);
  o.grad_comm = "bf16";
  CountingComm bf16(c);
  TrainOptions r;
  train_both(o, r, "dist_bf16_comm", &bf16);
  std::string bf16_dir = o.out, f32_dir = f32_ck.substr(0, f32_ck.find("/checkpoints/"));
  double losses = worst_metric_difference(bf16_dir + "/metrics.jsonl", f32_dir + "/metrics.jsonl", 1e-4,
                                          {"loss", "cl", "mlm", "mmp_protein", "mmp_text"});
  LoadedCheckpoint a = load_checkpoint_file(bf16_dir + "/checkpoints/step-6.safetensors");
  LoadedCheckpoint b = load_checkpoint_file(f32_ck);
  double params = 0;
  for (const auto& [name, t] : a.model) {
    if (name.find("attention.self.key.bias") != std::string::npos) continue;  // round-off only (check_equivalence)
    double e = pe::testing::rel_err(t, b.model.at(name), 1e-6);
    CHECK_MESSAGE(e <= 5e-2, name, " differs by ", e);
    params = std::max(params, e);
  }
  if (c.world_size() > 1) {
    CHECK(bf16.async_calls == f32.async_calls);
    CHECK(2 * bf16.async_bytes == f32.async_bytes);
    CHECK(params > 1e-7);  // bf16 was used
    MESSAGE("--grad-comm bf16 on ", c.world_size(), " ranks: ", bf16.async_bytes / 6, " bytes per step instead of ",
            f32.async_bytes / 6, "; losses within ", losses, ", parameters within ", params, " of the f32 run");
  } else {
    CHECK(params == 0);  // one process: nothing is communicated
  }
  c.barrier();
}

TEST_CASE("protst train (f32): N ranks x B/N pairs equal 1 rank x B pairs (losses 1e-5, final parameters 1e-4)") {
  TrainOptions o = tiny_options("");
  o.precision = "f32";
  o.lr = 1e-4;  // smaller Adam steps: less room for the round-off described above
  check_equivalence(o, 1e-5, 1e-4, /*skip_key_bias=*/true);
  test_comm().barrier();
}

TEST_CASE("protst train --local-batchnorm (f64): per-rank BatchNorm statistics make N ranks differ from 1 rank") {
  Communicator& c = test_comm();
  TrainOptions o = tiny_options(""), r;
  o.precision = "f64";
  o.local_batchnorm = true;
  train_both(o, r, "dist_train_local_bn");
  double worst =
      worst_metric_difference(o.out + "/metrics.jsonl", r.out + "/metrics.jsonl", -1, {"loss", "mmp_protein", "mmp_text"});
  if (c.world_size() > 1) {
    // The sync run above holds these to 1e-12; per-rank statistics move the cross-modal losses by far more.
    CHECK(worst > 1e-6);
  } else {
    CHECK(worst <= 1e-12);  // one rank: local and synchronised statistics are the same
  }
  MESSAGE("--local-batchnorm on ", c.world_size(), " rank(s) vs one process: total and cross-modal losses differ by up to ",
          worst, " (relative)");
  c.barrier();
}

TEST_CASE("protst train: ranks given different options all refuse to start, naming the rank") {
  Communicator& c = test_comm();
  if (c.world_size() < 2) return;
  TrainOptions o = tiny_options("");
  static pe::testing::TempDir dir("dist_train_mismatch");
  o.out = broadcast_string(c, c.rank() == 0 ? dir.dir.string() : std::string()) + "/run";
  if (c.rank() == c.world_size() - 1) o.lr *= 2;  // the last rank was started with another --lr
  std::string what;
  try {
    train(o, c);
  } catch (const pe::Error& e) {
    what = e.what();
  }
  INFO(what);
  std::string last = "rank " + std::to_string(c.world_size() - 1) + "/" + std::to_string(c.world_size()) + ": other options";
  CHECK(what.find(last) != std::string::npos);
  CHECK(what.find("another executable") == std::string::npos);  // the same test binary on every rank
  CHECK(!std::filesystem::exists(o.out + "/checkpoints"));       // refused before anything was written
  c.barrier();
}

// protst train on the NCCL communicator (device tensors, one GPU per rank; in CI the SIMT emulator's
// devices with the stand-in NCCL of tests/simt): the gradient buckets' overlap path (all_reduce_async
// on NCCL's second communicator and stream) and ZeRO-1 (reduce-scatter, all-gather) against the same
// run in one process on the device. The CUDA backend computes in f32 (f64 is the CPU's), so the
// tolerances are those of the f32 case above. 3 steps (an emulated step takes seconds): the first
// backward's bucket order, then the rebuilt one. In this suite's namespace for the helpers above; they
// run with the NCCL suite (-ts=nccl; the emulator's CTest runs the first on 2 ranks, the second on 3).
std::unique_ptr<Communicator> nccl_train_comm() {
  Communicator& c = test_comm();
  if (!nccl_built() || cuda_device_count() < c.local_size()) {
    std::printf("[cuda-skipped] NCCL: %s\n", !nccl_built() ? "not built" : "fewer GPUs than ranks on this machine");
    return nullptr;
  }
  return make_communicator(CommKind::Nccl, Device::cuda(c.local_rank()));
}
TrainOptions nccl_train_options() {
  TrainOptions o = tiny_options("");
  o.device = "cuda";
  o.precision = "f32";
  o.lr = 1e-4;
  return o;
}

TEST_CASE("protst train on NCCL (f32, device): small gradient buckets equal one process" * doctest::test_suite("nccl")) {
  auto nccl = nccl_train_comm();
  if (!nccl) return;
  TrainOptions o = nccl_train_options();
  o.bucket_mb = 0.0005;
  CountingComm counted(*nccl);
  check_equivalence(o, 1e-5, 1e-4, /*skip_key_bias=*/true, &counted, 3);
  if (nccl->world_size() > 1) CHECK(counted.async_calls > 3);  // the buckets went through all_reduce_async
  test_comm().barrier();
}

TEST_CASE("protst train on NCCL (f32, device): --zero 1 equals one process" * doctest::test_suite("nccl")) {
  auto nccl = nccl_train_comm();
  if (!nccl) return;
  TrainOptions o = nccl_train_options();
  o.zero = 1;
  o.clip = 1.0;
  check_equivalence(o, 1e-5, 1e-4, /*skip_key_bias=*/true, nccl.get(), 3);
  test_comm().barrier();
}

}  // TEST_SUITE("dist")
