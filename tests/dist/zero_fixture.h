// The parameters and per-rank gradients the ZeRO-1 tests share (tests/dist/test_zero_adam.cpp on the
// job's communicator, tests/dist/test_nccl_paths.cpp on NCCL's): 53 elements in tensors of 3, 35, 1
// and 14 (odd and not a multiple of 3: shards are uneven on 2 and 3 ranks and cut through tensors), two
// groups with different learning-rate scales and weight decay, tensor 2 without a gradient on any rank
// and tensor 3 with one on rank 0 only. Every rank can compute every rank's gradient (deterministic).
#pragma once

#include <cmath>
#include <vector>

#include "autograd/ops.h"
#include "autograd/optim.h"

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

}  // namespace pe::zero_fixture
