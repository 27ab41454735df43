#include <Eigen/Dense>
#include <unsupported/Eigen/SpecialFunctions>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_common.h"

namespace pe::cpu {

namespace {
constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

template <typename T>
inline T unary_fn(UnaryOp op, T x, T s) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Exp: return std::exp(x);
    case UnaryOp::Log: return std::log(x);
    case UnaryOp::Sqrt: return std::sqrt(x);
    case UnaryOp::Rsqrt: return T(1) / std::sqrt(x);
    case UnaryOp::Tanh: return std::tanh(x);
    case UnaryOp::Sigmoid: return T(1) / (T(1) + std::exp(-x));
    case UnaryOp::Relu: return x > T(0) ? x : T(0);
    case UnaryOp::Gelu: return T(0.5) * x * (T(1) + std::erf(x * T(kInvSqrt2)));
    case UnaryOp::Abs: return std::abs(x);
    case UnaryOp::Square: return x * x;
    case UnaryOp::PowScalar: return std::pow(x, s);
    case UnaryOp::AddScalar: return x + s;
    case UnaryOp::MulScalar: return x * s;
    case UnaryOp::ClampMin: return x >= s ? x : s;
    case UnaryOp::Recip: return T(1) / x;
  }
  return x;
}

// d f / d x given x and y = f(x).
template <typename T>
inline T unary_grad(UnaryOp op, T x, T y, T s) {
  switch (op) {
    case UnaryOp::Neg: return T(-1);
    case UnaryOp::Exp: return y;
    case UnaryOp::Log: return T(1) / x;
    case UnaryOp::Sqrt: return T(0.5) / y;
    case UnaryOp::Rsqrt: return T(-0.5) * y * y * y;
    case UnaryOp::Tanh: return T(1) - y * y;
    case UnaryOp::Sigmoid: return y * (T(1) - y);
    case UnaryOp::Relu: return x > T(0) ? T(1) : T(0);
    case UnaryOp::Gelu: {
      T cdf = T(0.5) * (T(1) + std::erf(x * T(kInvSqrt2)));
      return cdf + x * T(kInvSqrt2Pi) * std::exp(T(-0.5) * x * x);
    }
    case UnaryOp::Abs: return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
    case UnaryOp::Square: return T(2) * x;
    case UnaryOp::PowScalar: return s * std::pow(x, s - T(1));
    case UnaryOp::AddScalar: return T(1);
    case UnaryOp::MulScalar: return s;
    case UnaryOp::ClampMin: return x >= s ? T(1) : T(0);
    case UnaryOp::Recip: return -y * y;
  }
  return T(0);
}

template <typename T>
inline T binary_fn(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Div: return a / b;
    case BinaryOp::Max: return a >= b ? a : b;
    case BinaryOp::Min: return a <= b ? a : b;
    case BinaryOp::Eq: return a == b ? T(1) : T(0);
    case BinaryOp::Gt: return a > b ? T(1) : T(0);
    case BinaryOp::Lt: return a < b ? T(1) : T(0);
  }
  return a;
}
}  // namespace

// Calls run(f) with f the scalar function of op, so the switch is outside the element loop.
template <typename T, typename Run>
void with_unary(UnaryOp op, T s, Run&& run) {
  switch (op) {
    case UnaryOp::Neg: return run([](T x) { return -x; });
    case UnaryOp::Exp: return run([](T x) { return std::exp(x); });
    case UnaryOp::AddScalar: return run([s](T x) { return x + s; });
    case UnaryOp::MulScalar: return run([s](T x) { return x * s; });
    case UnaryOp::Relu: return run([](T x) { return x > T(0) ? x : T(0); });
    case UnaryOp::Square: return run([](T x) { return x * x; });
    default: return run([op, s](T x) { return unary_fn(op, x, s); });
  }
}

// float32 fast paths with Eigen's vectorised exp and erf (a few ulp; AVX-512 packets in a native
// build): GELU and exp showed up as scalar libm calls in the profiles (erff ~7 % of an embedding
// run). float64 keeps libm: it is the reference. Chunks of kVecChunk elements per OpenMP iteration.
constexpr int64_t kVecChunk = 4096;
using ArrF = Eigen::Array<float, Eigen::Dynamic, 1>;
using MapF = Eigen::Map<ArrF>;
using CMapF = Eigen::Map<const ArrF>;

static bool unary_f32_vectorised(UnaryOp op, const float* x, float* y, int64_t n) {
  if (op != UnaryOp::Gelu && op != UnaryOp::Exp) return false;
  int64_t chunks = (n + kVecChunk - 1) / kVecChunk;
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t c = 0; c < chunks; ++c) {
    int64_t i0 = c * kVecChunk, len = std::min(kVecChunk, n - i0);
    CMapF xv(x + i0, len);
    MapF yv(y + i0, len);
    if (op == UnaryOp::Exp) yv = xv.exp();
    else yv = 0.5f * xv * (1.0f + (xv * float(kInvSqrt2)).erf());
  }
  return true;
}

static bool unary_backward_f32_vectorised(UnaryOp op, const float* x, const float* g, float* gx, int64_t n) {
  if (op != UnaryOp::Gelu) return false;
  int64_t chunks = (n + kVecChunk - 1) / kVecChunk;
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t c = 0; c < chunks; ++c) {
    int64_t i0 = c * kVecChunk, len = std::min(kVecChunk, n - i0);
    CMapF xv(x + i0, len), gv(g + i0, len);
    MapF out(gx + i0, len);
    // d/dx x Phi(x) = Phi(x) + x phi(x)
    out = gv * (0.5f * (1.0f + (xv * float(kInvSqrt2)).erf()) + xv * float(kInvSqrt2Pi) * (-0.5f * xv.square()).exp());
  }
  return true;
}

// f32 GELU/ReLU after a linear layer: bias add and activation in one pass per row (in L1), the same
// expressions as the separate binary add and unary_f32_vectorised / the scalar ReLU, so the values are
// those of the unfused ops.
void CpuBackend::bias_act(const Tensor& y, const Tensor& bias, UnaryOp act, const Tensor& pre, const Tensor& out) {
  const int64_t n = bias.numel(), rows = n ? y.numel() / n : 0;
  if (y.dtype() != DType::F32 || (act != UnaryOp::Gelu && act != UnaryOp::Relu) || rows * n != y.numel() ||
      !y.is_contiguous() || !bias.is_contiguous() || !out.is_contiguous() || (pre.defined() && !pre.is_contiguous()))
    return Backend::bias_act(y, bias, act, pre, out);
  PE_CHECK(out.numel() == y.numel() && (!pre.defined() || pre.numel() == y.numel()), "bias_act: y ", y.str(), ", out ",
           out.str(), " do not match");
  const float* yp = y.data<float>();
  const float* bp = bias.data<float>();
  float* pp = pre.defined() ? pre.data<float>() : nullptr;
  float* op_ = out.data<float>();
#pragma omp parallel for schedule(static) if (y.numel() > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    CMapF yr(yp + r * n, n), b(bp, n);
    MapF d(pp ? pp + r * n : op_ + r * n, n);
    d = yr + b;
    MapF o(op_ + r * n, n);
    if (act == UnaryOp::Gelu) o = 0.5f * d * (1.0f + (d * float(kInvSqrt2)).erf());
    else o = (d > 0.0f).select(d, 0.0f);
  }
}

void CpuBackend::unary(UnaryOp op, const Tensor& x, const Tensor& out, double s) {
  if (x.dtype() == DType::F32 && unary_f32_vectorised(op, x.data<float>(), out.data<float>(), x.numel())) return;
  dispatch_float(x.dtype(), unary_name(op), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    T* op_ = out.data<T>();
    int64_t n = x.numel();
    with_unary<T>(op, T(s), [&](auto f) {
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
      for (int64_t i = 0; i < n; ++i) op_[i] = f(xp[i]);
    });
  });
}

void CpuBackend::unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& gout, const Tensor& gx,
                                double s) {
  if (x.dtype() == DType::F32 &&
      unary_backward_f32_vectorised(op, x.data<float>(), gout.data<float>(), gx.data<float>(), x.numel()))
    return;
  dispatch_float(x.dtype(), unary_name(op), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    const T* yp = y.defined() ? y.data<T>() : nullptr;
    const T* gp = gout.data<T>();
    T* gxp = gx.data<T>();
    int64_t n = x.numel();
    T sv = T(s);
    // The common ops whose derivative needs only x: a loop without the switch inside, so it vectorises
    // (the same products as below).
    auto simple = [&](auto dfdx) {
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
      for (int64_t i = 0; i < n; ++i) gxp[i] = gp[i] * dfdx(xp[i]);
    };
    switch (op) {
      case UnaryOp::Relu: return simple([](T x) { return x > T(0) ? T(1) : T(0); });
      case UnaryOp::MulScalar: return simple([sv](T) { return sv; });
      case UnaryOp::AddScalar: return simple([](T) { return T(1); });
      case UnaryOp::Neg: return simple([](T) { return T(-1); });
      default: break;
    }
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
      T yv = yp ? yp[i] : unary_fn(op, xp[i], sv);
      gxp[i] = gp[i] * unary_grad(op, xp[i], yv, sv);
    }
  });
}

template <typename T, typename Run>
void with_binary(BinaryOp op, Run&& run) {
  switch (op) {
    case BinaryOp::Add: return run([](T a, T b) { return a + b; });
    case BinaryOp::Sub: return run([](T a, T b) { return a - b; });
    case BinaryOp::Mul: return run([](T a, T b) { return a * b; });
    case BinaryOp::Div: return run([](T a, T b) { return a / b; });
    default: return run([op](T a, T b) { return binary_fn(op, a, b); });
  }
}

void CpuBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  dispatch_float(out.dtype(), binary_name(op), [&](auto tag) {
    using T = decltype(tag);
    const T* ap = a.data<T>();
    const T* bp = b.data<T>();
    T* op_ = out.data<T>();
    with_binary<T>(op, [&](auto f) {
      if (a.is_contiguous() && b.is_contiguous() && a.shape() == out.shape() && b.shape() == out.shape()) {
        int64_t n = out.numel();
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
        for (int64_t i = 0; i < n; ++i) op_[i] = f(ap[i], bp[i]);
        return;
      }
      // Rows of the last dim; within a row each operand steps by 0 or its stride.
      const Shape& shape = out.shape();
      int64_t nd = int64_t(shape.size());
      int64_t inner = nd ? shape[size_t(nd - 1)] : 1;
      int64_t total = out.numel();
      if (total == 0) return;
      int64_t rows = total / inner;
      int64_t sa = nd ? a.strides()[size_t(nd - 1)] : 0, sb = nd ? b.strides()[size_t(nd - 1)] : 0;
#pragma omp parallel for schedule(static) if (total > kParallelGrain)
      for (int64_t r = 0; r < rows; ++r) {
        int64_t oa = 0, ob = 0, rem = r;
        for (int64_t d = nd - 2; d >= 0; --d) {
          int64_t idx = rem % shape[size_t(d)];
          rem /= shape[size_t(d)];
          oa += idx * a.strides()[size_t(d)];
          ob += idx * b.strides()[size_t(d)];
        }
        const T* ar = ap + oa;
        const T* br = bp + ob;
        T* orow = op_ + r * inner;
        if (sa == 1 && sb == 1) for (int64_t i = 0; i < inner; ++i) orow[i] = f(ar[i], br[i]);
        else if (sa == 1 && sb == 0) for (int64_t i = 0; i < inner; ++i) orow[i] = f(ar[i], br[0]);
        else if (sa == 0 && sb == 1) for (int64_t i = 0; i < inner; ++i) orow[i] = f(ar[0], br[i]);
        else for (int64_t i = 0; i < inner; ++i) orow[i] = f(ar[i * sa], br[i * sb]);
      }
    });
  });
}

void CpuBackend::where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  dispatch_all(cond.dtype(), [&](auto ctag) {
    using C = decltype(ctag);
    dispatch_float(out.dtype(), "where", [&](auto tag) {
      using T = decltype(tag);
      const C* cp = cond.data<C>();
      const T* ap = a.data<T>();
      const T* bp = b.data<T>();
      T* op_ = out.data<T>();
      const Shape* st[4] = {&cond.strides(), &a.strides(), &b.strides(), &out.strides()};
      for_each_strided<4>(out.shape(), st, [&](int64_t oc, int64_t oa, int64_t ob, int64_t oo) {
        op_[oo] = to_f64(cp[oc]) != 0.0 ? ap[oa] : bp[ob];
      });
    });
  });
}

}  // namespace pe::cpu
