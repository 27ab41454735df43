#include "autograd/graph.h"

#include <unordered_map>
#include <unordered_set>

#include "autograd/ops.h"

namespace pe {

static thread_local bool g_grad_enabled = true;
bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = prev_; }

static thread_local LeafGradReadyHook g_leaf_ready;
LeafGradReadyHookGuard::LeafGradReadyHookGuard(LeafGradReadyHook hook) : prev_(std::move(g_leaf_ready)) {
  g_leaf_ready = std::move(hook);
}
LeafGradReadyHookGuard::~LeafGradReadyHookGuard() { g_leaf_ready = std::move(prev_); }

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Tensor record(Tensor out, const char* op, std::vector<Tensor> inputs,
              std::function<std::vector<Tensor>(const Tensor& gout)> backward) {
  if (!any_requires_grad(inputs)) return out;
  auto node = std::make_shared<Node>();
  node->op = op;
  node->needs.resize(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) node->needs[i] = inputs[i].defined() && inputs[i].requires_grad();
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  node->out_shape = out.shape();
  node->out_dtype = out.dtype();
  out.set_grad_fn(node);
  return out;
}

static void accumulate(Tensor& slot, const Tensor& g) {
  // Functional accumulation: never writes into a tensor another node may alias.
  slot = slot.defined() ? add(slot, g) : g;
}

void run_backward(const Tensor& root, const Tensor& seed_in, bool retain_graph) {
  PE_CHECK(root.defined(), "backward: undefined tensor");
  PE_CHECK(root.requires_grad(), "backward: ", root.str(), " does not require a gradient (no parameter in its history?)");
  Tensor seed = seed_in;
  if (!seed.defined()) {
    PE_CHECK(root.numel() == 1, "backward: ", root.str(), " is not a scalar; pass a gradient of its shape");
    seed = Tensor::ones(root.shape(), root.dtype(), root.device());
  }
  PE_CHECK(seed.shape() == root.shape(), "backward: seed ", seed.str(), " does not match ", root.str());
  NoGradGuard no_grad;

  if (!root.grad_fn()) {  // a leaf: d root / d root
    Tensor g = root.grad();
    accumulate(g, seed);
    root.set_grad(g.clone());
    if (g_leaf_ready) g_leaf_ready(root);
    return;
  }

  // Post-order DFS (iterative, graphs can be thousands of nodes deep).
  // Holds every node alive for the sweep: clearing a node's inputs must not free one still queued.
  std::vector<std::shared_ptr<Node>> order;
  std::unordered_set<Node*> seen;
  std::vector<std::pair<std::shared_ptr<Node>, size_t>> stack{{root.grad_fn(), 0}};
  seen.insert(root.grad_fn().get());
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      const Tensor& in = node->inputs[next++];
      if (in.defined() && in.grad_fn() && !seen.count(in.grad_fn().get())) {
        seen.insert(in.grad_fn().get());
        stack.push_back({in.grad_fn(), 0});
      }
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }

  // With a ready hook: how many edges of the graph still lead into each leaf; a leaf is final when
  // the last of its consumers has been swept.
  std::unordered_map<TensorImpl*, std::pair<int64_t, Tensor>> pending;
  const bool hook = bool(g_leaf_ready);
  if (hook)
    for (const auto& node : order)
      for (size_t i = 0; i < node->inputs.size(); ++i)
        if (node->needs[i] && !node->inputs[i].grad_fn()) {
          auto& e = pending[node->inputs[i].impl()];
          if (!e.first++) e.second = node->inputs[i];
        }
  auto consumed = [&](Node* node) {
    for (size_t i = 0; i < node->inputs.size(); ++i) {
      if (!node->needs[i] || node->inputs[i].grad_fn()) continue;
      auto it = pending.find(node->inputs[i].impl());
      if (it != pending.end() && --it->second.first == 0) g_leaf_ready(it->second.second);
    }
  };

  root.grad_fn()->grad = seed;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* node = it->get();
    PE_CHECK(node->backward || !node->grad.defined(), "backward: the graph through '", node->op,
             "' was already freed; pass retain_graph=true to backward twice");
    if (!node->grad.defined()) {
      if (hook) consumed(node);
      continue;
    }
    std::vector<Tensor> grads = node->backward(node->grad);
    node->grad = Tensor();
    PE_CHECK(grads.size() == node->inputs.size(), "backward of '", node->op, "': ", grads.size(),
             " gradients for ", node->inputs.size(), " inputs");
    for (size_t i = 0; i < grads.size(); ++i) {
      if (!node->needs[i] || !grads[i].defined()) continue;
      const Tensor& in = node->inputs[i];
      PE_CHECK(grads[i].shape() == in.shape(), "backward of '", node->op, "': gradient ", grads[i].str(),
               " for input ", i, " of shape ", shape_str(in.shape()));
      Tensor g = grads[i].dtype() == in.dtype() ? grads[i] : grads[i].to(in.dtype());
      if (in.grad_fn()) {
        accumulate(in.grad_fn()->grad, g);
      } else {
        Tensor lg = in.grad();
        // First write clones: the stored gradient must not alias a tensor shared with other leaves,
        // since optimisers scale gradients in place.
        if (lg.defined()) lg = add(lg, g); else lg = g.clone();
        in.set_grad(lg);
      }
    }
    if (hook) consumed(node);
    if (!retain_graph) {
      node->backward = nullptr;
      node->inputs.clear();
    }
  }
}

}  // namespace pe
