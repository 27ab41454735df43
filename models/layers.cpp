#include "models/layers.h"

#include <algorithm>

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "autograd/fused.h"

namespace pe {

Tensor ParamStore::add(const std::string& name, Tensor t, bool trainable) {
  PE_CHECK(!contains(name), "ParamStore: duplicate tensor name '", name, "'");
  t.set_name(name);
  if (trainable && is_floating(t.dtype())) t.requires_grad_(true);
  order_.push_back(name);
  index_[name] = t;
  buffer_[name] = !trainable;
  return t;
}

Tensor ParamStore::get(const std::string& name) const {
  auto it = index_.find(name);
  PE_CHECK(it != index_.end(), "ParamStore: no tensor named '", name, "'");
  return it->second;
}

bool ParamStore::is_buffer(const std::string& name) const {
  auto it = buffer_.find(name);
  return it != buffer_.end() && it->second;
}

std::vector<Tensor> ParamStore::parameters(const std::string& prefix) const {
  std::vector<Tensor> out;
  for (const auto& n : order_)
    if (!is_buffer(n) && n.rfind(prefix, 0) == 0 && index_.at(n).requires_grad()) out.push_back(index_.at(n));
  return out;
}

void ParamStore::set_trainable(const std::string& prefix, bool on) {
  for (const auto& n : order_)
    if (!is_buffer(n) && n.rfind(prefix, 0) == 0) {
      Tensor t = index_.at(n);
      t.requires_grad_(on);
      if (!on) t.zero_grad();
    }
}

int64_t ParamStore::numel(const std::string& prefix) const {
  int64_t n = 0;
  for (const auto& name : order_)
    if (!is_buffer(name) && name.rfind(prefix, 0) == 0) n += index_.at(name).numel();
  return n;
}

void ParamStore::merge(const std::string& prefix, const ParamStore& other) {
  for (const auto& n : other.order_) {
    std::string full = prefix + n;
    PE_CHECK(!contains(full), "ParamStore: duplicate tensor name '", full, "'");
    order_.push_back(full);
    index_[full] = other.index_.at(n);
    buffer_[full] = other.is_buffer(n);
  }
}

void ParamStore::assign(const std::string& name, const Tensor& value) {
  Tensor t = get(name);
  PE_CHECK(value.shape() == t.shape(), "tensor '", name, "': shape ", shape_str(value.shape()), " does not match ",
           shape_str(t.shape()));
  NoGradGuard ng;
  Tensor v = value.to(t.device()).to(t.dtype());
  backend_for(t.device()).copy_strided(v, t.detach());
}

Tensor init_normal(const Shape& shape, Generator& gen, const InitSpec& spec, double std) {
  if (!spec.random_init) return Tensor::zeros(shape, spec.dtype, spec.device);
  return randn(shape, gen, spec.dtype, spec.device, 0.0, std);
}

Linear make_linear(ParamStore& ps, const std::string& name, int64_t in, int64_t out, bool bias, double std,
                   Generator& gen, const InitSpec& spec) {
  Linear l;
  l.weight = ps.add(name + ".weight", init_normal({out, in}, gen, spec, std));
  if (bias) l.bias = ps.add(name + ".bias", Tensor::zeros({out}, spec.dtype, spec.device));
  return l;
}

LayerNorm make_layer_norm(ParamStore& ps, const std::string& name, int64_t dim, double eps, const InitSpec& spec) {
  LayerNorm ln;
  ln.weight = ps.add(name + ".weight", Tensor::ones({dim}, spec.dtype, spec.device));
  ln.bias = ps.add(name + ".bias", Tensor::zeros({dim}, spec.dtype, spec.device));
  ln.eps = eps;
  return ln;
}

Tensor MLP::operator()(const Tensor& x) const {
  Tensor h = x;
  for (size_t i = 0; i < layers.size(); ++i) h = i + 1 < layers.size() ? layers[i].act(h, UnaryOp::Relu) : layers[i](h);
  return h;
}

MLP make_mlp(ParamStore& ps, const std::string& name, int64_t in, const std::vector<int64_t>& dims, Generator& gen,
             const InitSpec& spec) {
  MLP m;
  int64_t d = in;
  for (size_t i = 0; i < dims.size(); ++i) {
    std::string n = name + ".layers." + std::to_string(i);
    double bound = 1.0 / std::sqrt(double(d));
    Linear l;
    l.weight = ps.add(n + ".weight", add(mul(rand({dims[i], d}, gen, spec.dtype, spec.device), 2 * bound), -bound));
    l.bias = ps.add(n + ".bias", add(mul(rand({dims[i]}, gen, spec.dtype, spec.device), 2 * bound), -bound));
    m.layers.push_back(l);
    d = dims[i];
  }
  return m;
}

namespace {
bool fused_env() {
  static const bool on = [] {
    const char* e = std::getenv("PE_FUSED");
    return !(e && std::strcmp(e, "0") == 0);
  }();
  return on;
}
}  // namespace

bool fused_kernels(const Device& d) { return d.is_cuda() && fused_env(); }
bool fused_attention(const Device& d) { return fused_env(); }

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_mask, double scale,
                 bool causal) {
  if (!fused_attention(q.device())) return attention_reference(q, k, v, key_mask, scale, causal);
  if (autocast_bf16() && q.dtype() == DType::F32)
    return flash_attention(q.to(DType::BF16), k.to(DType::BF16), v.to(DType::BF16), key_mask, scale, causal)
        .to(DType::F32);
  return flash_attention(q, k, v, key_mask, scale, causal);
}

Tensor attention_varlen(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& cu, int64_t max_len,
                        double scale) {
  PE_CHECK(fused_attention(q.device()), "attention_varlen: the fused attention kernels are off (PE_FUSED=0)");
  if (autocast_bf16() && q.dtype() == DType::F32)
    return flash_attention_varlen(q.to(DType::BF16), k.to(DType::BF16), v.to(DType::BF16), cu, cu, max_len, max_len,
                                  scale)
        .to(DType::F32);
  return flash_attention_varlen(q, k, v, cu, cu, max_len, max_len, scale);
}

Tensor attention_reference(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_mask, double scale,
                           bool causal) {
  PE_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "attention: q, k, v must be [B, L, H, D], got ", q.str(),
           ", ", k.str(), ", ", v.str());
  int64_t B = q.size(0), H = q.size(2), Lk = k.size(1);
  PE_CHECK(k.size(0) == B && v.size(0) == B && k.size(2) == H && v.size(2) == H && k.size(3) == q.size(3) &&
               v.size(1) == Lk,
           "attention: mismatched q ", q.str(), ", k ", k.str(), ", v ", v.str());
  const int64_t Lq = q.size(1);
  Tensor s = matmul(q.permute({0, 2, 1, 3}), k.permute({0, 2, 3, 1}));  // [B, H, Lq, Lk]
  if (scale != 1.0) s = mul(s, scale);
  // Which keys each query sees, 1/0: m [B, 1, 1, Lk] from the key mask, times [Lq, Lk] with causal.
  Tensor m;
  if (key_mask.defined()) {
    PE_CHECK((key_mask.shape() == Shape{B, Lk}), "attention: key mask ", key_mask.str(), " is not [", B, ", ", Lk, "]");
    m = key_mask.dtype() == q.dtype() ? key_mask : key_mask.to(q.dtype());
    m = m.to(q.device()).view({B, 1, 1, Lk});
  }
  if (causal) {
    std::vector<double> c(size_t(Lq * Lk));
    for (int64_t i = 0; i < Lq; ++i)
      for (int64_t j = 0; j < Lk; ++j) c[size_t(i * Lk + j)] = j <= i + (Lk - Lq) ? 1.0 : 0.0;
    Tensor cm = Tensor::from_vector(c, {1, 1, Lq, Lk}).to(q.dtype()).to(q.device());
    m = m.defined() ? mul(m, cm) : cm;
  }
  Tensor row_valid;
  if (m.defined()) {
    // A large finite bias (not -inf) so that a row without any real key stays finite; it is zeroed below.
    s = add(s, mul(add(m, -1.0), 1e30));
    row_valid = gt(sum(m, {3}, true), Tensor::zeros({}, q.dtype(), q.device()));  // [B, 1, Lq or 1, 1]
  }
  Tensor p = softmax(s, -1);
  Tensor o = matmul(p, v.permute({0, 2, 1, 3}));  // [B, H, Lq, D]
  if (row_valid.defined()) o = mul(o, row_valid);
  return o.permute({0, 2, 1, 3});  // [B, Lq, H, D]
}

PackedLayout packed_layout(const Tensor& attention_mask) {
  PackedLayout p;
  const int64_t B = attention_mask.size(0), L = attention_mask.size(1);
  if (B == 0 || L == 0) return p;
  const std::vector<int64_t> m = attention_mask.to(Device::cpu()).to_int_vector();
  p.cu.assign(size_t(B + 1), 0);
  for (int64_t b = 0; b < B; ++b) {
    int64_t n = 0;
    while (n < L && m[size_t(b * L + n)] != 0) ++n;
    for (int64_t l = n; l < L; ++l)
      if (m[size_t(b * L + l)] != 0) return PackedLayout{};  // a hole: not a prefix
    for (int64_t l = 0; l < n; ++l) {
      p.keep.push_back(b * L + l);
      p.pos.push_back(l);
      p.seq.push_back(b);
    }
    p.cu[size_t(b + 1)] = p.cu[size_t(b)] + n;
    p.max_len = std::max(p.max_len, n);
  }
  p.total = p.cu[size_t(B)];
  p.ok = p.total < B * L;  // nothing to drop otherwise
  return p;
}

}  // namespace pe
