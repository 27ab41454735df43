#include "autograd/kv_cache.h"

#include <algorithm>

#include "autograd/graph.h"
#include "autograd/ops.h"

namespace pe {

namespace {
Tensor lengths_on(const std::vector<int64_t>& len, const Device& dev) {
  return Tensor::from_vector(len, {int64_t(len.size())}).to(dev);
}
}  // namespace

KvCache::KvCache(int64_t batch, int64_t heads, int64_t head_dim, DType dtype, Device device, int64_t capacity)
    : B_(batch), H_(heads), D_(head_dim), dtype_(dtype), device_(device), cap_(std::max<int64_t>(capacity, 1)) {
  PE_CHECK(batch >= 1 && heads >= 1 && head_dim >= 1, "KvCache: batch ", batch, ", heads ", heads, ", head dim ",
           head_dim, " must be positive");
  PE_CHECK(is_floating(dtype), "KvCache: a floating dtype is needed, got ", dtype_name(dtype));
  k_ = Tensor::zeros({B_, cap_, H_, D_}, dtype_, device_);
  v_ = Tensor::zeros({B_, cap_, H_, D_}, dtype_, device_);
  len_.assign(size_t(B_), 0);
  len_dev_ = lengths_on(len_, device_);
}

void KvCache::reserve(int64_t positions) {
  if (positions <= cap_) return;
  const int64_t cap = std::max(2 * cap_, positions);
  Tensor k = Tensor::zeros({B_, cap, H_, D_}, dtype_, device_), v = Tensor::zeros({B_, cap, H_, D_}, dtype_, device_);
  int64_t used = *std::max_element(len_.begin(), len_.end());
  if (used > 0) {
    Backend& be = backend_for(device_);
    be.copy_strided(k_.narrow(1, 0, used), k.narrow(1, 0, used));
    be.copy_strided(v_.narrow(1, 0, used), v.narrow(1, 0, used));
  }
  k_ = k;
  v_ = v;
  cap_ = cap;
}

void KvCache::append(const Tensor& k_new, const Tensor& v_new, const std::vector<int64_t>& counts) {
  const char* op = "KvCache::append";
  PE_CHECK(k_new.defined() && v_new.defined(), op, ": undefined keys or values");
  PE_CHECK(k_new.dim() == 4 && k_new.shape() == v_new.shape() && k_new.size(0) == B_ && k_new.size(2) == H_ &&
               k_new.size(3) == D_,
           op, ": keys and values [", B_, ", Lnew, ", H_, ", ", D_, "] expected, got ", k_new.str(), ", ", v_new.str());
  PE_CHECK(is_floating(k_new.dtype()) && is_floating(v_new.dtype()), op, ": floating keys and values expected, got ",
           k_new.str(), ", ", v_new.str());
  PE_CHECK(k_new.device() == device_ && v_new.device() == device_, op, ": keys ", k_new.str(), " and values ",
           v_new.str(), " are not on the cache's device ", device_.str());
  const int64_t Lnew = k_new.size(1);
  std::vector<int64_t> n = counts.empty() ? std::vector<int64_t>(size_t(B_), Lnew) : counts;
  PE_CHECK(int64_t(n.size()) == B_, op, ": ", n.size(), " counts for ", B_, " rows");
  int64_t need = 0;
  for (int64_t b = 0; b < B_; ++b) {
    PE_CHECK(n[size_t(b)] >= 0 && n[size_t(b)] <= Lnew, op, ": count ", n[size_t(b)], " of row ", b, " outside [0, ",
             Lnew, "]");
    need = std::max(need, len_[size_t(b)] + n[size_t(b)]);
  }
  reserve(need);
  Backend& be = backend_for(device_);
  Tensor kd = k_new.detach(), vd = v_new.detach();
  const bool uniform = std::all_of(n.begin(), n.end(), [&](int64_t c) { return c == n[0]; }) &&
                       std::all_of(len_.begin(), len_.end(), [&](int64_t l) { return l == len_[0]; });
  if (uniform) {  // every row at the same position: one copy
    if (n[0] > 0) {
      be.copy_strided(kd.narrow(1, 0, n[0]), k_.narrow(1, len_[0], n[0]));
      be.copy_strided(vd.narrow(1, 0, n[0]), v_.narrow(1, len_[0], n[0]));
    }
  } else {
    for (int64_t b = 0; b < B_; ++b) {
      const int64_t c = n[size_t(b)];
      if (c == 0) continue;
      be.copy_strided(kd.select(0, b).narrow(0, 0, c), k_.select(0, b).narrow(0, len_[size_t(b)], c));
      be.copy_strided(vd.select(0, b).narrow(0, 0, c), v_.select(0, b).narrow(0, len_[size_t(b)], c));
    }
  }
  for (int64_t b = 0; b < B_; ++b) len_[size_t(b)] += n[size_t(b)];
  len_dev_ = lengths_on(len_, device_);
}

Tensor KvCache::attend(const Tensor& q, double scale) const {
  PE_CHECK(q.defined() && q.dim() == 4 && q.size(0) == B_ && q.size(2) == H_ && q.size(3) == D_,
           "KvCache::attend: q [", B_, ", Lnew, ", H_, ", ", D_, "] expected, got ", q.defined() ? q.str() : "undefined");
  Tensor qc = q.dtype() == dtype_ ? q : q.to(dtype_);
  return attention_decode(qc, k_, v_, len_dev_, scale);
}

void KvCache::reorder(const std::vector<int64_t>& parent) {
  PE_CHECK(!parent.empty(), "KvCache::reorder: no rows");
  std::vector<int64_t> len;
  for (int64_t p : parent) {
    PE_CHECK(p >= 0 && p < B_, "KvCache::reorder: parent row ", p, " outside [0, ", B_, ")");
    len.push_back(len_[size_t(p)]);
  }
  NoGradGuard ng;
  Tensor idx = Tensor::from_vector(parent, {int64_t(parent.size())}).to(device_);
  k_ = index_select(k_, 0, idx).contiguous();
  v_ = index_select(v_, 0, idx).contiguous();
  B_ = int64_t(parent.size());
  len_ = std::move(len);
  len_dev_ = lengths_on(len_, device_);
}

void KvCache::clear() {
  std::fill(len_.begin(), len_.end(), 0);
  len_dev_ = lengths_on(len_, device_);
}

}  // namespace pe
