// The parameters and per-rank gradients the ZeRO-1 tests share (tests/dist/test_zero_adam.cpp on the
// job's communicator, tests/dist/test_nccl_paths.cpp on NCCL's): 53 elements in tensors of 3, 35, 1
// and 14 (odd and not a multiple of 3: shards are uneven on 2 and 3 ranks and cut through tensors), two
// groups with different learning-rate scales and weight decay, tensor 2 without a gradient on any rank
// and tensor 3 with one on rank 0 only. Every rank can compute every rank's gradient (deterministic).
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "autograd/optim.h"
#include "dist/communicator.h"
#include "dist/zero_adam.h"
#include "tests/common/compare.h"

namespace pe::zero_fixture {

inline const std::vector<Shape>& shapes() {
  static const std::vector<Shape> s = {{3}, {5, 7}, {1}, {14}};
  return s;
}

inline std::vector<Tensor> params(Device dev = Device::cpu()) {
  std::vector<Tensor> ps;
  int k = 0;
  for (const Shape& s : shapes()) {
    std::vector<double> v(size_t(shape_numel(s)));
    for (size_t i = 0; i < v.size(); ++i) v[i] = 0.1 * double((k * 13 + int(i) * 7) % 11) - 0.5;
    ps.push_back(Tensor::from_vector(v, s).to(dev).requires_grad_());
    ++k;
  }
  return ps;
}

// Rank r's gradient of tensor k at step t (CPU), undefined where the rank has none.
inline Tensor rank_grad(int r, size_t k, int t) {
  if (k == 2 || (k == 3 && r != 0)) return Tensor();
  std::vector<double> v(size_t(shape_numel(shapes()[k])));
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(double(r * 31 + int(k) * 17 + int(i) * 5 + t * 3)) * (1 + r);
  return Tensor::from_vector(v, shapes()[k]);
}

inline std::vector<ParamGroup> groups(const std::vector<Tensor>& ps) {
  return {{{ps[0], ps[1]}, 0.1, true}, {{ps[2], ps[3]}, 1.0, false}};
}

// Step t's gradients: the sum over all W ranks on the reference's parameters, rank me's own on the
// sharded optimiser's (moved to dev).
inline void set_grads(int W, int me, int t, std::vector<Tensor>& ref_p, std::vector<Tensor>& z_p,
                      Device dev = Device::cpu()) {
  for (size_t k = 0; k < ref_p.size(); ++k) {
    Tensor sum;
    for (int r = 0; r < W; ++r) {
      Tensor g = rank_grad(r, k, t);
      if (g.defined()) sum = sum.defined() ? add(sum, g) : g;
    }
    if (sum.defined()) ref_p[k].set_grad(sum);
    Tensor mine = rank_grad(me, k, t);
    if (mine.defined()) z_p[k].set_grad(mine.to(dev));
  }
}

// The ZeRO-1 scenario both tests run: 5 steps of ShardedAdam on communicator c (parameters on c's
// device) against Adam on the CPU on the summed gradients (f64, clipped on the global norm; at least
// two steps clip), then the gathered state loaded into a fresh ShardedAdam, whose next step equals the
// reference's. Every comparison to 1e-13.
inline void check_against_adam(dist::Communicator& c, const std::string& label) {
  const int W = c.world_size(), me = c.rank();
  const Device dev = c.device();
  AdamOptions ao;
  ao.lr = 1e-2;
  ao.weight_decay = 0.1;
  std::vector<Tensor> ref_p = params(Device::cpu()), z_p = params(dev);
  Adam ref(groups(ref_p), ao);
  dist::ShardedAdam zero(c, groups(z_p), ao);
  CHECK(zero.numel() == 53);
  const double max_norm = 3.0;
  int clipped = 0;
  double worst = 0;
  for (int t = 0; t < 5; ++t) {
    set_grads(W, me, t, ref_p, z_p, dev);
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
      CHECK(z_p[k].device() == dev);
      double e = pe::testing::rel_err(z_p[k].to(Device::cpu()), ref_p[k]);
      CHECK(e <= 1e-13);
      worst = std::max(worst, e);
    }
  }
  const std::vector<int64_t> shards = dist::balanced_counts(53, W);
  MESSAGE("ZeRO-1 on ", label, ", ", W, " rank(s), shards ", shards[0], "..", shards[size_t(W - 1)],
          " of 53: parameters within ", worst, " of Adam after 5 steps (", clipped, " clipped)");
  CHECK(clipped >= 2);
  CHECK(z_p[2].to(Device::cpu()).to_double_vector() == params()[2].to_double_vector());  // no gradient: untouched
  // The gathered state is Adam's, tensor by tensor; loaded into a fresh sharded optimiser (also on
  // another world size, as a checkpoint would be), the next step equals the reference's.
  std::map<std::string, Tensor> st = zero.gather_state(), rs = ref.state();
  REQUIRE(st.size() == rs.size());
  for (const auto& [k, t] : rs) CHECK_MESSAGE(pe::testing::rel_err(st.at(k).to(Device::cpu()), t) <= 1e-13, k);
  std::vector<Tensor> resumed_p;
  for (const Tensor& p : z_p) resumed_p.push_back(p.detach().clone().requires_grad_());
  dist::ShardedAdam resumed(c, groups(resumed_p), ao);
  resumed.load_state(st, zero.steps());
  set_grads(W, me, 9, ref_p, resumed_p, dev);
  resumed.reduce_gradients();
  ref.step();
  resumed.step();
  for (size_t k = 0; k < ref_p.size(); ++k)
    CHECK(pe::testing::rel_err(resumed_p[k].to(Device::cpu()), ref_p[k]) <= 1e-13);
}

}  // namespace pe::zero_fixture
