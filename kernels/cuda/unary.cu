// unary and unary_backward, one kernel per op (in its own file: the 16 ops x 3 dtypes x packed and
// scalar variants are the slowest part of the build). Formulas of kernels/cpu/elementwise.cpp, in
// fp32 for f32/bf16 and fp64 for f64.
#include <type_traits>

#include "kernels/cuda/cuda_backend.cuh"
#include "kernels/cuda/elementwise.cuh"

namespace pe::cuda {

namespace {

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

template <UnaryOp OP, typename A>
__device__ __forceinline__ A unary_fn(A x, A s) {
  if constexpr (OP == UnaryOp::Neg) return -x;
  else if constexpr (OP == UnaryOp::Exp) return m_exp(x);
  else if constexpr (OP == UnaryOp::Log) return m_log(x);
  else if constexpr (OP == UnaryOp::Sqrt) return m_sqrt(x);
  else if constexpr (OP == UnaryOp::Rsqrt) return A(1) / m_sqrt(x);
  else if constexpr (OP == UnaryOp::Tanh) return m_tanh(x);
  else if constexpr (OP == UnaryOp::Sigmoid) return A(1) / (A(1) + m_exp(-x));
  else if constexpr (OP == UnaryOp::Relu) return x > A(0) ? x : A(0);
  else if constexpr (OP == UnaryOp::Gelu) return A(0.5) * x * (A(1) + m_erf(x * A(kInvSqrt2)));
  else if constexpr (OP == UnaryOp::Abs) return m_abs(x);
  else if constexpr (OP == UnaryOp::Square) return x * x;
  else if constexpr (OP == UnaryOp::PowScalar) return m_pow(x, s);
  else if constexpr (OP == UnaryOp::AddScalar) return x + s;
  else if constexpr (OP == UnaryOp::MulScalar) return x * s;
  else if constexpr (OP == UnaryOp::ClampMin) return x >= s ? x : s;
  else return A(1) / x;  // Recip
}

// d f / d x given x and y = f(x).
template <UnaryOp OP, typename A>
__device__ __forceinline__ A unary_grad(A x, A y, A s) {
  if constexpr (OP == UnaryOp::Neg) return A(-1);
  else if constexpr (OP == UnaryOp::Exp) return y;
  else if constexpr (OP == UnaryOp::Log) return A(1) / x;
  else if constexpr (OP == UnaryOp::Sqrt) return A(0.5) / y;
  else if constexpr (OP == UnaryOp::Rsqrt) return A(-0.5) * y * y * y;
  else if constexpr (OP == UnaryOp::Tanh) return A(1) - y * y;
  else if constexpr (OP == UnaryOp::Sigmoid) return y * (A(1) - y);
  else if constexpr (OP == UnaryOp::Relu) return x > A(0) ? A(1) : A(0);
  else if constexpr (OP == UnaryOp::Gelu) {
    A cdf = A(0.5) * (A(1) + m_erf(x * A(kInvSqrt2)));
    return cdf + x * A(kInvSqrt2Pi) * m_exp(A(-0.5) * x * x);
  } else if constexpr (OP == UnaryOp::Abs) return x > A(0) ? A(1) : (x < A(0) ? A(-1) : A(0));
  else if constexpr (OP == UnaryOp::Square) return A(2) * x;
  else if constexpr (OP == UnaryOp::PowScalar) return s * m_pow(x, s - A(1));
  else if constexpr (OP == UnaryOp::AddScalar) return A(1);
  else if constexpr (OP == UnaryOp::MulScalar) return s;
  else if constexpr (OP == UnaryOp::ClampMin) return x >= s ? A(1) : A(0);
  else return -y * y;  // Recip
}

template <UnaryOp OP, typename T>
struct UnaryF {
  acc_t<T> s;
  __device__ __forceinline__ T operator()(T x) const { return from_acc<T>(unary_fn<OP>(to_acc(x), s)); }
};
template <UnaryOp OP, typename T>
struct UnaryGradF {  // (x, gout) -> gx, y recomputed
  acc_t<T> s;
  __device__ __forceinline__ T operator()(T x, T g) const {
    acc_t<T> xa = to_acc(x);
    return from_acc<T>(to_acc(g) * unary_grad<OP>(xa, unary_fn<OP>(xa, s), s));
  }
};
template <UnaryOp OP, typename T>
struct UnaryGradYF {  // (x, y, gout) -> gx
  acc_t<T> s;
  __device__ __forceinline__ T operator()(T x, T y, T g) const {
    return from_acc<T>(to_acc(g) * unary_grad<OP>(to_acc(x), to_acc(y), s));
  }
};

// Calls f(std::integral_constant<UnaryOp, op>{}) so that kernels are specialised per op.
template <typename F>
void with_unary_op(UnaryOp op, F&& f) {
  using U = UnaryOp;
  switch (op) {
#define PE_CASE(x) \
  case U::x: f(std::integral_constant<U, U::x>{}); return;
    PE_CASE(Neg) PE_CASE(Exp) PE_CASE(Log) PE_CASE(Sqrt) PE_CASE(Rsqrt) PE_CASE(Tanh) PE_CASE(Sigmoid) PE_CASE(Relu)
    PE_CASE(Gelu) PE_CASE(Abs) PE_CASE(Square) PE_CASE(PowScalar) PE_CASE(AddScalar) PE_CASE(MulScalar)
    PE_CASE(ClampMin) PE_CASE(Recip)
#undef PE_CASE
  }
  PE_FAIL("unary: unknown op ", int(op));
}

}  // namespace

void CudaBackend::unary(UnaryOp op, const Tensor& x, const Tensor& out, double s) {
  const char* name = unary_name(op);
  check_same_float(name, x, {&out});
  check_contiguous(x, name, "input");
  check_contiguous(out, name, "output");
  PE_CHECK(x.numel() == out.numel(), name, ": ", x.str(), " into ", out.str());
  dispatch_float(x.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    with_unary_op(op, [&](auto opc) {
      constexpr UnaryOp OP = decltype(opc)::value;
      launch_map1(name, x.numel(), UnaryF<OP, T>{acc_t<T>(s)}, out.data<T>(), x.data<T>());
    });
  });
}

void CudaBackend::unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& gout, const Tensor& gx,
                                 double s) {
  const char* name = unary_name(op);
  check_same_float(name, x, {&gout, &gx});
  for (const Tensor* t : {&x, &gout, &gx}) check_contiguous(*t, name, "operand");
  if (y.defined()) {
    check_same_float(name, x, {&y});
    check_contiguous(y, name, "output");
  }
  int64_t n = x.numel();
  dispatch_float(x.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    with_unary_op(op, [&](auto opc) {
      constexpr UnaryOp OP = decltype(opc)::value;
      if (y.defined())
        launch_map3(name, n, UnaryGradYF<OP, T>{acc_t<T>(s)}, gx.data<T>(), x.data<T>(), y.data<T>(), gout.data<T>());
      else
        launch_map2(name, n, UnaryGradF<OP, T>{acc_t<T>(s)}, gx.data<T>(), x.data<T>(), gout.data<T>());
    });
  });
}

}  // namespace pe::cuda
