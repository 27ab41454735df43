#pragma once
// Float64 central-difference gradient check. The scalar probed is sum(f(inputs) * w) for a fixed
// random w (never all ones, so errors in individual output elements cannot cancel).
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace pe {

struct GradcheckOptions {
  double eps = 1e-6;   // central-difference step
  double atol = 1e-7;  // pass if |analytic - numeric| <= atol + rtol * |numeric| for every element
  double rtol = 1e-5;
  uint64_t seed = 1234;
  // Probe at most this many elements of each input (evenly spaced; 0 = all): keeps checks of
  // whole models affordable while still touching every parameter tensor.
  int64_t max_elements_per_input = 0;
};

struct GradcheckResult {
  bool ok = true;
  double max_abs_err = 0, max_rel_err = 0;
  std::string detail;  // first failing input/element, for the test message
};

using TensorFn = std::function<Tensor(const std::vector<Tensor>&)>;

// inputs: contiguous f64 CPU tensors; those with requires_grad are checked.
GradcheckResult gradcheck(const TensorFn& f, const std::vector<Tensor>& inputs, const GradcheckOptions& opt = {});

}  // namespace pe
