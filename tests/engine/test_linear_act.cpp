// linear_act (bias add + GELU/ReLU fused after the GEMM, Backend::bias_act) against the composition
// act(linear(x, W, b)): the same values in f32 (the fused CPU pass evaluates the same expressions), the
// same gradients, central differences in f64, the in-place no-grad path, and bad arguments.
#include <doctest/doctest.h>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/rng.h"

using namespace pe;

namespace {

Tensor act_of(const Tensor& x, UnaryOp op) { return op == UnaryOp::Gelu ? gelu(x) : relu(x); }

Tensor param(const Shape& s, Generator& g, DType dt) {
  Tensor t = randn(s, g, dt);
  t.requires_grad_(true);
  return t;
}

}  // namespace

TEST_SUITE("unit") {
  TEST_CASE("linear_act equals act(linear) in f32 - values and gradients - odd sizes") {
    for (UnaryOp op : {UnaryOp::Gelu, UnaryOp::Relu}) {
      for (auto [rows, in, out] : std::vector<std::array<int64_t, 3>>{{1, 1, 1}, {7, 5, 3}, {130, 64, 257}, {3, 33, 1280}}) {
        CAPTURE(rows);
        CAPTURE(out);
        Generator g(uint64_t(rows * 31 + out));
        Tensor x = param({rows, in}, g, DType::F32), w = param({out, in}, g, DType::F32), b = param({out}, g, DType::F32);
        Tensor wsum = randn({rows, out}, g, DType::F32);
        Tensor y1 = linear_act(x, w, b, op);
        sum(mul(y1, wsum)).backward();
        std::vector<double> gx1 = x.grad().to_double_vector(), gw1 = w.grad().to_double_vector(),
                            gb1 = b.grad().to_double_vector();
        x.zero_grad();
        w.zero_grad();
        b.zero_grad();
        Tensor y2 = act_of(linear(x, w, b), op);
        sum(mul(y2, wsum)).backward();
        CHECK(y1.to_double_vector() == y2.to_double_vector());  // the same expressions: bit for bit
        CHECK(gx1 == x.grad().to_double_vector());
        CHECK(gw1 == w.grad().to_double_vector());
        // The bias gradient is a column sum of the same values, maybe in another order.
        std::vector<double> gb2 = b.grad().to_double_vector();
        for (size_t i = 0; i < gb2.size(); ++i) CHECK(gb1[i] == doctest::Approx(gb2[i]).epsilon(1e-5).scale(1.0));
        // Without a graph the result is computed in place and is the same.
        NoGradGuard ng;
        CHECK(linear_act(x, w, b, op).to_double_vector() == y2.detach().to_double_vector());
      }
    }
  }

  TEST_CASE("linear_act on leading dims, without bias, and its errors") {
    Generator g(5);
    Tensor x = randn({2, 3, 4}, g), w = randn({6, 4}, g), b = randn({6}, g);
    Tensor y = linear_act(x, w, b, UnaryOp::Gelu);
    CHECK(y.shape() == Shape{2, 3, 6});
    CHECK(y.to_double_vector() == gelu(linear(x, w, b)).to_double_vector());
    CHECK(linear_act(x, w, Tensor(), UnaryOp::Relu).to_double_vector() == relu(linear(x, w, Tensor())).to_double_vector());
    CHECK_THROWS_WITH_AS(linear_act(x, w, b, UnaryOp::Exp), doctest::Contains("gelu or relu"), Error);
    CHECK_THROWS_WITH_AS(linear_act(x, w, randn({5}, g), UnaryOp::Gelu), doctest::Contains("bias"), Error);
  }
}

TEST_SUITE("gradcheck") {
  TEST_CASE("linear_act gradcheck f64 - gelu and relu") {
    for (UnaryOp op : {UnaryOp::Gelu, UnaryOp::Relu}) {
      Generator g(op == UnaryOp::Gelu ? 21 : 22);
      std::vector<Tensor> xs{param({5, 4}, g, DType::F64), param({3, 4}, g, DType::F64), param({3}, g, DType::F64)};
      auto f = [&](const std::vector<Tensor>& t) { return sum(mul(linear_act(t[0], t[1], t[2], op), t[0].narrow(1, 0, 3))); };
      GradcheckResult r = gradcheck(f, xs);
      INFO(r.detail, " max abs err ", r.max_abs_err);
      CHECK(r.ok);
    }
  }
}
