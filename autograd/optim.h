#pragma once
// Adam / AdamW over parameter groups (a group may scale the learning rate, as ProtST does for the
// protein encoder). Moments are kept in f32 (f64 for f64 parameters). Gradients are read from
// each parameter's .grad; parameters without one are skipped (frozen or unused this step).
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/backend.h"

namespace pe {

struct AdamOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  bool decoupled = true;  // true: AdamW; false: Adam with L2 added to the gradient
};

struct ParamGroup {
  std::vector<Tensor> params;
  double lr_scale = 1.0;
  bool weight_decay = true;  // biases and norms usually opt out
};

// The backend's per-tensor Adam arguments for one parameter of group g at step `step` (1-based).
AdamParams adam_params(const AdamOptions& opt, const ParamGroup& g, int64_t step);

class Adam {
 public:
  Adam(std::vector<ParamGroup> groups, AdamOptions opt);
  void step();  // one update of every parameter that has a gradient
  void zero_grad();
  void set_lr(double lr) { opt_.lr = lr; }
  double lr() const { return opt_.lr; }
  int64_t steps() const { return step_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }
  // Optimizer state for checkpoints: "m.<i>", "v.<i>" by flat parameter index, and the step count.
  std::map<std::string, Tensor> state() const;
  void load_state(const std::map<std::string, Tensor>& state, int64_t step);

 private:
  std::vector<ParamGroup> groups_;
  AdamOptions opt_;
  std::vector<Tensor> m_, v_;  // flat over groups
  int64_t step_ = 0;
};

// Scales all gradients so that their global L2 norm is at most max_norm; returns the norm before.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);
// True if any gradient holds NaN or Inf.
bool grads_nonfinite(const std::vector<Tensor>& params);

}  // namespace pe
