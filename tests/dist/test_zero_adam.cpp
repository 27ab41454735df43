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
  check_against_adam(c, c.describe());
  // Per-rank moment memory, and a checkpoint without the optimiser's tensors.
  AdamOptions ao;
  std::vector<Tensor> z_p = params();
  ShardedAdam zero(c, groups(z_p), ao);
  CHECK(zero.state_bytes(0) == 2 * balanced_counts(53, W)[0] * 8);
  CHECK(zero.unsharded_state_bytes() == 2 * 53 * 8);
  CHECK_THROWS_WITH_AS(zero.load_state({}, 1), doctest::Contains("missing optimizer tensor 'm.0'"), Error);
}

}  // TEST_SUITE("dist")
