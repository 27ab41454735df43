#include "dist/zero_adam.h"

#include <cmath>

#include "autograd/ops.h"
#include "kernels/backend.h"

namespace pe::dist {

ShardedAdam::ShardedAdam(Communicator& comm, std::vector<ParamGroup> groups, AdamOptions opt)
    : comm_(comm), groups_(std::move(groups)), opt_(opt) {
  for (size_t g = 0; g < groups_.size(); ++g)
    for (const Tensor& p : groups_[g].params) {
      PE_CHECK(p.is_leaf() && p.is_contiguous(), "ZeRO-1: parameter ", p.name(), " (", p.str(),
               ") must be a contiguous leaf");
      PE_CHECK(p.device() == comm.device(), "ZeRO-1: parameter ", p.name(), " is on ", p.device().str(),
               ", the communicator on ", comm.device().str());
      PE_CHECK(params_.empty() || p.dtype() == params_[0].dtype(), "ZeRO-1: parameter ", p.name(), " is ", p.str(),
               ", the first ", params_[0].str(), " (one dtype for all)");
      params_.push_back(p);
      group_of_.push_back(g);
      offset_.push_back(total_);
      total_ += p.numel();
    }
  const DType pd = params_.empty() ? DType::F32 : params_[0].dtype();
  PE_CHECK(pd == DType::F32 || pd == DType::F64, "ZeRO-1: parameters must be f32 or f64 (the optimiser's "
           "moments have the parameters' dtype), got ", dtype_name(pd));
  state_dtype_ = pd;
  const int W = comm.world_size(), me = comm.rank();
  counts_ = balanced_counts(total_, W);
  lo_ = shard_offset(counts_, me);
  const int64_t hi = lo_ + counts_[size_t(me)];
  for (size_t i = 0; i < params_.size(); ++i) {
    int64_t s = std::max(lo_, offset_[i]), e = std::min(hi, offset_[i] + params_[i].numel());
    if (s < e) segments_.push_back({i, s - offset_[i], s - lo_, e - s});
  }
  has_grad_.assign(params_.size(), false);
  const Device dev = comm.device();
  grad_ = Tensor::zeros({counts_[size_t(me)]}, pd, dev);
  m_ = Tensor::zeros({counts_[size_t(me)]}, state_dtype_, dev);
  v_ = Tensor::zeros({counts_[size_t(me)]}, state_dtype_, dev);
}

int64_t ShardedAdam::state_bytes(int r) const { return 2 * counts_[size_t(r)] * int64_t(dtype_size(state_dtype_)); }
int64_t ShardedAdam::unsharded_state_bytes() const { return 2 * total_ * int64_t(dtype_size(state_dtype_)); }

double ShardedAdam::reduce_gradients() {
  NoGradGuard ng;
  const Device dev = comm_.device();
  Backend& be = backend_for(dev);
  std::vector<int64_t> has(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) has[i] = params_[i].grad().defined() ? 1 : 0;
  Tensor ranks_with = Tensor::from_vector(has, {int64_t(has.size())}).to(dev);
  comm_.all_reduce(ranks_with, Reduction::Sum);
  std::vector<int64_t> n = ranks_with.to_int_vector();
  Tensor flat = Tensor::zeros({total_}, grad_.dtype(), dev);
  for (size_t i = 0; i < params_.size(); ++i) {
    has_grad_[i] = n[i] > 0;
    Tensor g = params_[i].grad();
    if (g.defined()) be.copy_strided(g, flat.narrow(0, offset_[i], params_[i].numel()).view(params_[i].shape()));
  }
  comm_.reduce_scatter(flat, grad_, Reduction::Sum, counts_);
  // The global norm: squared norms of the slices, summed over ranks (NaN and infinity propagate).
  double mine = grad_.numel() ? sum(square(grad_)).item() : 0.0;
  Tensor sq = Tensor::from_vector(std::vector<double>{mine}, {1}).to(dev);
  comm_.all_reduce(sq, Reduction::Sum);
  norm_ = std::sqrt(sq.item());
  return norm_;
}

void ShardedAdam::clip(double max_norm) {
  NoGradGuard ng;
  if (max_norm > 0 && norm_ > max_norm && std::isfinite(norm_)) grad_ = mul(grad_, max_norm / (norm_ + 1e-6));
}

void ShardedAdam::step() {
  NoGradGuard ng;
  ++step_;
  const Device dev = comm_.device();
  Backend& be = backend_for(dev);
  Tensor mine = Tensor::empty({counts_[size_t(comm_.rank())]}, grad_.dtype(), dev);
  for (const Segment& s : segments_) {
    const Tensor& p = params_[s.param];
    Tensor slice = p.view({p.numel()}).narrow(0, s.in_param, s.len);
    if (has_grad_[s.param]) {
      const AdamParams ap = adam_params(opt_, groups_[group_of_[s.param]], step_);
      be.adam_step(slice, grad_.narrow(0, s.in_shard, s.len), m_.narrow(0, s.in_shard, s.len),
                   v_.narrow(0, s.in_shard, s.len), ap);
    }
    be.copy_strided(slice, mine.narrow(0, s.in_shard, s.len));
  }
  Tensor full = Tensor::empty({total_}, grad_.dtype(), dev);
  comm_.all_gather(mine, full, counts_);
  for (size_t i = 0; i < params_.size(); ++i)
    be.copy_strided(full.narrow(0, offset_[i], params_[i].numel()).view(params_[i].shape()), params_[i]);
}

void ShardedAdam::zero_grad() {
  for (const Tensor& p : params_) p.zero_grad();
}

std::map<std::string, Tensor> ShardedAdam::gather_state() {
  NoGradGuard ng;
  std::map<std::string, Tensor> out;
  for (const auto& [prefix, mine] : {std::make_pair("m.", m_), std::make_pair("v.", v_)}) {
    Tensor full = Tensor::empty({total_}, state_dtype_, comm_.device());
    comm_.all_gather(mine, full, counts_);
    for (size_t i = 0; i < params_.size(); ++i)
      out[prefix + std::to_string(i)] = full.narrow(0, offset_[i], params_[i].numel()).view(params_[i].shape()).clone();
  }
  return out;
}

void ShardedAdam::load_state(const std::map<std::string, Tensor>& state, int64_t step) {
  NoGradGuard ng;
  Backend& be = backend_for(comm_.device());
  for (const auto& [prefix, mine] : {std::make_pair("m.", m_), std::make_pair("v.", v_)}) {
    for (size_t i = 0; i < params_.size(); ++i) {
      std::string key = prefix + std::to_string(i);
      auto it = state.find(key);
      PE_CHECK(it != state.end(), "ZeRO-1 load_state: missing optimizer tensor '", key, "'");
      PE_CHECK(it->second.shape() == params_[i].shape(), "ZeRO-1 load_state: '", key, "' has shape ",
               shape_str(it->second.shape()), ", expected ", shape_str(params_[i].shape()), " (", params_[i].name(), ")");
    }
    for (const Segment& s : segments_) {
      Tensor src = state.at(prefix + std::to_string(s.param)).to(comm_.device()).to(state_dtype_).contiguous();
      be.copy_strided(src.view({src.numel()}).narrow(0, s.in_param, s.len), mine.narrow(0, s.in_shard, s.len));
    }
  }
  step_ = step;
}

}  // namespace pe::dist
