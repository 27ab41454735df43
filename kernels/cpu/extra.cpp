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
