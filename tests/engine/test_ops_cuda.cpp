// Every op of the table on CUDA, in f32 and bf16, against the float64 CPU result: forward output and
// the gradient of every differentiated input. Skipped (and counted) without a GPU.
#include <doctest/doctest.h>

#include "tests/common/compare.h"

#include <cmath>
#include <cstdio>

#include "tests/common/op_table.h"

using namespace pe;
using namespace pe::testing;

namespace {


struct RunResult {
  Tensor out;
  std::vector<Tensor> grads;
};

RunResult run_case(const OpCase& c, const std::vector<Tensor>& cpu_inputs, Device dev, DType dt) {
  std::vector<Tensor> xs;
  for (const Tensor& x : cpu_inputs) {
    Tensor t = x.detach();
    if (is_floating(t.dtype())) t = t.to(dt);
    t = t.to(dev);
    if (x.requires_grad()) t.requires_grad_(true);
    xs.push_back(t);
  }
  RunResult r;
  r.out = c.f(xs);
  Generator gen(1234);
  Tensor w = add(rand(r.out.shape(), gen, DType::F64), 0.5).to(r.out.dtype()).to(dev);
  if (r.out.requires_grad()) sum(mul(r.out, w)).backward();
  for (const Tensor& x : xs) r.grads.push_back(x.requires_grad() ? x.grad() : Tensor());
  return r;
}

}  // namespace

TEST_SUITE("cuda") {
  TEST_CASE("op table on CUDA matches the float64 CPU reference (f32 and bf16)") {
    auto cases = op_table();
    if (!cuda_available()) {
      std::printf("[cuda-skipped] no CUDA device: %zu op cases x 2 dtypes not run\n", cases.size());
      return;
    }
    int run = 0;
    for (const OpCase& c : cases) {
      if (!c.cuda) continue;
      std::vector<Tensor> inputs = make_inputs(c);
      RunResult ref = run_case(c, inputs, Device::cpu(), DType::F64);
      for (DType dt : {DType::F32, DType::BF16}) {
        if (dt == DType::BF16 && !c.bf16) continue;
        double tol = dt == DType::F32 ? 1e-5 : c.bf16_tol;
        RunResult got = run_case(c, inputs, Device::cuda(), dt);
        INFO("op case ", c.name, " dtype ", std::string(dtype_name(dt)));
        CHECK(rel_err(got.out, ref.out, 1e-6) <= tol);
        for (size_t i = 0; i < inputs.size(); ++i) {
          if (!ref.grads[i].defined()) continue;
          INFO("gradient of input ", i);
          REQUIRE(got.grads[i].defined());
          CHECK(rel_err(got.grads[i], ref.grads[i], 1e-6) <= tol);
        }
        ++run;
      }
    }
    MESSAGE("cuda op cases run: ", run);
  }
}
