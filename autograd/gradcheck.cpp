#include "autograd/gradcheck.h"

#include <cmath>
#include <sstream>

#include "autograd/ops.h"

namespace pe {

GradcheckResult gradcheck(const TensorFn& f, const std::vector<Tensor>& inputs, const GradcheckOptions& opt) {
  for (const Tensor& t : inputs) {
    PE_CHECK(t.device().is_cpu(), "gradcheck: inputs must be on the CPU, got ", t.str());
    if (t.requires_grad())
      PE_CHECK(t.dtype() == DType::F64 && t.is_contiguous(), "gradcheck: differentiated inputs must be contiguous f64, got ", t.str());
  }
  GradcheckResult res;
  Generator gen(opt.seed);
  Tensor out = f(inputs);
  Tensor w = add(rand(out.shape(), gen, DType::F64), 0.5);  // in [0.5, 1.5)
  auto probe = [&](const Tensor& o) { return sum(mul(o, w)); };

  for (const Tensor& t : inputs) t.zero_grad();
  probe(out).backward();

  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& x = inputs[k];
    if (!x.requires_grad()) continue;
    Tensor g = x.grad();
    std::vector<double> analytic = g.defined() ? g.to_double_vector() : std::vector<double>(size_t(x.numel()), 0.0);
    double* xp = x.data<double>();
    int64_t n = x.numel();
    int64_t stride = (opt.max_elements_per_input > 0 && n > opt.max_elements_per_input)
                         ? (n + opt.max_elements_per_input - 1) / opt.max_elements_per_input
                         : 1;
    for (int64_t i = 0; i < n; i += stride) {
      double orig = xp[i];
      double fp, fm;
      {
        NoGradGuard ng;
        xp[i] = orig + opt.eps;
        fp = probe(f(inputs)).item();
        xp[i] = orig - opt.eps;
        fm = probe(f(inputs)).item();
        xp[i] = orig;
      }
      double numeric = (fp - fm) / (2 * opt.eps);
      double a = analytic[size_t(i)];
      double abs_err = std::abs(a - numeric);
      double rel_err = abs_err / std::max(std::abs(numeric), 1e-12);
      res.max_abs_err = std::max(res.max_abs_err, abs_err);
      if (std::abs(numeric) > opt.atol) res.max_rel_err = std::max(res.max_rel_err, rel_err);
      if (!(abs_err <= opt.atol + opt.rtol * std::abs(numeric)) && res.ok) {
        res.ok = false;
        std::ostringstream os;
        os << "input " << k << " " << x.str() << " element " << i << ": analytic " << a << " numeric " << numeric;
        res.detail = os.str();
      }
    }
  }
  return res;
}

}  // namespace pe
