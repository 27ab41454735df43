#pragma once
// Reverse-mode autograd, micrograd-shaped: every op result that needs a gradient holds one Node
// with its inputs and one backward closure. backward() sorts nodes topologically by DFS and runs
// the closures in reverse. Gradient semantics:
//  - leaves (parameters) ACCUMULATE into .grad across backward calls until zero_grad();
//  - the graph is freed after backward unless retain_graph is set;
//  - closures run under no-grad (no higher-order gradients);
//  - a closure captures detached tensors only (never its own output's handle), so no cycles.
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace pe {

struct Node {
  const char* op = "";
  std::vector<Tensor> inputs;  // what the op read; history flows through their grad_fn
  std::vector<bool> needs;     // needs[i]: input i wants a gradient
  // Given d(loss)/d(output), returns d(loss)/d(input i) for each i with needs[i] (others undefined).
  std::function<std::vector<Tensor>(const Tensor& gout)> backward;
  Tensor grad;  // accumulated d(loss)/d(output) while a backward sweep runs
  Shape out_shape;
  DType out_dtype = DType::F32;
};

bool grad_enabled();
struct NoGradGuard {
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// True when recording is on and any input requires a gradient.
bool any_requires_grad(const std::vector<Tensor>& inputs);

// Attaches a Node to `out` when any input requires a gradient (and grad mode is on).
// Returns `out` for chaining.
Tensor record(Tensor out, const char* op, std::vector<Tensor> inputs,
              std::function<std::vector<Tensor>(const Tensor& gout)> backward);

void run_backward(const Tensor& root, const Tensor& seed, bool retain_graph);

// Called by run_backward once for every leaf that needs a gradient and is reached by the sweep, as
// soon as this sweep will add nothing more to its .grad: the closures of all its consumers have run
// (or were skipped for want of a gradient). leaf.grad() then holds its final value for this sweep
// (with what earlier sweeps accumulated; undefined if it never got one). The order follows the
// sweep: roughly the reverse of the order in which forward used the leaves. What data parallelism
// needs to start a gradient's all-reduce while the rest of the backward runs (dist/grad_buckets.h);
// autograd knows nothing of communication. Set per thread for the lifetime of the guard; a hook
// must not start another backward.
using LeafGradReadyHook = std::function<void(const Tensor& leaf)>;
struct LeafGradReadyHookGuard {
  explicit LeafGradReadyHookGuard(LeafGradReadyHook hook);
  ~LeafGradReadyHookGuard();
  LeafGradReadyHookGuard(const LeafGradReadyHookGuard&) = delete;
  LeafGradReadyHookGuard& operator=(const LeafGradReadyHookGuard&) = delete;

 private:
  LeafGradReadyHook prev_;
};

}  // namespace pe
