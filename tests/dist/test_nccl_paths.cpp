// The NCCL communicator's training paths, on device tensors (one GPU per rank; in CI the SIMT
// emulator's devices and tests/simt/fake_nccl.cpp, CTest simt/dist-nccl-np2 and -np3):
//  - the overlap path: gradient buckets (dist/grad_buckets.h) started by the backward's hook, each
//    an all_reduce_async on NCCL's second communicator and communication stream, waited on through
//    events: reduced gradients equal the sum (f64: exactly; Avg: to NCCL's pre-multiplied rounding)
//    over every rank's gradients, which each rank computes locally, and the same reducer on the job's
//    MPI (or single-process) communicator;
//  - --grad-comm bf16 on NCCL: buckets travel in bf16 and are summed natively; gradients exact in bf16
//    (multiples of 1/8, sums too) come back exactly;
//  - ZeRO-1 (dist/zero_adam.h): reduce-scatter and all-gather of uneven shards on NCCL, the sharded
//    Adam on the device, against Adam on the CPU on the summed gradients (f64, clipping, resume).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>

#include "autograd/graph.h"
#include "autograd/ops.h"
#include "autograd/optim.h"
#include "dist/grad_buckets.h"
#include "dist/zero_adam.h"
#include "tests/common/compare.h"
#include "tests/dist/dist_env.h"
#include "tests/dist/zero_fixture.h"

using namespace pe;
using namespace pe::dist;

namespace {

// The NCCL communicator of this job, or null (with "[cuda-skipped]") without NCCL or a GPU per rank.
std::unique_ptr<Communicator> nccl_or_skip() {
  Communicator& job = test_comm();
  if (!nccl_built() || cuda_device_count() < job.local_size()) {
    std::printf("[cuda-skipped] NCCL: %s\n", !nccl_built() ? "not built" : "fewer GPUs than ranks on this machine");
    return nullptr;
  }
  return make_communicator(CommKind::Nccl, Device::cuda(job.local_rank()));
}

// Parameters of the bucket tests: 3 + 35 + 1 + 14 + 40 elements. Tensor 2 is used by no rank (no
// gradient anywhere), tensor 3 by rank 0 only.
const Shape kShapes[] = {{3}, {5, 7}, {1}, {14}, {4, 10}};

// Rank r's gradient of tensor k at step t: multiples of 1/8 in [-2, 2) (exact in bf16, and so are
// sums over 3 ranks).
Tensor bucket_grad(int r, size_t k, int t) {
  std::vector<double> v(size_t(shape_numel(kShapes[k])));
  for (size_t i = 0; i < v.size(); ++i) v[i] = double((r * 13 + int(k) * 7 + int(i) * 5 + t * 3) % 32 - 16) / 8;
  return Tensor::from_vector(v, kShapes[k]);
}
bool uses(int r, size_t k) { return k != 2 && (k != 3 || r == 0); }

// Two steps (the second after the buckets were rebuilt in the first backward's order) of a
// GradBucketReducer on `c` with `dtype` parameters; returns each step's reduced gradients (on the
// CPU, f64; undefined: no gradient) and counts the buckets started during the backward.
std::vector<std::vector<Tensor>> reduce_buckets(Communicator& c, DType dtype, Reduction op, bool bf16_comm,
                                                int64_t bucket_bytes, int64_t* early) {
  const Device dev = c.device();
  std::vector<Tensor> ps;
  for (const Shape& s : kShapes) ps.push_back(Tensor::zeros(s, dtype, dev).requires_grad_());
  GradBucketReducer red(c, ps, bucket_bytes, op, bf16_comm);
  std::vector<std::vector<Tensor>> out;
  *early = 0;
  for (int t = 0; t < 2; ++t) {
    Tensor loss;
    for (size_t k = 0; k < ps.size(); ++k) {
      if (!uses(c.rank(), k)) continue;
      Tensor term = sum(mul(ps[k], bucket_grad(c.rank(), k, t).to(dtype).to(dev)));
      loss = loss.defined() ? add(loss, term) : term;
    }
    {
      LeafGradReadyHookGuard ready(red.arm());
      loss.backward();
    }
    *early += red.started_during_backward();
    red.finish();
    std::vector<Tensor> grads;
    for (Tensor& p : ps) {
      grads.push_back(p.grad().defined() ? p.grad().to(Device::cpu()).to(DType::F64) : Tensor());
      p.zero_grad();
    }
    out.push_back(grads);
  }
  return out;
}

// Sum (or NCCL's avg) over ranks of tensor k's gradients at step t; undefined when no rank has one.
Tensor reference_grad(int W, size_t k, int t, Reduction op) {
  Tensor s;
  for (int r = 0; r < W; ++r)
    if (uses(r, k)) s = s.defined() ? add(s, bucket_grad(r, k, t)) : bucket_grad(r, k, t);
  if (!s.defined()) return s;
  return op == Reduction::Avg ? mul(s, 1.0 / W) : s;
}

// ZeRO-1's parameters and gradients: tests/dist/zero_fixture.h, shared with test_zero_adam.cpp.
using namespace pe::zero_fixture;

}  // namespace

TEST_SUITE("nccl") {

TEST_CASE("NCCL overlap path: gradient buckets on the async communicator equal the summed gradients (f64, bf16 comm)") {
  auto c = nccl_or_skip();
  if (!c) return;
  Communicator& job = test_comm();
  const int W = c->world_size();
  struct Case {
    const char* what;
    DType dtype;
    Reduction op;
    bool bf16_comm;
    double tol;  // relative to each tensor's largest magnitude
  };
  // NCCL's Avg pre-multiplies every input by 1/W (rounded), so it is not the once-rounded sum / W.
  const Case cases[] = {{"f64 sum", DType::F64, Reduction::Sum, false, 0},
                        {"f64 avg", DType::F64, Reduction::Avg, false, 4e-16},
                        {"f32 sum, bf16 comm", DType::F32, Reduction::Sum, true, 0}};
  for (const Case& cs : cases) {
    // 64 bytes: many buckets, some tensors larger than a bucket (one of their own); 1 MB: one bucket.
    for (int64_t bytes : {int64_t(64), int64_t(1) << 20}) {
      INFO(std::string(cs.what), ", buckets of ", bytes, " bytes on ", c->describe());
      int64_t early = 0, early_job = 0;
      auto got = reduce_buckets(*c, cs.dtype, cs.op, cs.bf16_comm, bytes, &early);
      // The same reducer on the job's communicator (MPI on the CPU; one process: the identity).
      auto via_job = reduce_buckets(job, cs.dtype, cs.op, cs.bf16_comm, bytes, &early_job);
      for (int t = 0; t < 2; ++t)
        for (size_t k = 0; k < got[size_t(t)].size(); ++k) {
          INFO("step ", t + 1, ", tensor ", k);
          Tensor ref = reference_grad(W, k, t, cs.op);
          const Tensor& g = got[size_t(t)][k];
          REQUIRE(g.defined() == ref.defined());
          if (!ref.defined()) continue;
          CHECK(pe::testing::rel_err(g, ref) <= cs.tol);
          CHECK(pe::testing::rel_err(g, via_job[size_t(t)][k]) <= cs.tol);
        }
      // Small buckets do start inside the backward (the hook), not only in finish(); one bucket holds
      // a tensor the backward never reaches and starts in finish().
      if (bytes == 64) CHECK(early > 0);
    }
  }
}

TEST_CASE("NCCL ZeRO-1: sharded Adam on device tensors equals Adam on the summed gradients (f64, uneven shards, clipping, resume)") {
  auto cp = nccl_or_skip();
  if (!cp) return;
  check_against_adam(*cp, "NCCL");
}

}  // TEST_SUITE("nccl")
