#include <doctest/doctest.h>

#include <cmath>

#include "autograd/ops.h"
#include "autograd/optim.h"

using namespace pe;

TEST_SUITE("unit") {
  TEST_CASE("one Adam and one AdamW step match a float64 hand computation (f64 parameters to 1e-14, f32 to 1e-6)") {
    for (DType dt : {DType::F64, DType::F32})
    for (bool decoupled : {false, true}) {
      CAPTURE(decoupled);
      CAPTURE(dtype_name(dt));
      std::vector<double> w0 = {0.5, -1.25, 2.0}, g = {0.1, -0.3, 0.02};
      Tensor w = Tensor::from_vector(w0, {3}).to(dt).requires_grad_();
      AdamOptions o;
      o.lr = 0.01;
      o.weight_decay = 0.1;
      o.decoupled = decoupled;
      Adam opt({{{w}}}, o);
      for (int step = 1; step <= 2; ++step) {
        w.set_grad(Tensor::from_vector(g, {3}).to(dt));
        opt.step();
      }
      // Hand computation of two steps.
      std::vector<double> expect = w0, m(3, 0.0), v(3, 0.0);
      for (int t = 1; t <= 2; ++t)
        for (size_t i = 0; i < 3; ++i) {
          double gi = g[i], wi = expect[i];
          if (decoupled) wi *= 1 - o.lr * o.weight_decay; else gi += o.weight_decay * wi;
          m[i] = 0.9 * m[i] + 0.1 * gi;
          v[i] = 0.999 * v[i] + 0.001 * gi * gi;
          double mh = m[i] / (1 - std::pow(0.9, t)), vh = v[i] / (1 - std::pow(0.999, t));
          expect[i] = wi - o.lr * mh / (std::sqrt(vh) + o.eps);
        }
      auto got = w.to_double_vector();
      for (size_t i = 0; i < 3; ++i) {
        // f32: the inputs rounded to float, float arithmetic; relative to the weight's size.
        if (dt == DType::F64) CHECK(got[i] == doctest::Approx(expect[i]).epsilon(1e-14));
        else CHECK(std::fabs(got[i] - expect[i]) <= 1e-6 * std::fabs(expect[i]));
      }
    }
  }

  TEST_CASE("clip_grad_norm scales to the requested norm") {
    Tensor a = Tensor::zeros({2}, DType::F64).requires_grad_(), b = Tensor::zeros({1}, DType::F64).requires_grad_();
    a.set_grad(Tensor::from_vector(std::vector<double>{3, 0}, {2}));
    b.set_grad(Tensor::from_vector(std::vector<double>{4}, {1}));
    CHECK(clip_grad_norm({a, b}, 1.0) == doctest::Approx(5.0));
    CHECK(clip_grad_norm({a, b}, 0.0) == doctest::Approx(1.0).epsilon(1e-5));
    CHECK_FALSE(grads_nonfinite({a, b}));
    b.set_grad(Tensor::from_vector(std::vector<double>{NAN}, {1}));
    CHECK(grads_nonfinite({a, b}));
  }

  TEST_CASE("a small MLP fits a toy regression on the CPU") {
    // y = sin(3 x0) + x1^2 on 256 points; a 2-32-32-1 GELU MLP trained by AdamW.
    Generator gen(42);
    Tensor x = add(mul(rand({256, 2}, gen), 2.0), -1.0);
    auto xv = x.to_float_vector();
    std::vector<float> yv(256);
    for (int i = 0; i < 256; ++i) yv[size_t(i)] = std::sin(3 * xv[size_t(2 * i)]) + xv[size_t(2 * i + 1)] * xv[size_t(2 * i + 1)];
    Tensor y = Tensor::from_vector(yv, {256, 1});
    auto init = [&](Shape s, double fan_in) { return mul(randn(s, gen), 1.0 / std::sqrt(fan_in)).requires_grad_(); };
    Tensor w1 = init({32, 2}, 2), b1 = Tensor::zeros({32}).requires_grad_();
    Tensor w2 = init({32, 32}, 32), b2 = Tensor::zeros({32}).requires_grad_();
    Tensor w3 = init({1, 32}, 32), b3 = Tensor::zeros({1}).requires_grad_();
    AdamOptions o;
    o.lr = 1e-2;
    Adam opt({{{w1, w2, w3}}, {{b1, b2, b3}, 1.0, false}}, o);
    double first = 0, last = 0;
    for (int step = 0; step < 600; ++step) {
      Tensor h = gelu(linear(x, w1, b1));
      h = gelu(linear(h, w2, b2));
      Tensor loss = mse_loss(linear(h, w3, b3), y);
      opt.zero_grad();
      loss.backward();
      opt.step();
      if (step == 0) first = loss.item();
      last = loss.item();
    }
    MESSAGE("toy MLP loss: ", first, " -> ", last);
    CHECK(first > 0.3);
    CHECK(last < 0.01);
  }
}
