// Base (CPU reference) implementations of the Backend methods appended for mixed precision and the
// optimizer: NaN/Inf detection and the multi-tensor Adam step. Device backends override them.
#include <cmath>

#include "kernels/cpu/cpu_common.h"

namespace pe {

namespace {

template <typename T>
bool finite_value(T v) { return std::isfinite(double(cpu::to_f64(v))); }

// x as a contiguous CPU tensor (copied through its own backend when it lives elsewhere).
Tensor host_contiguous(const Tensor& x) {
  Tensor d = x.detach();
  if (!d.device().is_cpu()) d = d.to(Device::cpu());
  return d.contiguous();
}

}  // namespace

bool Backend::has_nonfinite(const Tensor& x) {
  PE_CHECK(x.defined(), "has_nonfinite: undefined tensor");
  if (!is_floating(x.dtype()) || x.numel() == 0) return false;
  Tensor h = host_contiguous(x);
  int64_t n = h.numel();
  int found = 0;
  cpu::dispatch_all(h.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = h.data<T>();
#pragma omp parallel for schedule(static) reduction(| : found) if (n > cpu::kParallelGrain)
    for (int64_t i = 0; i < n; ++i) found |= finite_value(p[i]) ? 0 : 1;
  });
  return found != 0;
}

void Backend::bias_act(const Tensor& y, const Tensor& bias, UnaryOp act, const Tensor& pre, const Tensor& out) {
  const int64_t n = bias.numel(), rows = n ? y.numel() / n : 0;
  PE_CHECK(n > 0 && rows * n == y.numel() && out.numel() == y.numel() && (!pre.defined() || pre.numel() == y.numel()),
           "bias_act: y ", y.str(), ", bias ", bias.str(), ", out ", out.str(), " do not match");
  const Tensor dst = (pre.defined() ? pre : out).view({rows, n});
  binary(BinaryOp::Add, y.view({rows, n}), bias.view({1, n}).expand({rows, n}), dst);
  unary(act, dst, out.view({rows, n}), 0.0);
}

// Checks shared with the CPU override (kernels/cpu/matmul.cpp); returns rows.
int64_t check_linear_epilogue(const Tensor& x, const Tensor& w, const Tensor& bias, bool has_act, UnaryOp act,
                              const Tensor& residual, const Tensor& pre, const Tensor& out) {
  PE_CHECK(x.dim() == 2 && w.dim() == 2 && x.size(1) == w.size(1) && out.dim() == 2 && out.size(0) == x.size(0) &&
               out.size(1) == w.size(0),
           "linear_epilogue: x ", x.str(), ", w ", w.str(), ", out ", out.str(), " are not [rows, in], [n, in], [rows, n]");
  PE_CHECK(x.dtype() == w.dtype() && out.dtype() == x.dtype(), "linear_epilogue: x ", x.str(), ", w ", w.str(),
           ", out ", out.str(), " differ in dtype");
  PE_CHECK(x.is_contiguous() && w.is_contiguous() && out.is_contiguous(), "linear_epilogue: x, w, out must be contiguous");
  PE_CHECK(!bias.defined() || (bias.numel() == w.size(0) && bias.dtype() == out.dtype() && bias.is_contiguous()),
           "linear_epilogue: bias ", bias.str(), " is not [", w.size(0), "] of ", dtype_name(out.dtype()));
  PE_CHECK(!has_act || act == UnaryOp::Gelu || act == UnaryOp::Relu, "linear_epilogue: the activation must be gelu or relu, got ",
           unary_name(act));
  PE_CHECK(!pre.defined() || has_act, "linear_epilogue: a pre-activation output needs an activation");
  for (const Tensor* t : {&residual, &pre})
    PE_CHECK(!t->defined() || (t->shape() == out.shape() && t->dtype() == out.dtype() && t->is_contiguous()),
             "linear_epilogue: ", t->str(), " is not like the output ", out.str());
  PE_CHECK(!residual.defined() || residual.raw_data() != out.raw_data(), "linear_epilogue: residual aliases the output");
  return x.size(0);
}

void Backend::linear_epilogue(const Tensor& x, const Tensor& w, const Tensor& bias, bool has_act, UnaryOp act,
                              const Tensor& residual, const Tensor& pre, const Tensor& out) {
  const int64_t rows = check_linear_epilogue(x, w, bias, has_act, act, residual, pre, out);
  if (rows == 0 || out.numel() == 0) return;
  const int64_t in = x.size(1), n = w.size(0);
  const Tensor x3 = x.view({1, rows, in}), w3 = w.view({1, n, in}), o3 = out.view({1, rows, n});
  if (bias.defined() && !has_act) matmul_bias(x3, w3, bias, o3, false, true);
  else matmul(x3, w3, o3, false, true, 1.0, 0.0);
  if (has_act) {
    if (bias.defined()) bias_act(out, bias, act, pre, out);
    else {
      if (pre.defined()) copy_strided(out, pre);
      unary(act, out, out, 0.0);
    }
  }
  if (residual.defined()) binary(BinaryOp::Add, out, residual, out);
}

bool Backend::any_nonfinite(const std::vector<Tensor>& xs) {
  bool any = false;
  for (const Tensor& x : xs) any = has_nonfinite(x) || any;
  return any;
}

void Backend::adam_multi_tensor(const std::vector<Tensor>& master, const std::vector<Tensor>& grad,
                                const std::vector<Tensor>& m, const std::vector<Tensor>& v,
                                const std::vector<Tensor>& working, const AdamParams& p) {
  size_t count = master.size();
  PE_CHECK(grad.size() == count && m.size() == count && v.size() == count && (working.empty() || working.size() == count),
           "adam_multi_tensor: list lengths differ (master ", count, ", grad ", grad.size(), ", m ", m.size(), ", v ",
           v.size(), ", working ", working.size(), ")");
  double bc1 = 1.0 - std::pow(p.beta1, double(p.step));
  double bc2 = 1.0 - std::pow(p.beta2, double(p.step));
  for (size_t t = 0; t < count; ++t) {
    const Tensor& w = master[t];
    const Tensor* out = working.empty() || !working[t].defined() ? nullptr : &working[t];
    PE_CHECK(w.device().is_cpu(), "adam_multi_tensor: ", w.str(), " is not on the CPU and backend '", name(),
             "' has no multi-tensor Adam");
    PE_CHECK(w.dtype() == DType::F32 || w.dtype() == DType::F64, "adam_multi_tensor: master weight ", w.str(),
             " must be f32 or f64");
    for (const Tensor* o : {&grad[t], &m[t], &v[t], out}) {
      if (!o) continue;
      PE_CHECK(o->device() == w.device() && o->numel() == w.numel() && o->is_contiguous() && is_floating(o->dtype()),
               "adam_multi_tensor: ", o->str(), " does not match master weight ", w.str());
    }
    PE_CHECK(w.is_contiguous() && m[t].dtype() == w.dtype() && v[t].dtype() == w.dtype(),
             "adam_multi_tensor: moments ", m[t].str(), ", ", v[t].str(), " must be contiguous ", dtype_name(w.dtype()));
    cpu::dispatch_float(w.dtype(), "adam_multi_tensor", [&](auto wtag) {
      using W = decltype(wtag);
      cpu::dispatch_all(grad[t].dtype(), [&](auto gtag) {
        using G = decltype(gtag);
        W* wp = w.data<W>();
        W* mp = m[t].data<W>();
        W* vp = v[t].data<W>();
        const G* gp = grad[t].data<G>();
        int64_t n = w.numel();
#pragma omp parallel for schedule(static) if (n > cpu::kParallelGrain)
        for (int64_t i = 0; i < n; ++i) {
          double gi = cpu::to_f64(gp[i]);
          double wi = double(wp[i]);
          if (p.weight_decay != 0.0) {
            if (p.decoupled) wi *= 1.0 - p.lr * p.weight_decay;
            else gi += p.weight_decay * wi;
          }
          double mi = p.beta1 * double(mp[i]) + (1.0 - p.beta1) * gi;
          double vi = p.beta2 * double(vp[i]) + (1.0 - p.beta2) * gi * gi;
          mp[i] = W(mi);
          vp[i] = W(vi);
          wi -= p.lr * (mi / bc1) / (std::sqrt(vi / bc2) + p.eps);
          wp[i] = W(wi);
        }
      });
    });
    if (out) copy_strided(w, *out);
  }
}

}  // namespace pe
