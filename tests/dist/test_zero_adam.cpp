// ZeRO-1 (dist/zero_adam.h) against the unsharded Adam (autograd/optim.h) in f64: every rank holds
// its own gradient; the reference, computed on every rank, steps Adam on the sum over ranks of all
// ranks' gradients (each rank can compute them: they are deterministic), clipped on their global
// norm. 53 elements in tensors of 3, 35, 1 and 14 (53 is odd and not a multiple of 3: the shards are
// uneven on 2 and 3 ranks and cut through tensors), two groups with different learning-rate scales
// and weight decay, one tensor without a gradient on any rank (untouched, as Adam skips it) and one
// with a gradient on rank 0 only.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/ops.h"
#include "autograd/optim.h"
#include "dist/zero_adam.h"
#include "tests/common/compare.h"
#include "tests/dist/dist_env.h"
#include "tests/dist/zero_fixture.h"

using namespace pe;
using namespace pe::dist;

namespace {
using namespace pe::zero_fixture;
}  // namespace

TEST_SUITE("dist") {

TEST_CASE("ZeRO-1: sharded Adam equals Adam on the summed gradients (f64, uneven shards, clipping, resume)") {
  Communicator& c = test_comm();
  const int W = c.world_size();
  AdamOptions ao;
  ao.lr = 1e-2;
  ao.weight_decay = 0.1;
  std::vector<Tensor> ref_p = params(), z_p = params();
  Adam ref(groups(ref_p), ao);
  ShardedAdam zero(c, groups(z_p), ao);
  CHECK(zero.numel() == 53);
  CHECK(zero.state_bytes(0) == 2 * balanced_counts(53, W)[0] * 8);
  CHECK(zero.unsharded_state_bytes() == 2 * 53 * 8);
  const double max_norm = 3.0;
  int clipped = 0;
  double worst = 0;
  for (int t = 0; t < 5; ++t) {
    set_grads(W, c.rank(), t, ref_p, z_p);
    double ref_norm = clip_grad_norm(ref_p, max_norm);
    double z_norm = zero.reduce_gradients();
    CHECK(std::fabs(z_norm - ref_norm) <= 1e-13 * ref_norm);
    clipped += ref_norm > max_norm;
    zero.clip(max_norm);
    ref.step();
    ref.zero_grad();
    zero.step();
    zero.zero_grad();
    for (size_t k = 0; k < ref_p.size(); ++k) {
      INFO("tensor ", k, " after step ", t + 1, " on ", c.describe());
      double e = pe::testing::rel_err(z_p[k], ref_p[k]);
      CHECK(e <= 1e-13);
      worst = std::max(worst, e);
    }
  }
  MESSAGE("ZeRO-1 on ", W, " rank(s), shards ", balanced_counts(53, W)[0], "..", balanced_counts(53, W)[size_t(W - 1)],
          " of 53: parameters within ", worst, " of Adam after 5 steps (", clipped, " clipped)");
  CHECK(clipped >= 2);
  std::vector<double> untouched = params()[2].to_double_vector();
  CHECK(z_p[2].to_double_vector() == untouched);
  // The gathered state is Adam's, tensor by tensor; loaded into a fresh sharded optimiser (also on
  // another world size, as a checkpoint would be), the next step equals the reference's.
  std::map<std::string, Tensor> st = zero.gather_state(), rs = ref.state();
  REQUIRE(st.size() == rs.size());
  for (const auto& [k, t] : rs) CHECK_MESSAGE(pe::testing::rel_err(st.at(k), t) <= 1e-13, k);
  std::vector<Tensor> resumed_p;
  for (const Tensor& p : z_p) resumed_p.push_back(p.detach().clone().requires_grad_());
  ShardedAdam resumed(c, groups(resumed_p), ao);
  resumed.load_state(st, zero.steps());
  set_grads(W, c.rank(), 9, ref_p, resumed_p);
  resumed.reduce_gradients();
  ref.step();
  resumed.step();
  for (size_t k = 0; k < ref_p.size(); ++k) CHECK(pe::testing::rel_err(resumed_p[k], ref_p[k]) <= 1e-13);
  CHECK_THROWS_WITH_AS(resumed.load_state({}, 1), doctest::Contains("missing optimizer tensor 'm.0'"), Error);
}

}  // TEST_SUITE("dist")
