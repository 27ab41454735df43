// Every op of the table passes the float64 central-difference gradient check on the CPU.
#include <doctest/doctest.h>

#include "autograd/gradcheck.h"
#include "tests/common/op_table.h"

using namespace pe;
using namespace pe::testing;

TEST_SUITE("gradcheck") {
  TEST_CASE("op table: float64 central differences on CPU") {
    auto cases = op_table();
    int checked = 0;
    for (const OpCase& c : cases) {
      SUBCASE(c.name.c_str()) {
        std::vector<Tensor> xs = make_inputs(c);
        GradcheckOptions opt;
        opt.eps = c.eps;
        opt.atol = c.atol;
        opt.rtol = c.rtol;
        GradcheckResult r = gradcheck(c.f, xs, opt);
        INFO("op case: ", c.name, "  ", r.detail, "  max abs err ", r.max_abs_err);
        CHECK(r.ok);
        ++checked;
      }
    }
    MESSAGE("gradcheck op cases: ", cases.size());
    CHECK(cases.size() >= 60);
  }

  TEST_CASE("op table: every case again with non-contiguous inputs") {
    // The same values through a transposed layout: x^T.contiguous()^T has x's shape and contents
    // but column-major strides, so each op also sees inputs it must not treat as contiguous.
    auto strided = [](const Tensor& x) {
      return x.dim() >= 2 && x.size(-1) > 1 && x.size(-2) > 1 ? x.transpose(-1, -2).contiguous().transpose(-1, -2) : x;
    };
    for (const OpCase& c : op_table()) {
      bool any = false;
      for (const InputSpec& s : c.inputs) any |= s.shape.size() >= 2 && s.shape.back() > 1 && s.shape[s.shape.size() - 2] > 1;
      if (!any) continue;
      SUBCASE(c.name.c_str()) {
        auto f = [&](const std::vector<Tensor>& xs) {
          std::vector<Tensor> ys;
          for (const Tensor& x : xs) ys.push_back(strided(x));
          for (const Tensor& y : ys) REQUIRE((y.dim() < 2 || y.size(-1) < 2 || y.size(-2) < 2 || !y.is_contiguous()));
          return c.f(ys);
        };
        GradcheckOptions opt;
        opt.eps = c.eps;
        opt.atol = c.atol;
        opt.rtol = c.rtol;
        GradcheckResult r = gradcheck(f, make_inputs(c), opt);
        INFO("op case (non-contiguous inputs): ", c.name, "  ", r.detail);
        CHECK(r.ok);
      }
    }
  }

  TEST_CASE("gradcheck detects a wrong gradient") {
    // A deliberately wrong backward (d/dx x^2 reported as x) must fail the check.
    auto wrong_square = [](const std::vector<Tensor>& x) {
      Tensor out = square(x[0]).detach();
      Tensor xd = x[0].detach();
      return record(out, "wrong_square", {x[0]}, [xd](const Tensor& g) { return std::vector<Tensor>{mul(g, xd)}; });
    };
    Generator gen(3);
    Tensor x = randn({4}, gen, DType::F64).requires_grad_(true);
    CHECK_FALSE(gradcheck(wrong_square, {x}).ok);
  }
}
