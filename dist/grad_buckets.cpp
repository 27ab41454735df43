#include "dist/grad_buckets.h"

#include "kernels/backend.h"

namespace pe::dist {

GradBucketReducer::GradBucketReducer(Communicator& comm, std::vector<Tensor> params, int64_t bucket_bytes,
                                     Reduction op, bool bf16_comm)
    : comm_(comm), params_(std::move(params)), op_(op), bf16_comm_(bf16_comm) {
  PE_CHECK(bucket_bytes > 0, "gradient buckets: bucket size must be positive, got ", bucket_bytes, " bytes");
  bucket_of_.resize(params_.size());
  final_.resize(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    PE_CHECK(p.is_leaf() && p.requires_grad() && p.is_contiguous(), "gradient buckets: ", p.name(), " (", p.str(),
             ") is not a contiguous trainable parameter");
    PE_CHECK(p.dtype() == params_[0].dtype() && is_floating(p.dtype()), "gradient buckets: ", p.name(), " is ",
             p.str(), ", the first parameter ", params_[0].str(), " (one floating dtype for all)");
    PE_CHECK(p.device() == comm.device(), "gradient buckets: ", p.name(), " is on ", p.device().str(),
             ", the communicator on ", comm.device().str());
    PE_CHECK(index_.emplace(p.impl(), i).second, "gradient buckets: ", p.name(), " is listed twice");
  }
  cap_ = params_.empty() ? 1 : std::max<int64_t>(1, bucket_bytes / int64_t(dtype_size(params_[0].dtype())));
  std::vector<size_t> order;
  for (size_t k = params_.size(); k-- > 0;) order.push_back(k);  // reverse registration order
  assign(order);
}

void GradBucketReducer::assign(const std::vector<size_t>& order) {
  buckets_.clear();
  for (size_t k : order) {
    int64_t n = params_[k].numel();
    if (buckets_.empty() || (buckets_.back().numel > 0 && buckets_.back().numel + n > cap_)) buckets_.emplace_back();
    buckets_.back().params.push_back(k);
    buckets_.back().numel += n;
    bucket_of_[k] = buckets_.size() - 1;
  }
}

void GradBucketReducer::reorder_by_first_backward() {
  // Rank 0's order, so that every rank builds the same buckets (one small broadcast, once).
  std::vector<int64_t> order;
  for (size_t k : fired_) order.push_back(int64_t(k));
  for (size_t k = params_.size(); k-- > 0;)
    if (!final_[k]) order.push_back(int64_t(k));
  if (order.empty()) return;
  Tensor t = Tensor::from_vector(order, {int64_t(order.size())}).to(comm_.device());
  comm_.broadcast(t, 0);
  std::vector<size_t> agreed;
  for (int64_t k : t.to_int_vector()) agreed.push_back(size_t(k));
  assign(agreed);
}

std::vector<int64_t> GradBucketReducer::bucket_numels() const {
  std::vector<int64_t> n;
  for (const Bucket& b : buckets_) n.push_back(b.numel);
  return n;
}

LeafGradReadyHook GradBucketReducer::arm() {
  PE_CHECK(!armed_, "gradient buckets: arm() twice without finish()");
  armed_ = true;
  next_ = 0;
  started_early_ = 0;
  std::fill(final_.begin(), final_.end(), false);
  fired_.clear();
  for (Bucket& b : buckets_) {
    b.ready = 0;
    b.work.reset();
    b.flat = Tensor();
  }
  return [this](const Tensor& leaf) { on_ready(leaf); };
}

void GradBucketReducer::on_ready(const Tensor& leaf) {
  auto it = index_.find(leaf.impl());
  if (it == index_.end() || final_[it->second]) return;  // not ours (or reported twice)
  final_[it->second] = true;
  fired_.push_back(it->second);
  Bucket& b = buckets_[bucket_of_[it->second]];
  ++b.ready;
  size_t before = next_;
  start_ready_prefix();
  started_early_ += int64_t(next_ - before);
}

void GradBucketReducer::start_ready_prefix() {
  while (next_ < buckets_.size() && buckets_[next_].ready == int64_t(buckets_[next_].params.size()))
    start(buckets_[next_++]);
}

void GradBucketReducer::start(Bucket& b) {
  NoGradGuard ng;
  const Tensor& first = params_[b.params[0]];
  Backend& be = backend_for(first.device());
  b.flat = Tensor::zeros({b.numel + int64_t(b.params.size())}, bf16_comm_ ? DType::BF16 : first.dtype(),
                         first.device());
  std::vector<double> has;
  int64_t off = 0;
  for (size_t k : b.params) {
    const Tensor& p = params_[k];
    Tensor g = p.grad();
    has.push_back(g.defined() ? 1.0 : 0.0);
    if (g.defined()) {
      PE_CHECK(g.shape() == p.shape(), "gradient buckets: gradient ", g.str(), " of ", p.name(), " ", p.str());
      be.copy_strided(g, b.flat.narrow(0, off, p.numel()).view(p.shape()));
    }
    off += p.numel();
  }
  be.copy_strided(Tensor::from_vector(has, {int64_t(has.size())}).to(first.device()),
                  b.flat.narrow(0, b.numel, int64_t(has.size())));
  b.work = comm_.all_reduce_async(b.flat, op_);
}

void GradBucketReducer::finish() {
  PE_CHECK(armed_, "gradient buckets: finish() without arm()");
  armed_ = false;
  for (Bucket& b : buckets_) b.ready = int64_t(b.params.size());
  start_ready_prefix();
  for (Bucket& b : buckets_) {
    b.work->wait();
    b.work.reset();
    std::vector<double> with = b.flat.narrow(0, b.numel, int64_t(b.params.size())).to_double_vector();
    int64_t off = 0;
    for (size_t j = 0; j < b.params.size(); ++j) {
      const Tensor& p = params_[b.params[j]];
      // Disjoint views of the bucket's buffer: the optimiser may scale each in place.
      if (with[j] == 0) p.zero_grad();
      else if (bf16_comm_) p.set_grad(b.flat.narrow(0, off, p.numel()).view(p.shape()).to(p.dtype()));
      else p.set_grad(b.flat.narrow(0, off, p.numel()).view(p.shape()));
      off += p.numel();
    }
    b.flat = Tensor();
  }
  if (!reordered_) {
    reordered_ = true;
    reorder_by_first_backward();
  }
}

}  // namespace pe::dist
