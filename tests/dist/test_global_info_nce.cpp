// InfoNCE with global negatives (dist/global_info_nce.h) in f64: on every rank, the loss and the
// gradients with respect to that rank's own embeddings equal those of the single-process loss over
// the concatenated batch (losses/losses.h info_nce, the reference composition), which every rank
// computes from the full deterministic data; the logit scale's gradient summed over ranks equals the
// reference's. Uneven shards, identical-text groups spanning ranks, a clamped logit scale. Then K
// AdamW steps of a small two-tower model trained on N ranks x B/N rows equal 1 rank x B rows.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/optim.h"
#include "dist/global_info_nce.h"
#include "losses/losses.h"
#include "tests/common/compare.h"
#include "tests/dist/dist_env.h"

using namespace pe;
using namespace pe::dist;
using pe::testing::rel_err;

namespace {

const double kMaxScale = std::log(100.0);

// Row i of the global batch (B rows, D columns), L2-normalised; `which` tells the modalities apart.
Tensor global_embeddings(int64_t B, int64_t D, int which) {
  std::vector<double> v;
  for (int64_t i = 0; i < B; ++i)
    for (int64_t k = 0; k < D; ++k) v.push_back(std::sin(1.3 * double(i) + 0.7 * double(k) + 0.9 * which + 0.1));
  NoGradGuard ng;
  return l2_normalize(Tensor::from_vector(v, {B, D}), 1);
}

struct Split {
  std::string name;
  std::vector<int64_t> rows;  // per rank
};

std::vector<Split> splits(int W) {
  // At least 2 rows in all: a batch of one pair has no negatives (its logit-scale gradient is 0).
  std::vector<Split> s = {{"balanced 7", balanced_counts(7, W)}, {"rank r holds r+2", {}}};
  for (int r = 0; r < W; ++r) s[1].rows.push_back(r + 2);
  if (W > 1) s[0].rows = balanced_counts(2 * W + 1, W);  // odd, uneven
  return s;
}

struct Reference {
  double loss, p2t, t2p;
  Tensor gp, gt, gs;
};

Reference reference(const Tensor& P, const Tensor& T, double s, const Tensor& group) {
  Tensor p = P.clone(), t = T.clone(), ls = Tensor::scalar(s, DType::F64);
  p.requires_grad_();
  t.requires_grad_();
  ls.requires_grad_();
  InfoNceResult r = info_nce(p, t, ls, kMaxScale, group);
  r.loss.backward();
  return {r.loss.item(), r.p2t.item(), r.t2p.item(), p.grad(), t.grad(), ls.grad()};
}

}  // namespace

TEST_SUITE("dist") {

TEST_CASE("global-negative InfoNCE equals the single-process loss over the concatenated batch (f64)") {
  Communicator& c = test_comm();
  const int W = c.world_size(), me = c.rank();
  const int64_t D = 6;
  for (const Split& split : splits(W)) {
    const int64_t B = shard_offset(split.rows, W), off = shard_offset(split.rows, me), R = split.rows[size_t(me)];
    Tensor P = global_embeddings(B, D, 0), T = global_embeddings(B, D, 1);
    // Groups: identical "texts" at rows far apart, so positives span ranks; and ProtST's diagonal.
    std::vector<int64_t> ids;
    for (int64_t i = 0; i < B; ++i) ids.push_back((i * 5) % 4 + 100);
    Tensor groups = Tensor::from_vector(ids, {B});
    for (bool grouped : {false, true}) {
      for (double s : {std::log(1 / 0.07), 5.0 /* above ln 100: clamped, no gradient */}) {
        std::string what = split.name + (grouped ? ", groups" : ", diagonal") + ", logit scale " + std::to_string(s) +
                           " on " + c.describe();
        INFO(what);
        Tensor g = grouped ? groups : Tensor();
        Reference ref = reference(P, T, s, g);
        Tensor p = P.narrow(0, off, R).clone(), t = T.narrow(0, off, R).clone(), ls = Tensor::scalar(s, DType::F64);
        p.requires_grad_();
        t.requires_grad_();
        ls.requires_grad_();
        GlobalInfoNce r = global_info_nce(c, p, t, ls, kMaxScale, grouped ? groups.narrow(0, off, R).contiguous() : Tensor());
        CHECK(r.rows == R);
        CHECK(r.row_offset == off);
        CHECK(r.total == B);
        CHECK(r.global_loss.item() == doctest::Approx(ref.loss).epsilon(1e-13));
        CHECK(r.p2t.item() == doctest::Approx(ref.p2t).epsilon(1e-13));
        CHECK(r.t2p.item() == doctest::Approx(ref.t2p).epsilon(1e-13));
        CHECK(r.scale.item() == doctest::Approx(std::exp(std::min(s, kMaxScale))).epsilon(1e-15));
        // The shares sum to the global loss.
        Tensor share = r.loss.detach().reshape({1}).contiguous().clone();
        c.all_reduce(share, Reduction::Sum);
        CHECK(share.item() == doctest::Approx(ref.loss).epsilon(1e-13));
        r.loss.backward();
        REQUIRE(p.grad().defined());
        REQUIRE(t.grad().defined());
        CHECK(rel_err(p.grad(), ref.gp.narrow(0, off, R).contiguous()) < 1e-12);
        CHECK(rel_err(t.grad(), ref.gt.narrow(0, off, R).contiguous()) < 1e-12);
        all_reduce_gradients(c, {ls}, Reduction::Sum);
        if (s > kMaxScale) {
          CHECK(ls.grad().item() == 0.0);
          CHECK(ref.gs.item() == 0.0);
        } else {
          CHECK(std::abs(ref.gs.item()) > 1e-3);  // the comparison below is not of two zeros
          CHECK(ls.grad().item() == doctest::Approx(ref.gs.item()).epsilon(1e-12));
        }
      }
    }
  }
}

TEST_CASE("global_info_nce refuses a rank without rows, on every rank alike") {
  Communicator& c = test_comm();
  const int64_t D = 4;
  int64_t R = c.rank() == c.world_size() - 1 ? 0 : 2;
  Tensor p = Tensor::zeros({R, D}, DType::F64), t = Tensor::zeros({R, D}, DType::F64);
  Tensor ls = Tensor::scalar(1.0, DType::F64);
  std::string expect = "rank " + std::to_string(c.world_size() - 1) + " has no rows";
  CHECK_THROWS_WITH_AS(global_info_nce(c, p, t, ls, kMaxScale), doctest::Contains(expect.c_str()), Error);
}

TEST_CASE("K training steps on N ranks x B/N rows equal 1 rank x B rows (two towers, AdamW, f64)") {
  // Two linear towers map features to a joint space; loss: global-negative InfoNCE with groups.
  // Each rank takes its balanced shard of every global batch; gradients are summed over ranks before
  // the optimiser step. The reference runs the same steps on the whole batch in this process.
  Communicator& c = test_comm();
  auto single = make_single_communicator();
  const int W = c.world_size(), me = c.rank();
  const int64_t Fp = 5, Ft = 4, D = 3, B = 2 * W + 1, K = 4;
  auto feature = [](int64_t step, int64_t i, int64_t k, int which) {
    return std::cos(0.37 * double(step * 131 + i * 17 + k * 3 + which * 7)) + 0.2 * which;
  };
  auto batch = [&](int64_t step, int64_t F, int which) {
    std::vector<double> v;
    for (int64_t i = 0; i < B; ++i)
      for (int64_t k = 0; k < F; ++k) v.push_back(feature(step, i, k, which));
    return Tensor::from_vector(v, {B, F});
  };
  auto init = [](int64_t rows, int64_t cols, double a) {
    std::vector<double> v;
    for (int64_t i = 0; i < rows * cols; ++i) v.push_back(0.5 * std::sin(a * double(i + 1)));
    Tensor w = Tensor::from_vector(v, {rows, cols});
    w.requires_grad_();
    return w;
  };
  struct Run {
    Tensor wp, wt, ls;
    std::vector<double> losses;
  };
  auto train = [&](Communicator& comm, bool sharded) {
    Run run{init(D, Fp, 0.7), init(D, Ft, 1.1), Tensor::scalar(std::log(1 / 0.07), DType::F64), {}};
    run.ls.requires_grad_();
    std::vector<Tensor> params = {run.wp, run.wt, run.ls};
    AdamOptions opt;
    opt.lr = 0.05;
    opt.weight_decay = 0.01;
    Adam adam({ParamGroup{params}}, opt);
    std::vector<int64_t> counts = sharded ? balanced_counts(B, W) : std::vector<int64_t>{B};
    int64_t off = sharded ? shard_offset(counts, me) : 0, R = counts[size_t(sharded ? me : 0)];
    for (int64_t step = 0; step < K; ++step) {
      std::vector<int64_t> ids;
      for (int64_t i = off; i < off + R; ++i) ids.push_back((i + step) % 3);  // positives span ranks
      Tensor xp = batch(step, Fp, 0).narrow(0, off, R), xt = batch(step, Ft, 1).narrow(0, off, R);
      Tensor p = l2_normalize(linear(xp, run.wp), 1), t = l2_normalize(linear(xt, run.wt), 1);
      GlobalInfoNce r = global_info_nce(comm, p, t, run.ls, kMaxScale, Tensor::from_vector(ids, {R}));
      adam.zero_grad();
      r.loss.backward();
      all_reduce_gradients(comm, params, Reduction::Sum);
      adam.step();
      run.losses.push_back(r.global_loss.item());
    }
    return run;
  };
  Run dist = train(c, true);
  Run ref = train(*single, false);
  // The two runs add the same terms in different orders (column gradients summed across ranks, then
  // Adam's division by sqrt(v)): measured 5e-12 relative after 4 steps with 3 ranks; f64 round-off
  // stays far below 1e-10, while a wrong reduction (avg for sum, a lost column) is off by > 1e-3.
  for (int64_t k = 0; k < K; ++k) CHECK(dist.losses[size_t(k)] == doctest::Approx(ref.losses[size_t(k)]).epsilon(1e-12));
  CHECK(ref.losses.back() < ref.losses.front());  // it trains at all
  CHECK(rel_err(dist.wp.detach(), ref.wp.detach()) < 1e-10);
  CHECK(rel_err(dist.wt.detach(), ref.wt.detach()) < 1e-10);
  CHECK(dist.ls.item() == doctest::Approx(ref.ls.item()).epsilon(1e-10));
}

}  // TEST_SUITE("dist")
