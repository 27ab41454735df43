#pragma once
// Tensor: a view (shape, strides, offset, dtype) over shared storage on one device, plus the
// autograd fields. Copying a Tensor copies a handle; views share storage.
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"

namespace pe {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);

// Raw memory on a device. Freed through the allocator of its device when the last view goes.
struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  Device device;
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

struct Node;  // autograd/graph.h
struct TensorImpl;

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories (values are written by the backend of `device`)
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor ones(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor scalar(double value, DType dtype = DType::F32, Device device = Device::cpu());
  // Copies host values; the vector's length must equal the shape's element count.
  static Tensor from_vector(const std::vector<float>& v, const Shape& shape, Device device = Device::cpu());
  static Tensor from_vector(const std::vector<double>& v, const Shape& shape, Device device = Device::cpu());
  static Tensor from_vector(const std::vector<int64_t>& v, const Shape& shape, Device device = Device::cpu());
  static Tensor from_vector(const std::vector<int32_t>& v, const Shape& shape, Device device = Device::cpu());
  static Tensor arange(int64_t n, DType dtype = DType::I64, Device device = Device::cpu());

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  const Shape& strides() const;
  int64_t offset() const;
  int64_t dim() const { return int64_t(shape().size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const;
  DType dtype() const;
  Device device() const;
  bool is_contiguous() const;
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype()); }
  const std::shared_ptr<Storage>& storage() const;
  void* raw_data() const;  // first element of this view
  template <typename T>
  T* data() const { return static_cast<T*>(raw_data()); }
  std::string str() const;  // "f32[2, 3] cpu" for messages
  // Name used in error messages (parameter names, "logits", ...). Not copied to results.
  const std::string& name() const;
  Tensor& set_name(std::string n);

  // ---- host access (copies to a contiguous CPU buffer of the requested type)
  std::vector<double> to_double_vector() const;
  std::vector<float> to_float_vector() const;
  std::vector<int64_t> to_int_vector() const;
  double item() const;  // one-element tensors

  // ---- views and copies (differentiable)
  Tensor reshape(const Shape& shape) const;  // a view when the layout allows, else a copy; one -1 allowed
  Tensor view(const Shape& shape) const;     // must be expressible as a view
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t a, int64_t b) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor select(int64_t dim, int64_t index) const;  // narrow + squeeze
  Tensor expand(const Shape& shape) const;          // broadcast with stride 0
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  Tensor flatten() const { return reshape({numel()}); }
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(Device device) const;
  Tensor to(DType dtype) const;

  // ---- autograd
  bool requires_grad() const;
  Tensor& requires_grad_(bool on = true);  // only on leaves
  Tensor grad() const;                     // accumulated gradient of a leaf (undefined if none)
  void set_grad(const Tensor& g) const;
  void zero_grad() const;  // drops the gradient
  const std::shared_ptr<Node>& grad_fn() const;
  void set_grad_fn(std::shared_ptr<Node> fn) const;
  bool is_leaf() const { return !grad_fn(); }
  // Reverse-mode sweep from this tensor. Scalars need no seed; others need `grad` of equal shape.
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;
  Tensor detach() const;  // same storage, no history

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape, strides;
  int64_t offset = 0;  // in elements
  DType dtype = DType::F32;
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<Node> grad_fn;
  std::string name;
};

// A new view over `base`'s storage (no autograd history).
Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset);

}  // namespace pe
