#include <doctest/doctest.h>
#include <omp.h>

#include <cmath>

#include "autograd/ops.h"

using namespace pe;

TEST_SUITE("unit") {
  TEST_CASE("views share storage and contiguous() copies only when needed") {
    Tensor x = Tensor::from_vector(std::vector<float>{0, 1, 2, 3, 4, 5}, {2, 3});
    Tensor t = x.transpose(0, 1);
    CHECK(t.shape() == Shape{3, 2});
    CHECK_FALSE(t.is_contiguous());
    CHECK(t.storage() == x.storage());
    CHECK(t.contiguous().to_float_vector() == std::vector<float>{0, 3, 1, 4, 2, 5});
    CHECK(x.contiguous().storage() == x.storage());
    Tensor n = x.narrow(1, 1, 2);
    CHECK(n.to_float_vector() == std::vector<float>{1, 2, 4, 5});
    CHECK(x.select(0, 1).to_float_vector() == std::vector<float>{3, 4, 5});
    Tensor e = Tensor::from_vector(std::vector<float>{7, 8}, {2, 1}).expand({2, 3});
    CHECK(e.strides()[1] == 0);
    CHECK(e.contiguous().to_float_vector() == std::vector<float>{7, 7, 7, 8, 8, 8});
    CHECK(x.reshape({3, -1}).shape() == Shape{3, 2});
    CHECK(x.reshape({3, 2}).storage() == x.storage());       // view
    CHECK(t.reshape({6}).storage() != x.storage());          // copy: not viewable
    CHECK(t.reshape({6}).to_float_vector() == std::vector<float>{0, 3, 1, 4, 2, 5});
    CHECK(x.permute({1, 0}).unsqueeze(0).shape() == Shape{1, 3, 2});
  }

  TEST_CASE("dtype conversions round trip and bf16 rounds to nearest even") {
    Tensor x = Tensor::from_vector(std::vector<double>{1.5, -2.25, 3.0, 0.125}, {4});
    CHECK(x.to(DType::F32).to(DType::F64).to_double_vector() == x.to_double_vector());
    CHECK(x.to(DType::I64).to_int_vector() == std::vector<int64_t>{1, -2, 3, 0});
    CHECK(bf16(1.0f + 1.0f / 256).bits == bf16(1.0f).bits);                // tie -> even
    CHECK(float(bf16(1.0f + 3.0f / 256)) == doctest::Approx(1.0f + 4.0f / 256));  // tie -> even (up)
    CHECK(std::isnan(float(bf16(std::nanf("")))));
    Tensor b = x.to(DType::BF16);
    CHECK(b.dtype() == DType::BF16);
    CHECK(b.to(DType::F64).to_double_vector()[1] == -2.25);
  }

  TEST_CASE("errors name the op and the shapes") {
    Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4, 5});
    CHECK_THROWS_WITH_AS(add(a, b), doctest::Contains("add: shapes [2, 3] and [4, 5] do not broadcast"), Error);
    CHECK_THROWS_WITH_AS(matmul(a, b), doctest::Contains("matmul: inner dimensions differ"), Error);
    CHECK_THROWS_WITH_AS(add(a, Tensor::zeros({2, 3}, DType::F64)), doctest::Contains("dtype mismatch"), Error);
    CHECK_THROWS_WITH_AS(a.view({7}), doctest::Contains("[7]"), Error);
    CHECK_THROWS_AS(a.narrow(1, 2, 2), Error);
    CHECK_THROWS_WITH_AS(Tensor::zeros({2}, DType::F32, Device::cuda()).numel(),
                         doctest::Contains("cuda"), Error);
  }

  TEST_CASE("random streams are seeded and do not depend on the number of threads") {
    Generator g1(5), g2(5);
    Tensor a = randn({1 << 16}, g1), b;
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    b = randn({1 << 16}, g2);
    omp_set_num_threads(saved);
    CHECK(a.to_float_vector() == b.to_float_vector());
    std::vector<double> v = randn({20000}, g1, DType::F64).to_double_vector();
    double m = 0, s = 0;
    for (double x : v) m += x;
    m /= double(v.size());
    for (double x : v) s += (x - m) * (x - m);
    s = std::sqrt(s / double(v.size()));
    CHECK(std::abs(m) < 0.03);
    CHECK(std::abs(s - 1.0) < 0.03);
    std::vector<double> u = rand({20000}, g1, DType::F64).to_double_vector();
    for (double x : u) REQUIRE((x >= 0.0 && x < 1.0));
    double frac = sum(bernoulli({20000}, 0.2, g1, DType::F64)).item() / 20000.0;
    CHECK(std::abs(frac - 0.2) < 0.02);
    auto p = g1.permutation(50);
    std::vector<int64_t> sorted = p;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < 50; ++i) CHECK(sorted[size_t(i)] == i);
    Generator g3(6);
    CHECK(g3.permutation(50) != p);
    for (int i = 0; i < 1000; ++i) {
      int64_t r = g3.randint(3, 9);
      REQUIRE((r >= 3 && r < 9));
    }
  }

  TEST_CASE("forward values of core ops") {
    Tensor a = Tensor::from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3});
    Tensor b = Tensor::from_vector(std::vector<double>{1, 0, 0, 1, 1, 1}, {3, 2});
    CHECK(matmul(a, b).to_double_vector() == std::vector<double>{4, 5, 10, 11});
    CHECK(sum(a, {0}).to_double_vector() == std::vector<double>{5, 7, 9});
    CHECK(mean(a, {1}).to_double_vector() == std::vector<double>{2, 5});
    CHECK(amax(a, {1}).to_double_vector() == std::vector<double>{3, 6});
    auto sm = softmax(a, -1).to_double_vector();
    CHECK(sm[0] + sm[1] + sm[2] == doctest::Approx(1.0));
    CHECK(sm[2] / sm[1] == doctest::Approx(std::exp(1.0)));
    auto ln = layer_norm(a, Tensor(), Tensor(), 0.0).to_double_vector();
    CHECK(ln[0] == doctest::Approx(-std::sqrt(1.5)));
    CHECK(gelu(Tensor::from_vector(std::vector<double>{1.0}, {1})).item() ==
          doctest::Approx(0.5 * (1 + std::erf(1 / std::sqrt(2.0)))).epsilon(1e-14));
    Tensor ids = Tensor::from_vector(std::vector<int64_t>{2, 0}, {2});
    CHECK(index_select(a, 1, ids).to_double_vector() == std::vector<double>{3, 1, 6, 4});
    CHECK(concat({a, a}, 0).shape() == Shape{4, 3});
    Tensor ce = cross_entropy(Tensor::from_vector(std::vector<double>{0, 0, 0, 0}, {2, 2}),
                              Tensor::from_vector(std::vector<int64_t>{1, -100}, {2}));
    CHECK(ce.item() == doctest::Approx(std::log(2.0)));
  }

  TEST_CASE("rotary rotates pairs (i - i + d/2) by position * base^(-2i/d)") {
    // One head, dim 4, position 1: angles 1 and 1/100.
    Tensor x = Tensor::from_vector(std::vector<double>{0, 0, 0, 0, 1, 2, 3, 4}, {1, 2, 1, 4});
    auto y = rotary(x, 10000.0).to_double_vector();
    double a0 = 1.0, a1 = 1.0 / 100.0;
    CHECK(y[4] == doctest::Approx(1 * std::cos(a0) - 3 * std::sin(a0)));
    CHECK(y[6] == doctest::Approx(3 * std::cos(a0) + 1 * std::sin(a0)));
    CHECK(y[5] == doctest::Approx(2 * std::cos(a1) - 4 * std::sin(a1)));
    CHECK(y[7] == doctest::Approx(4 * std::cos(a1) + 2 * std::sin(a1)));
  }

  TEST_CASE("large parallel ops agree with serial ones") {
    Generator g(11);
    Tensor x = randn({300, 257}, g, DType::F64);
    Tensor y = randn({257, 129}, g, DType::F64);
    int saved = omp_get_max_threads();
    Tensor p1 = matmul(x, y), s1 = softmax(x, -1), l1 = layer_norm(x, Tensor(), Tensor(), 1e-5);
    omp_set_num_threads(1);
    Tensor p2 = matmul(x, y), s2 = softmax(x, -1), l2 = layer_norm(x, Tensor(), Tensor(), 1e-5);
    omp_set_num_threads(saved);
    CHECK(amax(abs(sub(p1, p2))).item() < 1e-10);
    CHECK(s1.to_double_vector() == s2.to_double_vector());
    CHECK(l1.to_double_vector() == l2.to_double_vector());
  }
}
