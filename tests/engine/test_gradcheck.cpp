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
