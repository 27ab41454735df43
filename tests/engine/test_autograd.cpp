#include <doctest/doctest.h>

#include "autograd/ops.h"

using namespace pe;

TEST_SUITE("unit") {
  TEST_CASE("gradients accumulate for tensors used several times") {
    Tensor x = Tensor::from_vector(std::vector<double>{1, 2, 3}, {3}).requires_grad_();
    Tensor y = sum(add(mul(x, x), mul(x, 3.0)));  // d/dx = 2x + 3
    y.backward();
    CHECK(x.grad().to_double_vector() == std::vector<double>{5, 7, 9});
    sum(x).backward();  // leaves accumulate across backward calls
    CHECK(x.grad().to_double_vector() == std::vector<double>{6, 8, 10});
    x.zero_grad();
    CHECK_FALSE(x.grad().defined());
  }

  TEST_CASE("the leaf-ready hook fires once per leaf, after its last consumer, with the final gradient") {
    auto leaf = [](std::vector<double> v) { return Tensor::from_vector(v, {int64_t(v.size())}).requires_grad_(); };
    Tensor a = leaf({1, 2}), b = leaf({3, 4}), c = leaf({5, 6}), unused = leaf({7, 8});
    Tensor frozen = Tensor::from_vector(std::vector<double>{1, 1}, {2});  // no gradient: never reported
    std::vector<std::pair<TensorImpl*, std::vector<double>>> fired;
    {
      LeafGradReadyHookGuard guard([&](const Tensor& t) { fired.push_back({t.impl(), t.grad().to_double_vector()}); });
      // Forward uses a, then b, then c; a once more at the very end, so it is final only after that.
      Tensor h = mul(mul(mul(mul(a, 2.0), b), c), frozen);
      add(sum(h), sum(mul(a, a))).backward();
    }
    REQUIRE(fired.size() == 3);
    // c and b in reverse order of use; a (whose first use is deepest) last.
    CHECK(fired[0].first == c.impl());
    CHECK(fired[1].first == b.impl());
    CHECK(fired[2].first == a.impl());
    for (const auto& [impl, g] : fired) {
      const Tensor& t = impl == a.impl() ? a : impl == b.impl() ? b : c;
      CHECK(g == t.grad().to_double_vector());  // nothing was added after the hook saw it
    }
    CHECK(fired[2].second == std::vector<double>{2 * 3 * 5 + 2 * 1, 2 * 4 * 6 + 2 * 2});
    CHECK_FALSE(unused.grad().defined());
    sum(a).backward();  // the guard has gone: no hook
    CHECK(fired.size() == 3);
  }

  TEST_CASE("no-grad scope records nothing and frozen parameters get no gradient") {
    Tensor w = Tensor::ones({2}, DType::F64).requires_grad_();
    Tensor frozen = Tensor::ones({2}, DType::F64);  // requires_grad false
    {
      NoGradGuard ng;
      Tensor y = mul(w, 2.0);
      CHECK_FALSE(y.requires_grad());
    }
    Tensor y = sum(mul(w, frozen));
    Tensor only_frozen = mul(frozen, 2.0);
    CHECK_FALSE(only_frozen.requires_grad());  // no node recorded through a frozen subgraph
    y.backward();
    CHECK(w.grad().defined());
    CHECK_FALSE(frozen.grad().defined());
  }

  TEST_CASE("the graph is freed after backward unless retained") {
    Tensor x = Tensor::from_vector(std::vector<double>{2}, {1}).requires_grad_();
    Tensor y = sum(mul(x, x));
    y.backward(Tensor(), /*retain_graph=*/true);
    y.backward();
    CHECK(x.grad().item() == doctest::Approx(8.0));
    CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("already freed"), Error);
  }

  TEST_CASE("backward needs a scalar or a seed of the output's shape") {
    Tensor x = Tensor::ones({3}, DType::F64).requires_grad_();
    Tensor y = mul(x, 2.0);
    CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("not a scalar"), Error);
    y.backward(Tensor::from_vector(std::vector<double>{1, 2, 3}, {3}));
    CHECK(x.grad().to_double_vector() == std::vector<double>{2, 4, 6});
    Tensor c = Tensor::ones({3}, DType::F64);
    CHECK_THROWS_WITH_AS(sum(c).backward(), doctest::Contains("does not require a gradient"), Error);
  }

  TEST_CASE("a deep chain does not overflow the stack") {
    Tensor x = Tensor::ones({1}, DType::F64).requires_grad_();
    Tensor y = x;
    for (int i = 0; i < 20000; ++i) y = add(y, 1e-4);
    sum(y).backward();
    CHECK(x.grad().item() == doctest::Approx(1.0));
  }

  TEST_CASE("leaf gradients do not alias each other") {
    Tensor a = Tensor::ones({2}, DType::F64).requires_grad_();
    Tensor b = Tensor::ones({2}, DType::F64).requires_grad_();
    sum(add(a, b)).backward();
    CHECK(a.grad().storage() != b.grad().storage());
  }
}
