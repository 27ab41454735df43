#include "autograd/ops.h"

#include "kernels/cpu/cpu_api.h"

#include <algorithm>
#include <numeric>

namespace pe {

const char* unary_name(UnaryOp op) {
  static const char* names[] = {"neg", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "relu", "gelu",
                                "abs", "square", "pow", "add_scalar", "mul_scalar", "clamp_min", "reciprocal"};
  return names[int(op)];
}
const char* binary_name(BinaryOp op) {
  static const char* names[] = {"add", "sub", "mul", "div", "maximum", "minimum", "eq", "gt", "lt"};
  return names[int(op)];
}

namespace {

using Grads = std::vector<Tensor>;

int64_t wrap(int64_t d, int64_t n, const char* op) {
  int64_t r = d < 0 ? d + n : d;
  PE_CHECK(r >= 0 && r < std::max<int64_t>(n, 1), op, ": dim ", d, " out of range for a ", n, "-d tensor");
  return r;
}

void check_same(const char* op, const Tensor& a, const Tensor& b) {
  PE_CHECK(a.defined() && b.defined(), op, ": undefined input");
  PE_CHECK(a.device() == b.device(), op, ": inputs on different devices: ", a.str(), " and ", b.str());
  PE_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch: ", a.str(), " and ", b.str());
}

void check_float(const char* op, const Tensor& a) {
  PE_CHECK(a.defined(), op, ": undefined input");
  PE_CHECK(is_floating(a.dtype()), op, ": expected a floating tensor, got ", a.str());
}

Shape broadcast_shape(const char* op, const Shape& a, const Shape& b) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    PE_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", shape_str(a), " and ", shape_str(b),
             " do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Backend& be(const Tensor& t) { return backend_for(t.device()); }

Tensor unary_op(UnaryOp op, const Tensor& x_in, double s) {
  check_float(unary_name(op), x_in);
  Tensor x = x_in.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.numel()) be(x).unary(op, x, out, s);
  Tensor xs = x.detach(), ys = out.detach();
  return record(out, unary_name(op), {x_in}, [op, xs, ys, s](const Tensor& g) {
    Tensor gx = Tensor::empty(xs.shape(), xs.dtype(), xs.device());
    if (xs.numel()) be(xs).unary_backward(op, xs, ys, g.contiguous(), gx, s);
    return Grads{gx};
  });
}

Tensor binary_raw(BinaryOp op, const Tensor& a, const Tensor& b) {
  check_same(binary_name(op), a, b);
  check_float(binary_name(op), a);
  Shape s = broadcast_shape(binary_name(op), a.shape(), b.shape());
  Tensor out = Tensor::empty(s, a.dtype(), a.device());
  if (out.numel()) be(a).binary(op, a.detach().expand(s), b.detach().expand(s), out);
  return out;
}

// Reduces x over `dims` (normalised, sorted) into rows: returns the [kept, reduced] contiguous view.
Tensor to_rows(const Tensor& x, const std::vector<int64_t>& dims, Shape& kept_shape) {
  int64_t n = x.dim();
  std::vector<bool> red(size_t(n), false);
  for (int64_t d : dims) red[size_t(d)] = true;
  std::vector<int64_t> perm;
  int64_t kept = 1, reduced = 1;
  kept_shape.clear();
  for (int64_t i = 0; i < n; ++i)
    if (!red[size_t(i)]) { perm.push_back(i); kept *= x.size(i); kept_shape.push_back(x.size(i)); }
  for (int64_t i = 0; i < n; ++i)
    if (red[size_t(i)]) { perm.push_back(i); reduced *= x.size(i); }
  return x.detach().permute(perm).contiguous().view({kept, reduced});
}

std::vector<int64_t> norm_dims(const Tensor& x, std::vector<int64_t> dims, const char* op) {
  if (dims.empty()) {
    dims.resize(size_t(x.dim()));
    std::iota(dims.begin(), dims.end(), 0);
  }
  for (auto& d : dims) d = wrap(d, x.dim(), op);
  std::sort(dims.begin(), dims.end());
  PE_CHECK(std::adjacent_find(dims.begin(), dims.end()) == dims.end(), op, ": repeated dim");
  return dims;
}

Shape keepdim_shape(const Shape& s, const std::vector<int64_t>& dims) {
  Shape k = s;
  for (int64_t d : dims) k[size_t(d)] = 1;
  return k;
}

Tensor reduce_op(ReduceOp op, const Tensor& x, std::vector<int64_t> dims_in, bool keepdim, const char* name) {
  check_float(name, x);
  std::vector<int64_t> dims = norm_dims(x, dims_in, name);
  Shape ks = keepdim_shape(x.shape(), dims);
  // On the CPU, a reduction over leading dims of a contiguous tensor (bias and broadcast gradients)
  // sums columns in place instead of transposing x into rows first.
  bool leading = x.device().is_cpu() && x.is_contiguous() && !dims.empty() && dims.back() == int64_t(dims.size()) - 1 &&
                 int64_t(dims.size()) < x.dim();
  if (leading) {
    int64_t r = 1;
    for (int64_t d : dims) r *= x.size(d);
    Shape kept_shape(x.shape().begin() + int64_t(dims.size()), x.shape().end());
    int64_t c = shape_numel(kept_shape);
    Tensor out = Tensor::empty({c}, x.dtype(), x.device());
    if (c) cpu::reduce_leading(op, x.detach(), r, c, out);
    return out.view(keepdim ? ks : kept_shape);
  }
  Shape kept;
  Tensor rows = to_rows(x, dims, kept);
  Tensor out = Tensor::empty({rows.size(0)}, x.dtype(), x.device());
  if (rows.size(0)) be(x).reduce_rows(op, rows, out);
  return out.view(keepdim ? ks : kept);
}

}  // namespace

// ------------------------------------------------------------------ elementwise
Tensor neg(const Tensor& a) { return unary_op(UnaryOp::Neg, a, 0); }
Tensor exp(const Tensor& a) { return unary_op(UnaryOp::Exp, a, 0); }
Tensor log(const Tensor& a) { return unary_op(UnaryOp::Log, a, 0); }
Tensor sqrt(const Tensor& a) { return unary_op(UnaryOp::Sqrt, a, 0); }
Tensor rsqrt(const Tensor& a) { return unary_op(UnaryOp::Rsqrt, a, 0); }
Tensor tanh(const Tensor& a) { return unary_op(UnaryOp::Tanh, a, 0); }
Tensor sigmoid(const Tensor& a) { return unary_op(UnaryOp::Sigmoid, a, 0); }
Tensor relu(const Tensor& a) { return unary_op(UnaryOp::Relu, a, 0); }
Tensor gelu(const Tensor& a) { return unary_op(UnaryOp::Gelu, a, 0); }
Tensor abs(const Tensor& a) { return unary_op(UnaryOp::Abs, a, 0); }
Tensor square(const Tensor& a) { return unary_op(UnaryOp::Square, a, 0); }
Tensor reciprocal(const Tensor& a) { return unary_op(UnaryOp::Recip, a, 0); }
Tensor pow(const Tensor& a, double s) { return unary_op(UnaryOp::PowScalar, a, s); }
Tensor add(const Tensor& a, double s) { return unary_op(UnaryOp::AddScalar, a, s); }
Tensor mul(const Tensor& a, double s) { return unary_op(UnaryOp::MulScalar, a, s); }
Tensor clamp_min(const Tensor& a, double s) { return unary_op(UnaryOp::ClampMin, a, s); }

Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  int64_t lead = g.dim() - int64_t(shape.size());
  PE_CHECK(lead >= 0, "sum_to: cannot reduce ", g.str(), " to ", shape_str(shape));
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < g.dim(); ++i) {
    if (i < lead) dims.push_back(i);
    else if (shape[size_t(i - lead)] == 1 && g.size(i) != 1) dims.push_back(i);
  }
  Tensor r = dims.empty() ? g : sum(g, dims, true);
  return r.reshape(shape);
}

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw(BinaryOp::Add, a, b);
  Shape sa = a.shape(), sb = b.shape();
  return record(out, "add", {a, b}, [sa, sb](const Tensor& g) { return Grads{sum_to(g, sa), sum_to(g, sb)}; });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw(BinaryOp::Sub, a, b);
  Shape sa = a.shape(), sb = b.shape();
  return record(out, "sub", {a, b}, [sa, sb](const Tensor& g) { return Grads{sum_to(g, sa), sum_to(neg(g), sb)}; });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw(BinaryOp::Mul, a, b);
  Tensor ad = a.detach(), bd = b.detach();
  auto node_needs = std::make_pair(a.requires_grad(), b.requires_grad());
  return record(out, "mul", {a, b}, [ad, bd, node_needs](const Tensor& g) {
    return Grads{node_needs.first ? sum_to(mul(g, bd), ad.shape()) : Tensor(),
                 node_needs.second ? sum_to(mul(g, ad), bd.shape()) : Tensor()};
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw(BinaryOp::Div, a, b);
  Tensor ad = a.detach(), bd = b.detach();
  bool need_b = b.requires_grad();
  return record(out, "div", {a, b}, [ad, bd, need_b](const Tensor& g) {
    Tensor ga = sum_to(div(g, bd), ad.shape());
    Tensor gb = need_b ? sum_to(neg(div(mul(g, ad), square(bd))), bd.shape()) : Tensor();
    return Grads{ga, gb};
  });
}

Tensor maximum(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw(BinaryOp::Max, a, b);
  Tensor ad = a.detach(), bd = b.detach();
  return record(out, "maximum", {a, b}, [ad, bd](const Tensor& g) {
    Tensor a_wins = add(neg(binary_raw(BinaryOp::Lt, ad, bd)), 1.0);  // a >= b
    Tensor ga = mul(g, a_wins);
    return Grads{sum_to(ga, ad.shape()), sum_to(sub(g, ga), bd.shape())};
  });
}

Tensor eq(const Tensor& a, const Tensor& b) { return binary_raw(BinaryOp::Eq, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary_raw(BinaryOp::Gt, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary_raw(BinaryOp::Lt, a, b); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_same("where", a, b);
  check_float("where", a);
  PE_CHECK(cond.device() == a.device(), "where: condition ", cond.str(), " on another device than ", a.str());
  Shape s = broadcast_shape("where", broadcast_shape("where", cond.shape(), a.shape()), b.shape());
  Tensor out = Tensor::empty(s, a.dtype(), a.device());
  if (out.numel()) be(a).where(cond.detach().expand(s), a.detach().expand(s), b.detach().expand(s), out);
  Tensor cd = cond.detach();
  Shape sa = a.shape(), sb = b.shape();
  return record(out, "where", {a, b}, [cd, sa, sb](const Tensor& g) {
    Tensor zero = Tensor::zeros({}, g.dtype(), g.device());
    return Grads{sum_to(where(cd, g, zero), sa), sum_to(where(cd, zero, g), sb)};
  });
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  return where(mask, Tensor::scalar(value, x.dtype(), x.device()), x);
}

// ------------------------------------------------------------------ reductions
Tensor sum(const Tensor& x, std::vector<int64_t> dims_in, bool keepdim) {
  std::vector<int64_t> dims = norm_dims(x, dims_in, "sum");
  Tensor out = reduce_op(ReduceOp::Sum, x, dims, keepdim, "sum");
  Shape xs = x.shape(), ks = keepdim_shape(x.shape(), dims);
  return record(out, "sum", {x}, [xs, ks](const Tensor& g) { return Grads{g.reshape(ks).expand(xs).contiguous()}; });
}

Tensor mean(const Tensor& x, std::vector<int64_t> dims_in, bool keepdim) {
  std::vector<int64_t> dims = norm_dims(x, dims_in, "mean");
  Tensor out = reduce_op(ReduceOp::Mean, x, dims, keepdim, "mean");
  Shape xs = x.shape(), ks = keepdim_shape(x.shape(), dims);
  double count = double(shape_numel(xs)) / double(std::max<int64_t>(shape_numel(ks), 1));
  return record(out, "mean", {x}, [xs, ks, count](const Tensor& g) {
    return Grads{mul(g.reshape(ks), 1.0 / count).expand(xs).contiguous()};
  });
}

Tensor amax(const Tensor& x, std::vector<int64_t> dims_in, bool keepdim) {
  std::vector<int64_t> dims = norm_dims(x, dims_in, "amax");
  Tensor out = reduce_op(ReduceOp::Max, x, dims, keepdim, "amax");
  Shape ks = keepdim_shape(x.shape(), dims);
  Tensor xd = x.detach(), od = out.detach().reshape(ks);
  return record(out, "amax", {x}, [xd, od, ks, dims](const Tensor& g) {
    Tensor hit = eq(xd, od);  // ties share the gradient equally
    Tensor count = sum(hit, dims, true);
    return Grads{mul(hit, div(g.reshape(ks), count))};
  });
}

// ------------------------------------------------------------------ shape
Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  PE_CHECK(!xs.empty(), "concat: no inputs");
  const Tensor& x0 = xs[0];
  dim = wrap(dim, x0.dim(), "concat");
  Shape s = x0.shape();
  s[size_t(dim)] = 0;
  std::vector<int64_t> sizes;
  for (const Tensor& x : xs) {
    check_same("concat", x0, x);
    PE_CHECK(x.dim() == x0.dim(), "concat: ", x.str(), " and ", x0.str(), " differ in rank");
    for (int64_t i = 0; i < x.dim(); ++i)
      PE_CHECK(i == dim || x.size(i) == x0.size(i), "concat: ", x.str(), " and ", x0.str(), " differ outside dim ", dim);
    s[size_t(dim)] += x.size(dim);
    sizes.push_back(x.size(dim));
  }
  Tensor out = Tensor::empty(s, x0.dtype(), x0.device());
  int64_t at = 0;
  for (const Tensor& x : xs) {
    if (x.numel()) be(x0).copy_strided(x.detach(), out.detach().narrow(dim, at, x.size(dim)));
    at += x.size(dim);
  }
  return record(out, "concat", xs, [sizes, dim](const Tensor& g) {
    Grads gs;
    int64_t at = 0;
    for (int64_t n : sizes) {
      gs.push_back(g.narrow(dim, at, n));
      at += n;
    }
    return gs;
  });
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  dim = wrap(dim, x.dim(), "split");
  int64_t total = std::accumulate(sizes.begin(), sizes.end(), int64_t(0));
  PE_CHECK(total == x.size(dim), "split: sizes sum to ", total, " but dim ", dim, " of ", x.str(), " is ", x.size(dim));
  std::vector<Tensor> out;
  int64_t at = 0;
  for (int64_t n : sizes) {
    out.push_back(x.narrow(dim, at, n));
    at += n;
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  PE_CHECK(!xs.empty(), "stack: no inputs");
  std::vector<Tensor> u;
  int64_t d = dim < 0 ? dim + xs[0].dim() + 1 : dim;
  for (const Tensor& x : xs) u.push_back(x.unsqueeze(d));
  return concat(u, d);
}

// ------------------------------------------------------------------ matmul
namespace {
// A [batch, rows, cols] operand for Backend::matmul: its storage view and whether it is stored transposed.
struct GemmOperand {
  Tensor t;
  bool trans = false;
};

GemmOperand gemm_operand(const Tensor& x, const Shape& batch_shape) {
  int64_t r = x.size(-2), c = x.size(-1);
  Shape full = batch_shape;
  full.push_back(r);
  full.push_back(c);
  Tensor e = x.detach().expand(full);
  auto layout = [&](const Tensor& t, bool& trans) {
    const Shape& st = t.strides();
    size_t n = st.size();
    if ((st[n - 1] == 1 || c == 1) && (st[n - 2] == c || r == 1)) { trans = false; return true; }
    if ((st[n - 2] == 1 || r == 1) && (st[n - 1] == r || c == 1)) { trans = true; return true; }
    return false;
  };
  auto batch_stride = [&](const Tensor& t, int64_t& bs) {
    // All batch dims broadcast (stride 0), or densely packed matrices.
    const Shape& st = t.strides();
    size_t nb = batch_shape.size();
    bool all_zero = true;
    for (size_t i = 0; i < nb; ++i) all_zero &= (st[i] == 0 || batch_shape[i] == 1);
    if (all_zero) { bs = 0; return true; }
    int64_t expect = r * c;
    for (int64_t i = int64_t(nb) - 1; i >= 0; --i) {
      if (batch_shape[size_t(i)] != 1 && st[size_t(i)] != expect) return false;
      expect *= batch_shape[size_t(i)];
    }
    bs = r * c;
    return true;
  };
  bool trans = false;
  int64_t bs = 0;
  if (!layout(e, trans) || !batch_stride(e, bs)) {
    e = e.contiguous();
    trans = false;
    bs = r * c;
  }
  int64_t batch = shape_numel(batch_shape);
  // Stored orientation: [batch, r, c] row-major, or (trans) the row-major [batch, c, r] transpose.
  Shape sh3 = trans ? Shape{batch, c, r} : Shape{batch, r, c};
  return {make_view(e, sh3, {bs, sh3[2], 1}, e.offset()), trans};
}
}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_same("matmul", a, b);
  check_float("matmul", a);
  PE_CHECK(a.dim() >= 2 && b.dim() >= 2, "matmul: operands must be at least 2-d, got ", a.str(), " and ", b.str());
  int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  PE_CHECK(b.size(-2) == K, "matmul: inner dimensions differ: ", a.str(), " @ ", b.str());
  Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shape("matmul", ba, bb);
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor out = Tensor::empty(out_shape, a.dtype(), a.device());
  if (out.numel()) {
    GemmOperand A = gemm_operand(a, batch), B = gemm_operand(b, batch);
    int64_t nb = shape_numel(batch);
    be(a).matmul(A.t, B.t, out.detach().view({nb, M, N}), A.trans, B.trans, 1.0, 0.0);
  }
  Tensor ad = a.detach(), bd = b.detach();
  bool need_a = a.requires_grad(), need_b = b.requires_grad();
  return record(out, "matmul", {a, b}, [ad, bd, need_a, need_b](const Tensor& g) {
    Tensor ga = need_a ? sum_to(matmul(g, bd.transpose(-1, -2)), ad.shape()) : Tensor();
    Tensor gb = need_b ? sum_to(matmul(ad.transpose(-1, -2), g), bd.shape()) : Tensor();
    return Grads{ga, gb};
  });
}

static thread_local bool g_autocast_bf16 = false;
bool autocast_bf16() { return g_autocast_bf16; }
AutocastBf16::AutocastBf16(bool on) : prev_(g_autocast_bf16) { g_autocast_bf16 = on; }
AutocastBf16::~AutocastBf16() { g_autocast_bf16 = prev_; }

// y = x W^T + b as one op: one GEMM with the bias in its epilogue (Backend::matmul_bias), and a
// backward of two GEMMs and a column sum. Under bf16 autocast on CUDA (f32 x and W), the GEMMs read
// bf16 copies of x, W and the incoming gradient and write f32 (fp32 accumulation); y, dx and dW are f32.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_float("linear", x);
  check_same("linear", x, weight);
  PE_CHECK(weight.dim() == 2, "linear: weight must be [out, in], got ", weight.str());
  PE_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(1), "linear: input ", x.str(), " does not match weight ",
           weight.str());
  const int64_t in = weight.size(1), out_f = weight.size(0);
  if (bias.defined()) {
    check_same("linear", x, bias);
    PE_CHECK(bias.shape() == Shape{out_f}, "linear: bias ", bias.str(), " does not match weight ", weight.str());
  }
  Shape out_shape = x.shape();
  out_shape.back() = out_f;
  const int64_t rows = in ? x.numel() / in : shape_numel(Shape(x.shape().begin(), x.shape().end() - 1));
  const bool ac = autocast_bf16() && x.device().is_cuda() && x.dtype() == DType::F32;
  const DType gemm_t = ac ? DType::BF16 : x.dtype();
  Tensor xg = x.detach().reshape({rows, in}).to(gemm_t).contiguous();
  Tensor wg = weight.detach().to(gemm_t).contiguous();
  Tensor bd = bias.defined() ? bias.detach().contiguous() : Tensor();
  Tensor y = Tensor::empty({rows, out_f}, x.dtype(), x.device());
  if (y.numel()) {
    Backend& b = be(x);
    Tensor y3 = y.view({1, rows, out_f}), x3 = xg.view({1, rows, in}), w3 = wg.view({1, out_f, in});
    if (bd.defined()) b.matmul_bias(x3, w3, bd, y3, false, true);
    else b.matmul(x3, w3, y3, false, true, 1.0, 0.0);
  }
  y = y.view(out_shape);
  bool need_x = x.requires_grad(), need_w = weight.requires_grad(), need_b = bias.defined() && bias.requires_grad();
  Shape x_shape = x.shape();
  DType xt = x.dtype(), wt = weight.dtype();
  return record(y, "linear", {x, weight, bias},
                [xg, wg, rows, in, out_f, x_shape, xt, wt, gemm_t, need_x, need_w, need_b](const Tensor& gout) {
                  Tensor g2 = gout.reshape({rows, out_f}).contiguous();
                  Tensor gg = g2.to(gemm_t).contiguous();
                  Backend& b = be(g2);
                  Tensor gx, gw, gb;
                  if (need_x) {
                    gx = Tensor::empty({rows, in}, xt, g2.device());
                    if (gx.numel()) b.matmul(gg.view({1, rows, out_f}), wg.view({1, out_f, in}), gx.view({1, rows, in}),
                                             false, false, 1.0, 0.0);
                    gx = gx.view(x_shape);
                  }
                  if (need_w) {
                    gw = Tensor::empty({out_f, in}, wt, g2.device());
                    if (gw.numel()) b.matmul(gg.view({1, rows, out_f}), xg.view({1, rows, in}),
                                             gw.view({1, out_f, in}), true, false, 1.0, 0.0);
                  }
                  if (need_b) gb = sum(g2, {0});
                  return Grads{gx, gw, gb};
                });
}

// act(x W^T + bias) + residual through Backend::linear_epilogue, for linear_act / linear_residual when no
// graph is recorded: x [..., in] -> [..., out]; bias and residual may be undefined.
static Tensor linear_epilogue_nograd(const char* op, const Tensor& x, const Tensor& weight, const Tensor& bias,
                                     bool has_act, UnaryOp act, const Tensor& residual) {
  check_float(op, x);
  check_same(op, x, weight);
  PE_CHECK(weight.dim() == 2 && x.dim() >= 1 && x.size(-1) == weight.size(1), op, ": input ", x.str(),
           " does not match weight ", weight.str());
  const int64_t in = weight.size(1), out_f = weight.size(0);
  const int64_t rows = in ? x.numel() / in : shape_numel(Shape(x.shape().begin(), x.shape().end() - 1));
  Shape out_shape = x.shape();
  out_shape.back() = out_f;
  Tensor bd, res;
  if (bias.defined()) {
    check_same(op, x, bias);
    PE_CHECK(bias.shape() == Shape{out_f}, op, ": bias ", bias.str(), " does not match weight ", weight.str());
    bd = bias.detach().contiguous();
  }
  if (residual.defined()) {
    check_same(op, x, residual);
    PE_CHECK(residual.shape() == out_shape, op, ": residual ", residual.str(), " is not ", shape_str(out_shape));
    res = residual.detach().reshape({rows, out_f}).contiguous();
  }
  Tensor y = Tensor::empty({rows, out_f}, x.dtype(), x.device());
  if (y.numel())
    be(x).linear_epilogue(x.detach().reshape({rows, in}).contiguous(), weight.detach().contiguous(), bd, has_act, act,
                          res, Tensor(), y);
  return y.view(out_shape);
}

Tensor linear_act(const Tensor& x, const Tensor& weight, const Tensor& bias, UnaryOp act) {
  PE_CHECK(act == UnaryOp::Gelu || act == UnaryOp::Relu, "linear_act: the activation must be gelu or relu, got ",
           unary_name(act));
  if (!bias.defined()) return unary_op(act, linear(x, weight, Tensor()), 0);
  check_same("linear_act", x, bias);
  PE_CHECK(bias.shape() == Shape{weight.size(0)}, "linear_act: bias ", bias.str(), " does not match weight ",
           weight.str());
  const Tensor bd = bias.detach().contiguous();
  // No graph: product, bias and activation in one pass where the backend has it.
  if (!any_requires_grad({x, weight, bias}) && !autocast_bf16())
    return linear_epilogue_nograd("linear_act", x, weight, bias, true, act, Tensor());
  Tensor y = linear(x, weight, Tensor());  // a fresh buffer: nothing else reads its values
  Tensor out = Tensor::empty(y.shape(), y.dtype(), y.device());
  const Tensor pre = y.detach();  // y's buffer becomes y + bias, which the backward reads
  if (y.numel()) be(y).bias_act(pre, bd, act, pre, out);
  const Tensor od = out.detach();
  const int64_t n = bias.numel();
  const bool need_b = bias.requires_grad();
  return record(out, "linear_act", {y, bias}, [act, pre, od, n, need_b](const Tensor& g) {
    Tensor gp = Tensor::empty(pre.shape(), pre.dtype(), pre.device());
    if (gp.numel()) be(pre).unary_backward(act, pre, od, g.contiguous(), gp, 0.0);
    Tensor gb = need_b ? sum(gp.reshape({gp.numel() / n, n}), {0}) : Tensor();
    return Grads{gp, gb};
  });
}

Tensor linear_residual(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& residual) {
  if (any_requires_grad({x, weight, bias, residual}) || autocast_bf16()) return add(residual, linear(x, weight, bias));
  return linear_epilogue_nograd("linear_residual", x, weight, bias, false, UnaryOp::Gelu, residual);
}

// ------------------------------------------------------------------ softmax, norms
namespace {
Tensor softmax_impl(const Tensor& x, int64_t dim, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  check_float(name, x);
  dim = wrap(dim, x.dim(), name);
  if (dim != x.dim() - 1) {
    Tensor t = x.transpose(dim, -1);
    return softmax_impl(t, -1, log).transpose(dim, -1);
  }
  Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (y.numel()) be(x).softmax(xc, y, log);
  Tensor yd = y.detach();
  return record(y, name, {x}, [yd, log](const Tensor& g) {
    Tensor gx = Tensor::empty(yd.shape(), yd.dtype(), yd.device());
    if (gx.numel()) be(yd).softmax_backward(yd, g.contiguous(), gx, log);
    return Grads{gx};
  });
}
}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, true); }

namespace {
void check_ln_params(const char* op, const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_float(op, x);
  int64_t n = x.size(-1);
  if (weight.defined()) {
    check_same(op, x, weight);
    PE_CHECK(weight.shape() == Shape{n}, op, ": weight ", weight.str(), " does not match ", x.str());
  }
  if (bias.defined()) {
    check_same(op, x, bias);
    PE_CHECK(bias.shape() == Shape{n}, op, ": bias ", bias.str(), " does not match ", x.str());
  }
}

// d/d(normalised input), d/dweight, d/dbias of layer_norm(xd) given the saved statistics.
Grads ln_grads(const Tensor& xd, const Tensor& wd, const Tensor& mu, const Tensor& rs, bool need_w, bool need_b,
               const Tensor& g) {
  Tensor gx = Tensor::empty(xd.shape(), xd.dtype(), xd.device());
  Tensor gw = need_w ? Tensor::empty(wd.shape(), xd.dtype(), xd.device()) : Tensor();
  Tensor gb = need_b ? Tensor::empty({xd.size(-1)}, xd.dtype(), xd.device()) : Tensor();
  if (gx.numel()) be(xd).layer_norm_backward(xd, wd, mu, rs, g.contiguous(), gx, gw, gb);
  else {
    if (gw.defined()) be(xd).fill(gw, 0);
    if (gb.defined()) be(xd).fill(gb, 0);
  }
  return Grads{gx, gw, gb};
}
}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  check_ln_params("layer_norm", x, weight, bias);
  int64_t n = x.size(-1);
  Tensor xc = x.contiguous();
  int64_t rows = n ? x.numel() / n : 0;
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  // Statistics in f32 (f64 for f64 inputs), also for bf16 activations.
  DType stat = x.dtype() == DType::F64 ? DType::F64 : DType::F32;
  Tensor mu = Tensor::empty({rows}, stat, x.device()), rs = Tensor::empty({rows}, stat, x.device());
  Tensor wd = weight.defined() ? weight.contiguous().detach() : Tensor();
  Tensor bd = bias.defined() ? bias.contiguous().detach() : Tensor();
  if (y.numel()) be(x).layer_norm(xc, wd, bd, eps, y, mu, rs);
  Tensor xd = xc.detach();
  bool need_w = weight.defined() && weight.requires_grad(), need_b = bias.defined() && bias.requires_grad();
  return record(y, "layer_norm", {x, weight, bias}, [xd, wd, mu, rs, need_w, need_b](const Tensor& g) {
    return ln_grads(xd, wd, mu, rs, need_w, need_b, g);
  });
}

Tensor add_layer_norm(const Tensor& x, const Tensor& r, const Tensor& weight, const Tensor& bias, double eps) {
  check_ln_params("add_layer_norm", x, weight, bias);
  check_same("add_layer_norm", x, r);
  PE_CHECK(x.shape() == r.shape(), "add_layer_norm: residual ", r.str(), " does not match ", x.str());
  int64_t n = x.size(-1);
  int64_t rows = n ? x.numel() / n : 0;
  Tensor s = Tensor::empty(x.shape(), x.dtype(), x.device()), y = Tensor::empty(x.shape(), x.dtype(), x.device());
  DType stat = x.dtype() == DType::F64 ? DType::F64 : DType::F32;
  Tensor mu = Tensor::empty({rows}, stat, x.device()), rs = Tensor::empty({rows}, stat, x.device());
  Tensor wd = weight.defined() ? weight.contiguous().detach() : Tensor();
  Tensor bd = bias.defined() ? bias.contiguous().detach() : Tensor();
  if (y.numel()) be(x).add_layer_norm(x.contiguous(), r.contiguous(), wd, bd, eps, s, y, mu, rs);
  bool need_w = weight.defined() && weight.requires_grad(), need_b = bias.defined() && bias.requires_grad();
  return record(y, "add_layer_norm", {x, r, weight, bias}, [s, wd, mu, rs, need_w, need_b](const Tensor& g) {
    Grads ln = ln_grads(s, wd, mu, rs, need_w, need_b, g);
    return Grads{ln[0], ln[0], ln[1], ln[2]};  // d/dx = d/dr = d/ds
  });
}

Tensor l2_normalize(const Tensor& x, int64_t dim, double eps) {
  Tensor norm = sqrt(sum(square(x), {dim}, true));
  return div(x, clamp_min(norm, eps));
}

// ------------------------------------------------------------------ indexing
namespace {
void check_index(const char* op, const Tensor& idx) {
  PE_CHECK(idx.defined() && idx.dtype() == DType::I64, op, ": index must be i64, got ", idx.str());
}
// Views x as [outer, x.size(dim), inner].
Tensor as_3d(const Tensor& x, int64_t dim) {
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < dim; ++i) outer *= x.size(i);
  for (int64_t i = dim + 1; i < x.dim(); ++i) inner *= x.size(i);
  return x.detach().contiguous().view({outer, x.size(dim), inner});
}
}  // namespace

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& idx_in) {
  check_index("index_select", idx_in);
  PE_CHECK(idx_in.dim() == 1, "index_select: index must be 1-d, got ", idx_in.str());
  PE_CHECK(idx_in.device() == x.device(), "index_select: index ", idx_in.str(), " and ", x.str(), " on different devices");
  dim = wrap(dim, x.dim(), "index_select");
  Tensor idx = idx_in.contiguous();
  Shape s = x.shape();
  s[size_t(dim)] = idx.numel();
  Tensor out = Tensor::empty(s, x.dtype(), x.device());
  if (out.numel() || x.numel()) {
    Tensor x3 = as_3d(x, dim);
    be(x).index_select(x3, idx, out.detach().view({x3.size(0), idx.numel(), x3.size(2)}));
  }
  Shape xs = x.shape();
  Tensor id = idx.detach();
  return record(out, "index_select", {x}, [xs, dim, id](const Tensor& g) {
    return Grads{index_add(Tensor::zeros(xs, g.dtype(), g.device()), dim, id, g)};
  });
}

Tensor index_add(const Tensor& dst, int64_t dim, const Tensor& idx_in, const Tensor& src) {
  check_same("index_add", dst, src);
  check_float("index_add", dst);
  check_index("index_add", idx_in);
  dim = wrap(dim, dst.dim(), "index_add");
  Tensor idx = idx_in.contiguous();
  Shape expect = dst.shape();
  expect[size_t(dim)] = idx.numel();
  PE_CHECK(src.shape() == expect, "index_add: source ", src.str(), " does not match ", shape_str(expect));
  Tensor out = dst.detach().clone();
  if (src.numel()) {
    Tensor o3 = out.view({as_3d(dst, dim).size(0), dst.size(dim), -1});
    Tensor s3 = as_3d(src, dim);
    be(dst).index_add(o3, idx, s3);
  }
  Tensor id = idx.detach();
  return record(out, "index_add", {dst, src}, [dim, id](const Tensor& g) {
    return Grads{g, index_select(g, dim, id)};
  });
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& idx) {
  check_index("gather", idx);
  dim = wrap(dim, x.dim(), "gather");
  PE_CHECK(idx.dim() == x.dim(), "gather: index ", idx.str(), " and input ", x.str(), " differ in rank");
  for (int64_t i = 0; i < x.dim(); ++i)
    PE_CHECK(i == dim || idx.size(i) == x.size(i), "gather: index ", idx.str(), " and input ", x.str(),
             " differ outside dim ", dim);
  Tensor xt = x.detach().transpose(dim, -1).contiguous();
  Tensor it = idx.transpose(dim, -1).contiguous();
  int64_t k = idx.size(dim);
  Tensor outt = Tensor::empty(it.shape(), x.dtype(), x.device());
  if (outt.numel()) be(x).gather_rows(xt.view({-1, x.size(dim)}), it.view({-1, k}), outt.view({-1, k}));
  Tensor out = outt.transpose(dim, -1).contiguous();
  Shape xs = x.shape();
  Tensor id = idx.detach();
  return record(out, "gather", {x}, [xs, dim, id](const Tensor& g) { return Grads{scatter_add(xs, dim, id, g)}; });
}

Tensor scatter_add(const Shape& shape, int64_t dim, const Tensor& idx, const Tensor& src) {
  check_index("scatter_add", idx);
  check_float("scatter_add", src);
  dim = wrap(dim, int64_t(shape.size()), "scatter_add");
  PE_CHECK(idx.shape() == src.shape(), "scatter_add: index ", idx.str(), " and source ", src.str(), " differ");
  Shape tshape = shape;
  std::swap(tshape[size_t(dim)], tshape.back());
  Tensor outt = Tensor::zeros(tshape, src.dtype(), src.device());
  Tensor it = idx.transpose(dim, -1).contiguous(), st = src.detach().transpose(dim, -1).contiguous();
  int64_t k = idx.size(dim);
  if (st.numel()) be(src).scatter_add_rows(outt.view({-1, shape[size_t(dim)]}), it.view({-1, k}), st.view({-1, k}));
  Tensor out = outt.transpose(dim, -1).contiguous();
  Tensor id = idx.detach();
  return record(out, "scatter_add", {src}, [dim, id](const Tensor& g) { return Grads{gather(g, dim, id)}; });
}

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  PE_CHECK(weight.dim() == 2, "embedding: weight must be [vocab, dim], got ", weight.str());
  check_index("embedding", ids);
  Tensor rows = index_select(weight, 0, ids.reshape({-1}));
  Shape s = ids.shape();
  s.push_back(weight.size(1));
  return rows.view(s);
}

// ------------------------------------------------------------------ model pieces
Tensor rotary(const Tensor& x, double base, const Tensor& positions) {
  check_float("rotary", x);
  PE_CHECK(x.size(-1) % 2 == 0 && (x.dim() == 4 || (x.dim() == 3 && positions.defined())),
           "rotary: expected [batch, len, heads, even dim] (or packed [tokens, heads, even dim] with positions), got ",
           x.str());
  Tensor pos;
  if (positions.defined()) {
    const int64_t rows = x.dim() == 4 ? x.size(0) * x.size(1) : x.size(0);
    PE_CHECK(positions.dtype() == DType::I64 && positions.numel() == rows, "rotary: positions ", positions.str(),
             " must be i64 with one entry per token (", rows, ") of ", x.str());
    pos = positions.to(x.device()).contiguous().reshape({rows});
  }
  // The backend takes [batch, len, heads, dim]; a packed tensor is one batch row of all its tokens.
  const Shape s4 = x.dim() == 4 ? x.shape() : Shape{1, x.size(0), x.size(1), x.size(2)};
  Tensor xc = x.contiguous().view(s4);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (out.numel()) be(x).rotary(xc, out.view(s4), base, false, pos);
  return record(out, "rotary", {x}, [base, pos, s4](const Tensor& g) {
    Tensor gc = g.contiguous().view(s4);
    Tensor gx = Tensor::empty(g.shape(), g.dtype(), g.device());
    if (gx.numel()) be(g).rotary(gc, gx.view(s4), base, true, pos);
    return Grads{gx};
  });
}

Tensor dropout(const Tensor& x, double p, bool train, Generator& gen) {
  PE_CHECK(p >= 0.0 && p < 1.0, "dropout: probability ", p, " outside [0, 1)");
  if (!train || p == 0.0) return x;
  Tensor keep = bernoulli(x.shape(), 1.0 - p, gen, x.dtype(), x.device());
  return mul(x, mul(keep, 1.0 / (1.0 - p)));
}

Tensor batch_norm(const Tensor& x, const Tensor& row_mask, const Tensor& weight, const Tensor& bias,
                  const Tensor& running_mean, const Tensor& running_var, bool train, double momentum, double eps) {
  check_float("batch_norm", x);
  PE_CHECK(x.dim() == 2, "batch_norm: expected [rows, channels], got ", x.str());
  int64_t C = x.size(1);
  Tensor mu, var;
  if (train) {
    Tensor xs = x;
    if (row_mask.defined()) {
      PE_CHECK(row_mask.shape() == Shape{x.size(0)}, "batch_norm: row mask ", row_mask.str(), " does not match ", x.str());
      std::vector<int64_t> rows;
      std::vector<double> m = row_mask.to_double_vector();
      for (size_t i = 0; i < m.size(); ++i)
        if (m[i] != 0.0) rows.push_back(int64_t(i));
      xs = index_select(x, 0, Tensor::from_vector(rows, {int64_t(rows.size())}, x.device()));
    }
    int64_t n = xs.size(0);
    PE_CHECK(n > 0, "batch_norm: no real rows to take statistics from");
    mu = mean(xs, {0}, true);
    var = mean(square(sub(xs, mu)), {0}, true);
    if (running_mean.defined()) {
      NoGradGuard ng;
      double unbias = n > 1 ? double(n) / double(n - 1) : 1.0;
      Tensor nm = add(mul(running_mean, 1.0 - momentum), mul(mu.detach().view({C}), momentum));
      Tensor nv = add(mul(running_var, 1.0 - momentum), mul(var.detach().view({C}), momentum * unbias));
      be(x).copy_strided(nm, running_mean);
      be(x).copy_strided(nv, running_var);
    }
  } else {
    PE_CHECK(running_mean.defined() && running_var.defined(), "batch_norm: eval mode needs running statistics");
    mu = running_mean.view({1, C});
    var = running_var.view({1, C});
  }
  Tensor y = mul(sub(x, mu), rsqrt(add(var, eps)));
  if (weight.defined()) y = mul(y, weight);
  if (bias.defined()) y = add(y, bias);
  return y;
}

// ------------------------------------------------------------------ losses
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  PE_CHECK(logits.dim() == 2, "cross_entropy: logits must be [rows, classes], got ", logits.str());
  check_index("cross_entropy", targets);
  PE_CHECK(targets.shape() == Shape{logits.size(0)}, "cross_entropy: targets ", targets.str(), " do not match ",
           logits.str());
  std::vector<int64_t> t = targets.to_int_vector();
  std::vector<double> valid(t.size());
  int64_t count = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] == ignore_index) { t[i] = 0; continue; }
    PE_CHECK(t[i] >= 0 && t[i] < logits.size(1), "cross_entropy: target ", t[i], " in row ", i,
             " outside [0, ", logits.size(1), ")");
    valid[i] = 1.0;
    ++count;
  }
  PE_CHECK(count > 0, "cross_entropy: every target is ignore_index (", ignore_index, ")");
  Tensor lsm = log_softmax(logits, -1);
  Tensor idx = Tensor::from_vector(t, {int64_t(t.size()), 1}, logits.device());
  Tensor picked = gather(lsm, 1, idx).view({-1});
  Tensor w = Tensor::from_vector(valid, {int64_t(valid.size())}).to(logits.dtype()).to(logits.device());
  return mul(sum(mul(picked, w)), -1.0 / double(count));
}

Tensor mse_loss(const Tensor& a, const Tensor& b) { return mean(square(sub(a, b))); }

// ------------------------------------------------------------------ random
static Tensor random_tensor(const Shape& shape, RandomKind kind, double a, double b, Generator& gen, DType dtype,
                            Device device) {
  Tensor t = Tensor::empty(shape, dtype, device);
  uint64_t off = gen.advance(uint64_t(t.numel()));
  if (t.numel()) backend_for(device).random(t, kind, a, b, gen.seed(), off);
  return t;
}
Tensor rand(const Shape& shape, Generator& gen, DType dtype, Device device) {
  return random_tensor(shape, RandomKind::Uniform, 0.0, 1.0, gen, dtype, device);
}
Tensor randn(const Shape& shape, Generator& gen, DType dtype, Device device, double mean_, double std_) {
  return random_tensor(shape, RandomKind::Normal, mean_, std_, gen, dtype, device);
}
Tensor bernoulli(const Shape& shape, double p, Generator& gen, DType dtype, Device device) {
  return random_tensor(shape, RandomKind::Bernoulli, p, 0.0, gen, dtype, device);
}

}  // namespace pe
