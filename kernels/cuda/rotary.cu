// Rotary embedding, rotate-half convention, positions 0..L-1 or given per row (packed batches). inv_freq = base^(-2i/dim) is computed
// on the host in double and cached on the device per (base, dim); the kernel rounds it to the
// accumulation type (float for f32/bf16, double for f64), as the CPU backend does.
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

#include "kernels/cuda/cuda_backend.cuh"

namespace pe::cuda {

namespace {

__device__ __forceinline__ void m_sincos(float a, float* s, float* c) { sincosf(a, s, c); }
__device__ __forceinline__ void m_sincos(double a, double* s, double* c) { sincos(a, s, c); }
// Products and sums rounded separately (no fused multiply-add), as the CPU computes them.
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }

// One thread per (b*L + l, i < half); the angle is shared by all heads.
template <typename T>
__global__ void rotary_kernel(const T* __restrict__ x, T* __restrict__ out, const double* __restrict__ inv_freq,
                              const int64_t* __restrict__ pos, int64_t BL, int64_t L, int64_t H, int64_t D,
                              acc_t<T> sign) {
  using A = acc_t<T>;
  int64_t half = D / 2, total = BL * half;
  int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    int64_t i = e % half, bl = e / half, l = pos ? pos[bl] : bl % L;
    A ang = mul_rn(A(l), A(inv_freq[i]));
    A s, c;
    m_sincos(ang, &s, &c);
    s = sign * s;
    for (int64_t h = 0; h < H; ++h) {
      int64_t base = (bl * H + h) * D;
      A x1 = to_acc(x[base + i]), x2 = to_acc(x[base + i + half]);
      out[base + i] = from_acc<T>(add_rn(mul_rn(x1, c), -mul_rn(x2, s)));
      out[base + i + half] = from_acc<T>(add_rn(mul_rn(x2, c), mul_rn(x1, s)));
    }
  }
}

// Device copy of inv_freq for (base, dim), built once.
const double* inv_freq_on_device(double base, int64_t D) {
  static std::mutex mu;
  static std::map<std::pair<uint64_t, int64_t>, double*>* cache = new std::map<std::pair<uint64_t, int64_t>, double*>();
  uint64_t base_bits;
  std::memcpy(&base_bits, &base, sizeof(base));
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_pair(base_bits, D);
  auto it = cache->find(key);
  if (it != cache->end()) return it->second;
  int64_t half = D / 2;
  std::vector<double> host(size_t(half > 0 ? half : 1));
  // base^(-2i/D) in double, as kernels/cpu/index.cpp computes it.
  for (int64_t i = 0; i < half; ++i) host[size_t(i)] = std::pow(base, -double(2 * i) / double(D));
  double* dev = nullptr;
  PE_CUDA_CHECK(cudaMalloc(&dev, host.size() * sizeof(double)), "rotary");
  PE_CUDA_CHECK(cudaMemcpy(dev, host.data(), host.size() * sizeof(double), cudaMemcpyHostToDevice), "rotary");
  cache->emplace(key, dev);
  return dev;
}

}  // namespace

void CudaBackend::rotary(const Tensor& x, const Tensor& out, double base, bool inverse, const Tensor& positions) {
  check_contiguous(x, "rotary", "input");
  check_contiguous(out, "rotary", "output");
  PE_CHECK(x.dim() == 4 && x.size(3) % 2 == 0, "rotary: expected [batch, len, heads, even dim], got ", x.str());
  PE_CHECK(out.shape() == x.shape() && out.dtype() == x.dtype(), "rotary: output ", out.str(), " does not match ",
           x.str());
  int64_t B = x.size(0), L = x.size(1), H = x.size(2), D = x.size(3);
  const int64_t* pos = nullptr;
  if (positions.defined()) {
    check_contiguous(positions, "rotary", "positions");
    PE_CHECK(positions.dtype() == DType::I64 && positions.numel() == B * L && positions.device() == x.device(),
             "rotary: positions must be i64 [", B * L, "] on ", x.device().str(), ", got ", positions.str());
    pos = positions.data<int64_t>();
  }
  if (x.numel() == 0) return;
  const double* inv_freq = inv_freq_on_device(base, D);
  dispatch_float(x.dtype(), "rotary", [&](auto tag) {
    using T = decltype(tag);
    int64_t work = B * L * (D / 2);
    rotary_kernel<T><<<grid_for(work, 256), 256, 0, stream()>>>(x.data<T>(), out.data<T>(), inv_freq, pos, B * L, L, H, D,
                                                               acc_t<T>(inverse ? -1.0 : 1.0));
    PE_CUDA_LAUNCH_CHECK("rotary");
  });
}

}  // namespace pe::cuda
