#include "autograd/optim.h"

#include <cmath>

#include "autograd/ops.h"

namespace pe {

AdamParams adam_params(const AdamOptions& opt, const ParamGroup& g, int64_t step) {
  AdamParams ap;
  ap.lr = opt.lr * g.lr_scale;
  ap.beta1 = opt.beta1;
  ap.beta2 = opt.beta2;
  ap.eps = opt.eps;
  ap.weight_decay = g.weight_decay ? opt.weight_decay : 0.0;
  ap.decoupled = opt.decoupled;
  ap.step = step;
  return ap;
}

Adam::Adam(std::vector<ParamGroup> groups, AdamOptions opt) : groups_(std::move(groups)), opt_(opt) {
  for (const auto& g : groups_)
    for (const Tensor& p : g.params) {
      PE_CHECK(p.is_leaf() && p.is_contiguous(), "Adam: parameter ", p.str(), " must be a contiguous leaf");
      DType sd = p.dtype() == DType::F64 ? DType::F64 : DType::F32;
      m_.push_back(Tensor::zeros(p.shape(), sd, p.device()));
      v_.push_back(Tensor::zeros(p.shape(), sd, p.device()));
    }
}

void Adam::step() {
  ++step_;
  size_t k = 0;
  NoGradGuard ng;
  for (const auto& g : groups_) {
    for (const Tensor& p : g.params) {
      Tensor grad = p.grad();
      size_t i = k++;
      if (!grad.defined()) continue;
      const AdamParams ap = adam_params(opt_, g, step_);
      Tensor gc = grad.contiguous();
      if (gc.dtype() != p.dtype()) gc = gc.to(p.dtype());
      backend_for(p.device()).adam_step(p, gc, m_[i], v_[i], ap);
    }
  }
}

void Adam::zero_grad() {
  for (const auto& g : groups_)
    for (const Tensor& p : g.params) p.zero_grad();
}

std::map<std::string, Tensor> Adam::state() const {
  std::map<std::string, Tensor> s;
  for (size_t i = 0; i < m_.size(); ++i) {
    s["m." + std::to_string(i)] = m_[i];
    s["v." + std::to_string(i)] = v_[i];
  }
  return s;
}

void Adam::load_state(const std::map<std::string, Tensor>& state, int64_t step) {
  for (size_t i = 0; i < m_.size(); ++i) {
    for (auto* vec : {&m_, &v_}) {
      std::string key = (vec == &m_ ? "m." : "v.") + std::to_string(i);
      auto it = state.find(key);
      PE_CHECK(it != state.end(), "Adam::load_state: missing optimizer tensor '", key, "'");
      PE_CHECK(it->second.shape() == (*vec)[i].shape(), "Adam::load_state: '", key, "' has shape ",
               shape_str(it->second.shape()), ", expected ", shape_str((*vec)[i].shape()));
      (*vec)[i] = it->second.to((*vec)[i].device()).to((*vec)[i].dtype()).contiguous().clone();
    }
  }
  step_ = step;
}

// Sum of squares of every gradient (accumulated in double by the reduction); NaN/Inf propagate.
static double grad_sum_squares(const std::vector<Tensor>& params) {
  NoGradGuard ng;
  double total = 0;
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (g.defined()) total += sum(square(g)).item();
  }
  return total;
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  NoGradGuard ng;
  double norm = std::sqrt(grad_sum_squares(params));
  if (max_norm > 0 && norm > max_norm && std::isfinite(norm)) {
    double scale = max_norm / (norm + 1e-6);
    for (const Tensor& p : params)
      if (p.grad().defined()) p.set_grad(mul(p.grad(), scale));
  }
  return norm;
}

bool grads_nonfinite(const std::vector<Tensor>& params) {
  std::vector<Tensor> grads;
  for (const Tensor& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return false;
  return backend_for(grads[0].device()).any_nonfinite(grads);  // one synchronisation for all
}

}  // namespace pe
