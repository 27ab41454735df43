#include "autograd/sync_batch_norm.h"

#include "kernels/backend.h"

namespace pe {

Tensor batch_norm_synced(const Tensor& x, const Tensor& row_mask, const Tensor& weight, const Tensor& bias,
                         const Tensor& running_mean, const Tensor& running_var, double momentum, double eps,
                         const SumAcrossProcesses& sum_across) {
  PE_CHECK(sum_across, "batch_norm_synced: no cross-process sum given");
  PE_CHECK(x.defined() && x.dim() == 2, "batch_norm_synced: expected [rows, channels], got ",
           x.defined() ? x.str() : "undefined");
  PE_CHECK(x.dtype() == DType::F32 || x.dtype() == DType::F64 || x.dtype() == DType::BF16,
           "batch_norm_synced: expected a floating tensor, got ", x.str());
  const int64_t C = x.size(1);
  Tensor xs = x;
  if (row_mask.defined()) {
    PE_CHECK(row_mask.shape() == Shape{x.size(0)}, "batch_norm_synced: row mask ", row_mask.str(), " does not match ",
             x.str());
    std::vector<int64_t> rows;
    std::vector<double> m = row_mask.to_double_vector();
    for (size_t i = 0; i < m.size(); ++i)
      if (m[i] != 0.0) rows.push_back(int64_t(i));
    xs = index_select(x, 0, Tensor::from_vector(rows, {int64_t(rows.size())}, x.device()));
  }
  const int64_t n_local = xs.size(0);
  double n = 0;
  {
    NoGradGuard ng;  // counts: float64 holds them exactly
    Tensor cnt = sum_across(Tensor::full({1}, double(n_local), DType::F64, x.device()));
    n = cnt.to_double_vector().at(0);
  }
  PE_CHECK(n > 0, "batch_norm_synced: no real rows on any process to take statistics from");
  // A process without real rows still takes part in both sums (with zeros), forward and backward.
  auto local_sum = [&](const Tensor& rows) {
    return rows.size(0) > 0 ? sum(rows, {0}, true) : mul(sum(x, {0}, true), 0.0);
  };
  Tensor mu = mul(sum_across(local_sum(xs)), 1.0 / n);
  Tensor var = mul(sum_across(local_sum(square(sub(xs, mu)))), 1.0 / n);
  if (running_mean.defined()) {
    PE_CHECK(running_var.defined(), "batch_norm_synced: running_mean without running_var");
    NoGradGuard ng;
    double unbias = n > 1 ? n / (n - 1) : 1.0;
    Tensor nm = add(mul(running_mean, 1.0 - momentum), mul(mu.detach().view({C}), momentum));
    Tensor nv = add(mul(running_var, 1.0 - momentum), mul(var.detach().view({C}), momentum * unbias));
    backend_for(x.device()).copy_strided(nm, running_mean);
    backend_for(x.device()).copy_strided(nv, running_var);
  }
  Tensor y = mul(sub(x, mu), rsqrt(add(var, eps)));
  if (weight.defined()) y = mul(y, weight);
  if (bias.defined()) y = add(y, bias);
  return y;
}

}  // namespace pe
