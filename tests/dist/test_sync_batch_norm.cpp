// Sync BatchNorm (autograd/sync_batch_norm.h with dist::sum_across) in float64: on every rank, the
// output rows and the input gradient of its shard equal those of batch_norm (autograd/ops.h) over the
// concatenated batch, which every rank computes from the full deterministic data; the weight and
// bias gradients summed over ranks equal the reference's; the running statistics equal the
// reference's on every rank. Odd row counts, uneven shards, masked (padding) rows, and a rank whose
// rows are all padding. Run alone (1 rank) and under mpirun with 2 and 3 ranks.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/sync_batch_norm.h"
#include "dist/autograd_collectives.h"
#include "tests/common/compare.h"
#include "tests/dist/dist_env.h"

using namespace pe;
using namespace pe::dist;
using pe::testing::rel_err;

namespace {

// Deterministic [N, C] values with a channel-dependent offset and scale (means far from zero).
Tensor pattern(int64_t N, int64_t C, double a, double offset) {
  std::vector<double> v;
  for (int64_t i = 0; i < N; ++i)
    for (int64_t k = 0; k < C; ++k)
      v.push_back(offset + (1.0 + 0.3 * double(k)) * std::sin(a * double(i + 1) + 0.77 * double(k)));
  return Tensor::from_vector(v, {N, C});
}

Tensor leaf(const Tensor& t) {
  Tensor x = t.clone();
  x.requires_grad_();
  return x;
}

}  // namespace

TEST_SUITE("dist") {

TEST_CASE("batch_norm_synced (f64): N ranks' shards equal batch_norm over the concatenated batch") {
  Communicator& c = test_comm();
  const int W = c.world_size(), r = c.rank();
  const int64_t C = 5;
  const double momentum = 0.1, eps = 1e-5;
  int cases = 0;
  double worst = 0;
  for (int64_t N : {7, 11}) {
    // Real rows: all but every fourth row (i % 4 == 3) and row 0, so a shard of row 0 alone is all padding.
    std::vector<double> mv;
    for (int64_t i = 0; i < N; ++i) mv.push_back((i % 4 == 3 || i == 0) ? 0.0 : 1.0);
    Tensor mask = Tensor::from_vector(mv, {N});
    std::vector<std::vector<int64_t>> splits = {balanced_counts(N, W)};
    if (W > 1) {  // rank 0 holds row 0 only (no real row), the rest balanced
      std::vector<int64_t> s = {1};
      for (int64_t n : balanced_counts(N - 1, W - 1)) s.push_back(n);
      splits.push_back(s);
    }
    for (const std::vector<int64_t>& counts : splits) {
      std::string split;
      for (int64_t n : counts) split += (split.empty() ? "" : " + ") + std::to_string(n);
      INFO("N = ", N, ", rows per rank ", split, " on ", c.describe());
      Tensor X = pattern(N, C, 1.1, 2.5), G = pattern(N, C, 0.37, 0.2);  // input, loss weights
      Tensor gamma = pattern(1, C, 0.9, 1.0).view({C}), beta = pattern(1, C, 0.5, -0.3).view({C});
      Tensor rm0 = pattern(1, C, 0.2, 0.1).view({C}), rv0 = pattern(1, C, 0.3, 2.0).view({C});
      // Reference: one process, every row.
      Tensor xr = leaf(X), wr = leaf(gamma), br = leaf(beta), rmr = rm0.clone(), rvr = rv0.clone();
      Tensor yr = batch_norm(xr, mask, wr, br, rmr, rvr, true, momentum, eps);
      sum(mul(yr, G)).backward();
      // This rank's shard through the synchronised op.
      int64_t off = shard_offset(counts, r), n = counts[size_t(r)];
      Tensor xs = leaf(X.narrow(0, off, n).contiguous()), ws = leaf(gamma), bs = leaf(beta);
      Tensor rms = rm0.clone(), rvs = rv0.clone();
      Tensor ys = batch_norm_synced(xs, mask.narrow(0, off, n).contiguous(), ws, bs, rms, rvs, momentum, eps,
                                    sum_across(c));
      sum(mul(ys, G.narrow(0, off, n).contiguous())).backward();
      Tensor gw = ws.grad().clone(), gb = bs.grad().clone();
      c.all_reduce(gw, Reduction::Sum);
      c.all_reduce(gb, Reduction::Sum);
      struct Cmp {
        std::string what;
        Tensor got, ref;
      } cmp[] = {{"y", ys, yr.narrow(0, off, n)},
                 {"dL/dx", xs.grad(), xr.grad().narrow(0, off, n)},
                 {"dL/dweight (summed over ranks)", gw, wr.grad()},
                 {"dL/dbias (summed over ranks)", gb, br.grad()},
                 {"running_mean", rms, rmr},
                 {"running_var", rvs, rvr}};
      for (const Cmp& k : cmp) {
        double e = rel_err(k.got, k.ref.contiguous());
        worst = std::max(worst, e);
        CHECK_MESSAGE(e < 1e-12, k.what, " differs by ", e);
      }
      ++cases;
    }
  }
  CHECK(cases >= 2);
  MESSAGE("sync BatchNorm on ", W, " rank(s): ", cases, " splits, largest relative difference ", worst);
}

TEST_CASE("all_reduce_sum: values and gradients summed over ranks") {
  Communicator& c = test_comm();
  const int W = c.world_size(), r = c.rank();
  Tensor x = leaf(Tensor::from_vector(std::vector<double>{1.0 + r, 2.0 * (r + 1)}, {2}));
  Tensor y = all_reduce_sum(c, x);
  std::vector<double> v = y.to_double_vector();
  CHECK(v[0] == doctest::Approx(W + W * (W - 1) / 2.0));
  CHECK(v[1] == doctest::Approx(double(W * (W + 1))));
  sum(mul(y, double(r + 1))).backward();  // rank r's loss weights y by r + 1
  std::vector<double> g = x.grad().to_double_vector();
  CHECK(g[0] == doctest::Approx(W * (W + 1) / 2.0));  // sum over ranks of r + 1
  CHECK(g[1] == doctest::Approx(W * (W + 1) / 2.0));
}

}  // TEST_SUITE("dist")
