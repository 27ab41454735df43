#include "core/tensor.h"

#include <algorithm>
#include <numeric>
#include <sstream>

#include "autograd/graph.h"
#include "autograd/ops.h"
#include "kernels/backend.h"

namespace pe {

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int64_t i = int64_t(s.size()) - 1; i >= 0; --i) {
    st[size_t(i)] = acc;
    acc *= std::max<int64_t>(s[size_t(i)], 1);
  }
  return st;
}

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) return cuda(std::stoi(s.substr(5)));
  PE_FAIL("unknown device '", s, "' (expected cpu, cuda or cuda:N)");
}

Storage::Storage(size_t n, Device d) : nbytes(n), device(d) { data = backend_for(d).allocate(n); }
Storage::~Storage() {
  if (data) backend_for(device).deallocate(data, nbytes);
}

// ------------------------------------------------------------------ construction
static Tensor make_tensor(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) PE_CHECK(d >= 0, "tensor: negative dimension in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  impl->storage = std::make_shared<Storage>(size_t(shape_numel(shape)) * dtype_size(dtype), device);
  return Tensor(impl);
}

Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(impl);
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) { return make_tensor(shape, dtype, device); }
Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = make_tensor(shape, dtype, device);
  if (t.numel()) backend_for(device).fill(t, value);
  return t;
}
Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }
Tensor Tensor::scalar(double value, DType dtype, Device device) { return full({}, value, dtype, device); }

template <typename T>
static Tensor from_host(const std::vector<T>& v, const Shape& shape, DType dtype, Device device) {
  PE_CHECK(int64_t(v.size()) == shape_numel(shape), "from_vector: ", v.size(), " values for shape ",
           shape_str(shape));
  Tensor t = make_tensor(shape, dtype, device);
  if (!v.empty()) backend_for(device).copy_from_host(t.raw_data(), v.data(), v.size() * sizeof(T));
  return t;
}
Tensor Tensor::from_vector(const std::vector<float>& v, const Shape& s, Device d) { return from_host(v, s, DType::F32, d); }
Tensor Tensor::from_vector(const std::vector<double>& v, const Shape& s, Device d) { return from_host(v, s, DType::F64, d); }
Tensor Tensor::from_vector(const std::vector<int64_t>& v, const Shape& s, Device d) { return from_host(v, s, DType::I64, d); }
Tensor Tensor::from_vector(const std::vector<int32_t>& v, const Shape& s, Device d) { return from_host(v, s, DType::I32, d); }
Tensor Tensor::arange(int64_t n, DType dtype, Device device) {
  std::vector<int64_t> v(size_t(std::max<int64_t>(n, 0)));
  std::iota(v.begin(), v.end(), 0);
  Tensor t = from_vector(v, {int64_t(v.size())}, Device::cpu());
  if (dtype != DType::I64) t = t.to(dtype);
  return t.to(device);
}

// ------------------------------------------------------------------ accessors
#define PE_NEED_IMPL() PE_CHECK(impl_, "use of an undefined tensor")
const Shape& Tensor::shape() const { PE_NEED_IMPL(); return impl_->shape; }
const Shape& Tensor::strides() const { PE_NEED_IMPL(); return impl_->strides; }
int64_t Tensor::offset() const { PE_NEED_IMPL(); return impl_->offset; }
int64_t Tensor::numel() const { return shape_numel(shape()); }
DType Tensor::dtype() const { PE_NEED_IMPL(); return impl_->dtype; }
Device Tensor::device() const { PE_NEED_IMPL(); return impl_->storage->device; }
const std::shared_ptr<Storage>& Tensor::storage() const { PE_NEED_IMPL(); return impl_->storage; }
void* Tensor::raw_data() const {
  PE_NEED_IMPL();
  return static_cast<char*>(impl_->storage->data) + impl_->offset * int64_t(dtype_size(impl_->dtype));
}
const std::string& Tensor::name() const { PE_NEED_IMPL(); return impl_->name; }
Tensor& Tensor::set_name(std::string n) { PE_NEED_IMPL(); impl_->name = std::move(n); return *this; }

int64_t Tensor::size(int64_t d) const {
  int64_t n = dim();
  int64_t dd = d < 0 ? d + n : d;
  PE_CHECK(dd >= 0 && dd < n, "size: dim ", d, " out of range for ", str());
  return shape()[size_t(dd)];
}

bool Tensor::is_contiguous() const {
  const Shape& s = shape();
  const Shape& st = strides();
  if (numel() == 0) return true;  // nothing to lay out (contiguous_strides gives such shapes stride 1)
  int64_t acc = 1;
  for (int64_t i = int64_t(s.size()) - 1; i >= 0; --i) {
    if (s[size_t(i)] == 1) continue;
    if (st[size_t(i)] != acc) return false;
    acc *= s[size_t(i)];
  }
  return true;
}

std::string Tensor::str() const {
  if (!impl_) return "undefined";
  std::string s = std::string(dtype_name(dtype())) + shape_str(shape()) + " " + device().str();
  if (!impl_->name.empty()) s = "'" + impl_->name + "' " + s;
  return s;
}

std::vector<double> Tensor::to_double_vector() const {
  Tensor c = to(Device::cpu()).to(DType::F64).contiguous();
  const double* p = c.data<double>();
  return std::vector<double>(p, p + c.numel());
}
std::vector<float> Tensor::to_float_vector() const {
  Tensor c = to(Device::cpu()).to(DType::F32).contiguous();
  const float* p = c.data<float>();
  return std::vector<float>(p, p + c.numel());
}
std::vector<int64_t> Tensor::to_int_vector() const {
  Tensor c = to(Device::cpu()).to(DType::I64).contiguous();
  const int64_t* p = c.data<int64_t>();
  return std::vector<int64_t>(p, p + c.numel());
}
double Tensor::item() const {
  PE_CHECK(numel() == 1, "item: tensor ", str(), " has ", numel(), " elements, expected 1");
  return to_double_vector()[0];
}

// ------------------------------------------------------------------ views
static int64_t wrap_dim(int64_t d, int64_t n, const char* op) {
  int64_t r = d < 0 ? d + n : d;
  PE_CHECK(r >= 0 && r < n, op, ": dim ", d, " out of range for a ", n, "-d tensor");
  return r;
}

// Strides for viewing (shape, strides) as new_shape without copying, if possible (PyTorch's rule).
static bool view_strides(const Shape& shape, const Shape& strides, const Shape& new_shape, Shape& out) {
  out.assign(new_shape.size(), 0);
  if (shape_numel(shape) <= 1) {  // empty or one element: any strides will do
    out = contiguous_strides(new_shape);
    return true;
  }
  int64_t view_d = int64_t(new_shape.size()) - 1;
  int64_t chunk_base_stride = strides.empty() ? 1 : strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = int64_t(shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= shape[size_t(d)];
    if (d == 0 || (shape[size_t(d - 1)] != 1 && strides[size_t(d - 1)] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_shape[size_t(view_d)] == 1)) {
        out[size_t(view_d)] = view_numel * chunk_base_stride;
        view_numel *= new_shape[size_t(view_d)];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        chunk_base_stride = strides[size_t(d - 1)];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

static Shape infer_shape(const Shape& shape, int64_t numel, const char* op) {
  Shape s = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      PE_CHECK(infer < 0, op, ": more than one -1 in ", shape_str(shape));
      infer = int64_t(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) {
    PE_CHECK(known > 0 && numel % known == 0, op, ": cannot infer -1 in ", shape_str(shape), " for ", numel,
             " elements");
    s[size_t(infer)] = numel / known;
  }
  PE_CHECK(shape_numel(s) == numel, op, ": shape ", shape_str(shape), " does not fit ", numel, " elements");
  return s;
}

Tensor Tensor::view(const Shape& new_shape_in) const {
  Shape new_shape = infer_shape(new_shape_in, numel(), "view");
  Shape st;
  PE_CHECK(view_strides(shape(), strides(), new_shape, st), "view: ", str(), " cannot be viewed as ",
           shape_str(new_shape), " without a copy (use reshape)");
  Tensor out = make_view(*this, new_shape, st, offset());
  Shape in_shape = shape();
  return record(out, "view", {*this}, [in_shape](const Tensor& g) { return std::vector<Tensor>{g.reshape(in_shape)}; });
}

Tensor Tensor::reshape(const Shape& new_shape_in) const {
  Shape new_shape = infer_shape(new_shape_in, numel(), "reshape");
  Shape st;
  if (view_strides(shape(), strides(), new_shape, st)) return view(new_shape);
  return contiguous().view(new_shape);
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  int64_t n = dim();
  PE_CHECK(int64_t(dims.size()) == n, "permute: ", dims.size(), " dims given for ", str());
  Shape s(static_cast<size_t>(n)), st(static_cast<size_t>(n));
  std::vector<int64_t> inv(size_t(n), -1);
  for (int64_t i = 0; i < n; ++i) {
    int64_t d = wrap_dim(dims[size_t(i)], n, "permute");
    PE_CHECK(inv[size_t(d)] < 0, "permute: dim ", d, " repeated");
    inv[size_t(d)] = i;
    s[size_t(i)] = shape()[size_t(d)];
    st[size_t(i)] = strides()[size_t(d)];
  }
  Tensor out = make_view(*this, s, st, offset());
  return record(out, "permute", {*this}, [inv](const Tensor& g) { return std::vector<Tensor>{g.permute(inv)}; });
}

Tensor Tensor::transpose(int64_t a, int64_t b) const {
  int64_t n = dim();
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  std::swap(p[size_t(wrap_dim(a, n, "transpose"))], p[size_t(wrap_dim(b, n, "transpose"))]);
  return permute(p);
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  d = wrap_dim(d, dim(), "narrow");
  int64_t sz = shape()[size_t(d)];
  PE_CHECK(start >= 0 && length >= 0 && start + length <= sz, "narrow: [", start, ", ", start + length,
           ") out of range for dim ", d, " of ", str());
  Shape s = shape();
  s[size_t(d)] = length;
  Tensor out = make_view(*this, s, strides(), offset() + start * strides()[size_t(d)]);
  Shape in_shape = shape();
  DType dt = dtype();
  Device dev = device();
  return record(out, "narrow", {*this}, [in_shape, dt, dev, d, start, length](const Tensor& g) {
    Tensor full = Tensor::zeros(in_shape, dt, dev);
    backend_for(dev).copy_strided(g, full.narrow(d, start, length));
    return std::vector<Tensor>{full};
  });
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = wrap_dim(d, dim(), "select");
  if (index < 0) index += shape()[size_t(d)];
  return narrow(d, index, 1).squeeze(d);
}

Tensor Tensor::expand(const Shape& target) const {
  int64_t n = dim(), m = int64_t(target.size());
  PE_CHECK(m >= n, "expand: cannot expand ", str(), " to ", shape_str(target));
  Shape st(static_cast<size_t>(m), 0), s(static_cast<size_t>(m));
  for (int64_t i = m - 1; i >= 0; --i) {
    int64_t j = i - (m - n);
    int64_t want = target[size_t(i)];
    if (j >= 0) {
      int64_t have = shape()[size_t(j)];
      if (want == -1) want = have;
      PE_CHECK(have == want || have == 1, "expand: cannot expand ", str(), " to ", shape_str(target));
      st[size_t(i)] = (have == want) ? strides()[size_t(j)] : 0;
    } else {
      PE_CHECK(want >= 0, "expand: -1 not allowed for new leading dims in ", shape_str(target));
    }
    s[size_t(i)] = want;
  }
  if (s == shape()) return *this;
  Tensor out = make_view(*this, s, st, offset());
  Shape in_shape = shape();
  return record(out, "expand", {*this}, [in_shape](const Tensor& g) { return std::vector<Tensor>{sum_to(g, in_shape)}; });
}

Tensor Tensor::unsqueeze(int64_t d) const {
  int64_t n = dim();
  if (d < 0) d += n + 1;
  PE_CHECK(d >= 0 && d <= n, "unsqueeze: dim out of range for ", str());
  Shape s = shape();
  s.insert(s.begin() + d, 1);
  return view(s);
}

Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d, dim(), "squeeze");
  PE_CHECK(shape()[size_t(d)] == 1, "squeeze: dim ", d, " of ", str(), " is not 1");
  Shape s = shape();
  s.erase(s.begin() + d);
  return view(s);
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor out = Tensor::empty(shape(), dtype(), device());
  if (numel()) backend_for(device()).copy_strided(*this, out);
  return record(out, "clone", {*this}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor Tensor::to(Device dev) const {
  if (dev == device()) return *this;
  Tensor src = contiguous();
  Tensor out = Tensor::empty(shape(), dtype(), dev);
  size_t n = nbytes();
  if (n) {
    if (device().is_cpu()) {
      backend_for(dev).copy_from_host(out.raw_data(), src.raw_data(), n);
    } else if (dev.is_cpu()) {
      backend_for(device()).copy_to_host(out.raw_data(), src.raw_data(), n);
    } else {
      Tensor host = src.detach().to(Device::cpu());
      backend_for(dev).copy_from_host(out.raw_data(), host.raw_data(), n);
    }
  }
  Device from = device();
  return record(out, "to_device", {*this}, [from](const Tensor& g) { return std::vector<Tensor>{g.to(from)}; });
}

Tensor Tensor::to(DType dt) const {
  if (dt == dtype()) return *this;
  Tensor out = Tensor::empty(shape(), dt, device());
  if (numel()) backend_for(device()).copy_strided(*this, out);
  DType from = dtype();
  if (!is_floating(dt) || !is_floating(from)) return out;  // integer casts carry no gradient
  return record(out, "to_dtype", {*this}, [from](const Tensor& g) { return std::vector<Tensor>{g.to(from)}; });
}

// ------------------------------------------------------------------ autograd fields
bool Tensor::requires_grad() const { return impl_ && (impl_->requires_grad || impl_->grad_fn); }
Tensor& Tensor::requires_grad_(bool on) {
  PE_NEED_IMPL();
  PE_CHECK(!impl_->grad_fn, "requires_grad_: ", str(), " is not a leaf");
  PE_CHECK(!on || is_floating(dtype()), "requires_grad_: ", str(), " is not floating point");
  impl_->requires_grad = on;
  return *this;
}
Tensor Tensor::grad() const { PE_NEED_IMPL(); return impl_->grad ? Tensor(impl_->grad) : Tensor(); }
void Tensor::set_grad(const Tensor& g) const { PE_NEED_IMPL(); impl_->grad = g.impl_ptr(); }
void Tensor::zero_grad() const { PE_NEED_IMPL(); impl_->grad.reset(); }
const std::shared_ptr<Node>& Tensor::grad_fn() const { PE_NEED_IMPL(); return impl_->grad_fn; }
void Tensor::set_grad_fn(std::shared_ptr<Node> fn) const { PE_NEED_IMPL(); impl_->grad_fn = std::move(fn); }
void Tensor::backward(const Tensor& grad, bool retain_graph) const { run_backward(*this, grad, retain_graph); }
Tensor Tensor::detach() const { return make_view(*this, shape(), strides(), offset()); }

}  // namespace pe
