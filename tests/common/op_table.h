#pragma once
// The one table of op cases. Each case is run by the float64 gradient check on the CPU
// (tests/engine/test_gradcheck.cpp) and compared against that CPU result on CUDA in f32 and bf16
// (tests/engine/test_ops_cuda.cpp). A new op is not done until it has a row here.
#include <functional>
#include <string>
#include <vector>

#include "autograd/fused.h"
#include "autograd/ops.h"

namespace pe::testing {

enum class Domain { Normal, Positive, Index, Mask };

struct InputSpec {
  Shape shape;
  Domain domain = Domain::Normal;
  int64_t index_range = 0;  // Index: values in [0, index_range)
  bool grad = true;         // differentiated (floating domains only)
};

struct OpCase {
  std::string name;
  std::vector<InputSpec> inputs;
  std::function<Tensor(const std::vector<Tensor>&)> f;
  double eps = 1e-6, atol = 1e-7, rtol = 1e-5;  // gradcheck
  bool cuda = true;                             // also compared on CUDA
  bool bf16 = true;                             // also compared in bf16 on CUDA
  // bf16-vs-f64 tolerance (relative to the largest reference value). 2e-2 by default; larger where
  // the gradient cancels: softmax's y * (g - sum(y g)) over bf16-stored y and g has an inherent error
  // of 1.1 % median, 2.6 % worst over 200 random [4, 9] problems (fp32 math, bf16 storage, computed
  // with PyTorch as an independent model of the same arithmetic).
  double bf16_tol = 2e-2;
};

inline InputSpec N(Shape s) { return {std::move(s), Domain::Normal, 0, true}; }
inline InputSpec P(Shape s) { return {std::move(s), Domain::Positive, 0, true}; }
inline InputSpec I(Shape s, int64_t range) { return {std::move(s), Domain::Index, range, false}; }
inline InputSpec M(Shape s) { return {std::move(s), Domain::Mask, 0, false}; }
inline InputSpec C(Shape s) { return {std::move(s), Domain::Normal, 0, false}; }      // constant input
inline InputSpec CP(Shape s) { return {std::move(s), Domain::Positive, 0, false}; }   // constant, positive

// Deterministic inputs for a case: f64 on the CPU (index inputs i64).
inline std::vector<Tensor> make_inputs(const OpCase& c, uint64_t seed = 7) {
  Generator gen(seed);
  std::vector<Tensor> xs;
  for (const InputSpec& s : c.inputs) {
    Tensor t;
    switch (s.domain) {
      case Domain::Normal: t = randn(s.shape, gen, DType::F64); break;
      case Domain::Positive: t = add(rand(s.shape, gen, DType::F64), 0.5); break;
      case Domain::Mask: t = bernoulli(s.shape, 0.5, gen, DType::F64); break;
      case Domain::Index: {
        std::vector<int64_t> v(size_t(shape_numel(s.shape)));
        for (auto& x : v) x = gen.randint(0, s.index_range);
        t = Tensor::from_vector(v, s.shape);
        break;
      }
    }
    if (s.grad && s.domain != Domain::Index && s.domain != Domain::Mask) t.requires_grad_(true);
    xs.push_back(t);
  }
  return xs;
}

inline std::vector<OpCase> op_table() {
  using V = const std::vector<Tensor>&;
  std::vector<OpCase> t;
  auto add_case = [&](OpCase c) -> OpCase& {
    t.push_back(std::move(c));
    return t.back();
  };

  // ---- elementwise binary, with broadcast and non-contiguous variants
  add_case({"add", {N({3, 4}), N({3, 4})}, [](V x) { return add(x[0], x[1]); }});
  add_case({"add/broadcast", {N({3, 4}), N({4})}, [](V x) { return add(x[0], x[1]); }});
  add_case({"add/noncontig", {N({4, 3}), N({3, 4})}, [](V x) { return add(x[0].transpose(0, 1), x[1]); }});
  add_case({"sub/broadcast", {N({2, 3, 1}), N({3, 5})}, [](V x) { return sub(x[0], x[1]); }});
  add_case({"mul/broadcast", {N({5, 1}), N({1, 7})}, [](V x) { return mul(x[0], x[1]); }});
  add_case({"mul/noncontig", {N({6, 5}), N({5, 3})}, [](V x) { return mul(x[0].narrow(0, 1, 3).transpose(0, 1), x[1]); }});
  add_case({"div", {N({3, 4}), P({3, 4})}, [](V x) { return div(x[0], x[1]); }});
  add_case({"div/broadcast", {N({2, 3, 4}), P({3, 1})}, [](V x) { return div(x[0], x[1]); }});
  add_case({"maximum/broadcast", {N({4, 5}), N({5})}, [](V x) { return maximum(x[0], x[1]); }});
  // ---- elementwise unary and scalar
  add_case({"neg", {N({7, 3})}, [](V x) { return neg(x[0]); }});
  add_case({"exp", {N({7, 3})}, [](V x) { return exp(x[0]); }});
  add_case({"log", {P({7, 3})}, [](V x) { return log(x[0]); }});
  add_case({"sqrt", {P({7, 3})}, [](V x) { return sqrt(x[0]); }});
  add_case({"rsqrt", {P({7, 3})}, [](V x) { return rsqrt(x[0]); }});
  add_case({"tanh", {N({7, 3})}, [](V x) { return tanh(x[0]); }});
  add_case({"sigmoid", {N({7, 3})}, [](V x) { return sigmoid(x[0]); }});
  add_case({"relu", {N({7, 3})}, [](V x) { return relu(x[0]); }});
  add_case({"gelu", {N({7, 3})}, [](V x) { return gelu(x[0]); }});
  add_case({"gelu/noncontig", {N({3, 7})}, [](V x) { return gelu(x[0].transpose(0, 1)); }});
  add_case({"abs", {N({7, 3})}, [](V x) { return abs(x[0]); }});
  add_case({"square", {N({7, 3})}, [](V x) { return square(x[0]); }});
  add_case({"reciprocal", {P({7, 3})}, [](V x) { return reciprocal(x[0]); }});
  add_case({"pow", {P({7, 3})}, [](V x) { return pow(x[0], 2.5); }});
  add_case({"add_scalar", {N({7, 3})}, [](V x) { return add(x[0], 1.75); }});
  add_case({"mul_scalar", {N({7, 3})}, [](V x) { return mul(x[0], -0.3); }});
  add_case({"clamp_min", {N({7, 3})}, [](V x) { return clamp_min(x[0], 0.1); }});
  add_case({"where/broadcast", {M({3, 1}), N({3, 4}), N({4})}, [](V x) { return where(x[0], x[1], x[2]); }});
  add_case({"masked_fill", {N({3, 5}), M({1, 5})}, [](V x) { return masked_fill(x[0], x[1], -2.0); }});
  // ---- reductions
  add_case({"sum/all", {N({3, 4, 5})}, [](V x) { return sum(x[0]); }});
  add_case({"sum/dims_keepdim", {N({3, 4, 5})}, [](V x) { return sum(x[0], {0, 2}, true); }});
  add_case({"sum/noncontig", {N({4, 6})}, [](V x) { return sum(x[0].transpose(0, 1), {1}); }});
  add_case({"mean/dim", {N({3, 4, 5})}, [](V x) { return mean(x[0], {-1}); }});
  add_case({"amax/dim", {N({4, 9})}, [](V x) { return amax(x[0], {1}); }});
  // ---- views
  add_case({"reshape", {N({4, 6})}, [](V x) { return mul(x[0].reshape({2, 12}), x[0].reshape({2, 12})); }});
  add_case({"reshape/noncontig", {N({4, 6})}, [](V x) { return x[0].transpose(0, 1).reshape({3, 8}); }});
  add_case({"permute", {N({2, 3, 4})}, [](V x) { return x[0].permute({2, 0, 1}).contiguous(); }});
  add_case({"narrow", {N({5, 6})}, [](V x) { return x[0].narrow(1, 2, 3); }});
  add_case({"select", {N({5, 6})}, [](V x) { return x[0].select(0, 3); }});
  add_case({"expand", {N({3, 1})}, [](V x) { return x[0].expand({2, 3, 4}); }});
  add_case({"unsqueeze_squeeze", {N({3, 4})}, [](V x) { return x[0].unsqueeze(1).squeeze(1); }});
  add_case({"concat", {N({2, 3}), N({2, 1}), N({2, 4})}, [](V x) { return concat({x[0], x[1], x[2]}, 1); }});
  add_case({"split", {N({5, 3})}, [](V x) {
    auto p = split(x[0], {2, 3}, 0);
    return add(p[0].narrow(0, 0, 2), mul(p[1].narrow(0, 1, 2), 3.0));
  }});
  add_case({"stack", {N({2, 3}), N({2, 3})}, [](V x) { return stack({x[0], x[1]}, 1); }});
  // ---- linear algebra
  add_case({"matmul", {N({5, 7}), N({7, 3})}, [](V x) { return matmul(x[0], x[1]); }});
  add_case({"matmul/transposed", {N({7, 5}), N({3, 7})}, [](V x) {
    return matmul(x[0].transpose(0, 1), x[1].transpose(0, 1));
  }});
  add_case({"matmul/batched_broadcast", {N({2, 1, 5, 7}), N({3, 7, 4})}, [](V x) { return matmul(x[0], x[1]); }});
  add_case({"matmul/noncontig", {N({3, 8, 5}), N({3, 4, 8})}, [](V x) {
    return matmul(x[0].narrow(1, 1, 6).transpose(1, 2), x[1].narrow(2, 0, 6).transpose(1, 2));
  }});
  add_case({"linear", {N({2, 3, 6}), N({5, 6}), N({5})}, [](V x) { return linear(x[0], x[1], x[2]); }});
  // ---- softmax and norms
  add_case({"softmax", {N({4, 9})}, [](V x) { return softmax(x[0], -1); }}).bf16_tol = 4e-2;
  add_case({"softmax/dim0", {N({4, 9})}, [](V x) { return softmax(x[0], 0); }}).bf16_tol = 4e-2;
  add_case({"log_softmax", {N({4, 9})}, [](V x) { return log_softmax(x[0], -1); }});
  add_case({"layer_norm", {N({3, 4, 7}), N({7}), N({7})}, [](V x) { return layer_norm(x[0], x[1], x[2], 1e-5); }});
  add_case({"add_layer_norm", {N({3, 4, 7}), N({3, 4, 7}), N({7}), N({7})},
            [](V x) { return add_layer_norm(x[0], x[1], x[2], x[3], 1e-5); }});
  add_case({"add_layer_norm/same_input_no_affine", {N({5, 9})},
            [](V x) { return add_layer_norm(x[0], x[0], Tensor(), Tensor(), 1e-5); }});
  add_case({"layer_norm/no_affine_noncontig", {N({7, 5})}, [](V x) {
    return layer_norm(x[0].transpose(0, 1), Tensor(), Tensor(), 1e-12);
  }});
  add_case({"l2_normalize", {N({4, 6})}, [](V x) { return l2_normalize(x[0], -1); }});
  // ---- indexing
  add_case({"embedding", {N({7, 5}), I({2, 3}, 7)}, [](V x) { return embedding(x[0], x[1]); }});
  add_case({"index_select", {N({3, 6, 2}), I({8}, 6)}, [](V x) { return index_select(x[0], 1, x[1]); }});
  add_case({"index_add", {N({5, 3}), N({4, 3}), I({4}, 5)}, [](V x) { return index_add(x[0], 0, x[2], x[1]); }});
  add_case({"gather", {N({4, 6}), I({4, 3}, 6)}, [](V x) { return gather(x[0], 1, x[1]); }});
  add_case({"gather/dim0", {N({5, 3}), I({2, 3}, 5)}, [](V x) {
    // gather along dim 0 needs matching other dims: use a [5,3] index built from the [2,3] one
    return gather(x[0], 0, concat({x[1], x[1], x[1].narrow(0, 0, 1)}, 0));
  }});
  add_case({"scatter_add", {N({4, 3}), I({4, 3}, 6)}, [](V x) {
    return scatter_add({4, 6}, 1, x[1], x[0]);
  }});
  // ---- model pieces
  add_case({"rotary", {N({2, 5, 3, 6})}, [](V x) { return rotary(x[0]); }});
  add_case({"dropout", {N({6, 7})}, [](V x) {
    Generator g(99);
    return dropout(x[0], 0.3, true, g);
  }});
  add_case({"batch_norm/train_masked", {N({6, 4}), N({4}), N({4}), M({6})}, [](V x) {
    std::vector<double> m = x[3].to_double_vector();
    m[0] = m[1] = 1.0;  // at least two real rows
    Tensor mask = Tensor::from_vector(m, {6}).to(x[0].dtype()).to(x[0].device());
    Tensor rm = Tensor::zeros({4}, x[0].dtype(), x[0].device()), rv = Tensor::ones({4}, x[0].dtype(), x[0].device());
    return batch_norm(x[0], mask, x[1], x[2], rm, rv, true, 0.1, 1e-5);
  }});
  add_case({"batch_norm/eval", {N({5, 3}), N({3}), N({3}), CP({3})}, [](V x) {
    return batch_norm(x[0], Tensor(), x[1], x[2], mul(x[3], 0.5), x[3], false, 0.1, 1e-5);
  }});
  // ---- losses
  add_case({"cross_entropy", {N({6, 5}), I({6}, 5)}, [](V x) {
    std::vector<int64_t> t = x[1].to_int_vector();
    t[2] = -100;  // one ignored row
    return cross_entropy(x[0], Tensor::from_vector(t, {6}).to(x[0].device()));
  }});
  add_case({"mse_loss", {N({4, 5}), N({4, 5})}, [](V x) { return mse_loss(x[0], x[1]); }});
  // ---- fused kernels (their own suites test them further against the compositions)
  add_case({"flash_attention", {N({2, 5, 2, 8}), N({2, 7, 2, 8}), N({2, 7, 2, 8}), M({2, 7})}, [](V x) {
    return flash_attention(x[0], x[1], x[2], x[3], 0.35);
  }});
  add_case({"fused_info_nce", {N({5, 6}), N({5, 6}), N({})}, [](V x) {
    Tensor group = Tensor::from_vector(std::vector<int64_t>{0, 1, 0, 2, 3}, {5}).to(x[0].device());
    return fused_info_nce(l2_normalize(x[0], -1), l2_normalize(x[1], -1), x[2], 4.6, group);
  }});
  add_case({"fused_masked_cross_entropy", {N({6, 8}), N({11, 8}), N({11}), I({6}, 11)}, [](V x) {
    return fused_masked_cross_entropy(x[0], x[1], x[2], x[3]);
  }});
  return t;
}

}  // namespace pe::testing
