// Index ops. Accumulating ops are deterministic without float atomics: either each thread owns
// one output column and adds its sources in index order, or the (target, source) pairs are
// stably sorted by target and each target sums its run of sources in source order. Both give the
// CPU backend's order of additions. Indices out of range are reported through the error sink.
#include <cub/device/device_radix_sort.cuh>

#include "kernels/cuda/cuda_backend.cuh"

namespace pe::cuda {

namespace {

// ------------------------------------------------------------------ index_select
// One block row per (o, j): copies `words` words of the selected row; W is uint4 when rows are
// 16-byte multiples and aligned, else the element type.
template <typename W>
__global__ void index_select_rows_kernel(const W* __restrict__ x, const int64_t* __restrict__ idx, W* __restrict__ out,
                                         int64_t outer, int64_t n, int64_t k, int64_t words, ErrorSink sink) {
  for (int64_t r = blockIdx.y; r < outer * k; r += gridDim.y) {
    int64_t j = r % k, o = r / k;
    int64_t src = idx[j];
    if (src < 0 || src >= n) {
      if (threadIdx.x == 0 && blockIdx.x == 0) report_index_error(sink, DeviceErrorOp::IndexSelect, src, n, j);
      continue;
    }
    const W* xs = x + (o * n + src) * words;
    W* os = out + r * words;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < words; i += int64_t(gridDim.x) * blockDim.x)
      os[i] = xs[i];
  }
}

// Narrow rows (inner < 32): one thread per output element.
template <typename T>
__global__ void index_select_flat_kernel(const T* __restrict__ x, const int64_t* __restrict__ idx, T* __restrict__ out,
                                         int64_t total, int64_t n, int64_t k, int64_t inner, ErrorSink sink) {
  int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    int64_t i = e % inner, t = e / inner;
    int64_t j = t % k, o = t / k;
    int64_t src = idx[j];
    if (src < 0 || src >= n) {
      report_index_error(sink, DeviceErrorOp::IndexSelect, src, n, j);
      continue;
    }
    out[e] = x[(o * n + src) * inner + i];
  }
}

// ------------------------------------------------------------------ index_add
// Column path: thread (o, i) adds src[o, j, i] into dst[o, idx[j], i] for j = 0, 1, ... in order.
template <typename T>
__global__ void index_add_columns_kernel(T* __restrict__ dst, const int64_t* __restrict__ idx,
                                         const T* __restrict__ src, int64_t outer, int64_t n, int64_t k, int64_t inner,
                                         ErrorSink sink) {
  int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < outer * inner; c += step) {
    int64_t o = c / inner, i = c % inner;
    for (int64_t j = 0; j < k; ++j) {
      int64_t t = idx[j];
      if (t < 0 || t >= n) {
        report_index_error(sink, DeviceErrorOp::IndexAdd, t, n, j);
        continue;
      }
      T* d = dst + (o * n + t) * inner + i;
      *d = from_acc<T>(to_acc(*d) + to_acc(src[(o * k + j) * inner + i]));
    }
  }
}

// Sorted path: keys[p] are the targets sorted stably, perm[p] their source positions. The block
// for the first p of each run sums the run, in source order, into 128 columns of (o, target).
constexpr int kSegThreads = 128;
template <typename T>
__global__ void index_add_sorted_kernel(T* __restrict__ dst, const int64_t* __restrict__ keys,
                                        const int64_t* __restrict__ perm, const T* __restrict__ src, int64_t outer,
                                        int64_t n, int64_t k, int64_t inner) {
  int64_t col_blocks = (inner + kSegThreads - 1) / kSegThreads;
  for (int64_t p = blockIdx.x; p < k; p += gridDim.x) {
    int64_t t = keys[p];
    if ((p > 0 && keys[p - 1] == t) || t < 0 || t >= n) continue;  // not a run head, or reported invalid
    for (int64_t y = blockIdx.y; y < outer * col_blocks; y += gridDim.y) {
      int64_t o = y / col_blocks, i = (y % col_blocks) * kSegThreads + threadIdx.x;
      if (i >= inner) continue;
      T* d = dst + (o * n + t) * inner + i;
      acc_t<T> acc = to_acc(*d);
      for (int64_t q = p; q < k && keys[q] == t; ++q) acc += to_acc(src[(o * k + perm[q]) * inner + i]);
      *d = from_acc<T>(acc);
    }
  }
}

// ------------------------------------------------------------------ gather / scatter_add along rows
template <typename T>
__global__ void gather_rows_kernel(const T* __restrict__ x, const int64_t* __restrict__ idx, T* __restrict__ out,
                                   int64_t total, int64_t n, int64_t k, ErrorSink sink) {
  int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    int64_t c = idx[e];
    if (c < 0 || c >= n) {
      report_index_error(sink, DeviceErrorOp::Gather, c, n, e);
      continue;
    }
    out[e] = x[(e / k) * n + c];
  }
}

// k == 1: one source per row, so no two threads share a target.
template <typename T>
__global__ void scatter_add_single_kernel(T* __restrict__ dst, const int64_t* __restrict__ idx,
                                          const T* __restrict__ src, int64_t rows, int64_t n, ErrorSink sink) {
  int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; r < rows; r += step) {
    int64_t c = idx[r];
    if (c < 0 || c >= n) {
      report_index_error(sink, DeviceErrorOp::ScatterAdd, c, n, r);
      continue;
    }
    T* d = dst + r * n + c;
    *d = from_acc<T>(to_acc(*d) + to_acc(src[r]));
  }
}

// keys[e] = row * n + idx[e] (the flat target; `limit` = rows * n marks an invalid index),
// values[e] = e.
__global__ void scatter_keys_kernel(const int64_t* __restrict__ idx, int64_t* __restrict__ keys,
                                    int64_t* __restrict__ vals, int64_t total, int64_t n, int64_t k, int64_t limit,
                                    ErrorSink sink) {
  int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    int64_t c = idx[e];
    bool ok = c >= 0 && c < n;
    if (!ok) report_index_error(sink, DeviceErrorOp::ScatterAdd, c, n, e);
    keys[e] = ok ? (e / k) * n + c : limit;
    vals[e] = e;
  }
}

template <typename T>
__global__ void scatter_add_sorted_kernel(T* __restrict__ dst, const int64_t* __restrict__ keys,
                                          const int64_t* __restrict__ perm, const T* __restrict__ src, int64_t total,
                                          int64_t limit) {
  int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < total; p += step) {
    int64_t t = keys[p];
    if (t >= limit || (p > 0 && keys[p - 1] == t)) continue;
    acc_t<T> acc = to_acc(dst[t]);
    for (int64_t q = p; q < total && keys[q] == t; ++q) acc += to_acc(src[perm[q]]);
    dst[t] = from_acc<T>(acc);
  }
}

__global__ void iota_kernel(int64_t* __restrict__ v, int64_t count) {
  int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < count; e += step) v[e] = e;
}

__global__ void check_index_kernel(const int64_t* __restrict__ idx, int64_t count, int64_t n, ErrorSink sink,
                                   DeviceErrorOp op) {
  int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < count; e += step)
    if (idx[e] < 0 || idx[e] >= n) report_index_error(sink, op, idx[e], n, e);
}

// Bits that hold keys in [0, n). With an invalid (negative) index among the keys the order is
// unspecified, but that op raises its range error anyway.
int bits_for(int64_t n) {
  int b = 1;
  while (b < 63 && (int64_t(1) << b) < n) ++b;
  return b;
}

// Stable radix sort of (keys_in, vals_in) on the low `end_bit` bits into the returned buffers.
struct SortedPairs {
  DeviceBuffer keys, vals;
  SortedPairs(int64_t count) : keys(size_t(count) * 8), vals(size_t(count) * 8) {}
};
void sort_pairs(const int64_t* keys_in, const int64_t* vals_in, SortedPairs& out, int64_t count, int end_bit,
                const char* op) {
  size_t temp_bytes = 0;
  PE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys_in, out.keys.as<int64_t>(), vals_in,
                                                out.vals.as<int64_t>(), count, 0, end_bit, stream()),
                op);
  DeviceBuffer temp(temp_bytes);
  PE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.ptr, temp_bytes, keys_in, out.keys.as<int64_t>(), vals_in,
                                                out.vals.as<int64_t>(), count, 0, end_bit, stream()),
                op);
}

const int64_t* index_ptr(const Tensor& idx, const char* op) {
  check_contiguous(idx, op, "index");
  PE_CHECK(idx.dtype() == DType::I64, op, ": index must be contiguous i64, got ", idx.str());
  return idx.data<int64_t>();
}

unsigned grid_y(int64_t rows) { return unsigned(rows < 65535 ? (rows < 1 ? 1 : rows) : 65535); }

}  // namespace

// ------------------------------------------------------------------ Backend methods
void CudaBackend::index_select(const Tensor& x, const Tensor& idx, const Tensor& out) {
  check_contiguous(x, "index_select", "input");
  check_contiguous(out, "index_select", "output");
  const int64_t* ip = index_ptr(idx, "index_select");
  PE_CHECK(x.dim() == 3 && out.dim() == 3, "index_select: expected [outer, n, inner] tensors, got ", x.str(), ", ",
           out.str());
  int64_t outer = x.size(0), n = x.size(1), inner = x.size(2), k = idx.numel();
  PE_CHECK(out.dtype() == x.dtype() && out.size(0) == outer && out.size(1) == k && out.size(2) == inner,
           "index_select: output ", out.str(), " does not match ", x.str(), " and ", k, " indices");
  if (out.numel() == 0) return;
  ErrorSink sink = error_sink();
  size_t row_bytes = size_t(inner) * dtype_size(x.dtype());
  if (row_bytes % 16 == 0 && aligned16(x.raw_data()) && aligned16(out.raw_data())) {
    int64_t words = int64_t(row_bytes / 16);
    int threads = words >= 256 ? 256 : int((words + 31) / 32 * 32);
    dim3 grid(unsigned((words + threads - 1) / threads), grid_y(outer * k));
    index_select_rows_kernel<uint4><<<grid, threads, 0, stream()>>>(static_cast<const uint4*>(x.raw_data()), ip,
                                                                     static_cast<uint4*>(out.raw_data()), outer, n, k,
                                                                     words, sink);
    PE_CUDA_LAUNCH_CHECK("index_select");
    return;
  }
  dispatch_all(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (inner >= 32) {
      int threads = inner >= 256 ? 256 : int((inner + 31) / 32 * 32);
      dim3 grid(unsigned((inner + threads - 1) / threads), grid_y(outer * k));
      index_select_rows_kernel<T><<<grid, threads, 0, stream()>>>(x.data<T>(), ip, out.data<T>(), outer, n, k, inner,
                                                                  sink);
    } else {
      int64_t total = out.numel();
      index_select_flat_kernel<T><<<grid_for(total, 256), 256, 0, stream()>>>(x.data<T>(), ip, out.data<T>(), total,
                                                                              n, k, inner, sink);
    }
    PE_CUDA_LAUNCH_CHECK("index_select");
  });
}

void CudaBackend::index_add(const Tensor& dst, const Tensor& idx, const Tensor& src) {
  check_contiguous(dst, "index_add", "destination");
  check_contiguous(src, "index_add", "source");
  const int64_t* ip = index_ptr(idx, "index_add");
  PE_CHECK(dst.dim() == 3 && src.dim() == 3, "index_add: expected [outer, n, inner] tensors, got ", dst.str(), ", ",
           src.str());
  int64_t outer = dst.size(0), n = dst.size(1), inner = dst.size(2), k = idx.numel();
  PE_CHECK(src.dtype() == dst.dtype() && src.size(0) == outer && src.size(1) == k && src.size(2) == inner,
           "index_add: source ", src.str(), " does not match ", dst.str(), " and ", k, " indices");
  if (src.numel() == 0) return;
  ErrorSink sink = error_sink();
  dispatch_float(dst.dtype(), "index_add", [&](auto tag) {
    using T = decltype(tag);
    // Enough independent columns: each thread walks j in order. Otherwise (few columns, e.g. an
    // embedding gradient, or bf16, which should round once per target) sort by target.
    if (outer * inner >= 8192 && !std::is_same_v<T, bf16_t>) {
      index_add_columns_kernel<T><<<grid_for(outer * inner, 256), 256, 0, stream()>>>(dst.data<T>(), ip,
                                                                                      src.data<T>(), outer, n, k,
                                                                                      inner, sink);
      PE_CUDA_LAUNCH_CHECK("index_add");
      return;
    }
    check_index_kernel<<<grid_for(k, 256), 256, 0, stream()>>>(ip, k, n, sink, DeviceErrorOp::IndexAdd);
    PE_CUDA_LAUNCH_CHECK("index_add");
    DeviceBuffer positions(size_t(k) * 8);
    iota_kernel<<<grid_for(k, 256), 256, 0, stream()>>>(positions.as<int64_t>(), k);
    PE_CUDA_LAUNCH_CHECK("index_add");
    SortedPairs sorted(k);
    sort_pairs(ip, positions.as<int64_t>(), sorted, k, bits_for(n), "index_add");
    int64_t col_blocks = (inner + kSegThreads - 1) / kSegThreads;
    dim3 grid(unsigned(k < (int64_t(1) << 31) - 1 ? k : (int64_t(1) << 31) - 1), grid_y(outer * col_blocks));
    index_add_sorted_kernel<T><<<grid, kSegThreads, 0, stream()>>>(dst.data<T>(), sorted.keys.as<int64_t>(),
                                                                   sorted.vals.as<int64_t>(), src.data<T>(), outer, n,
                                                                   k, inner);
    PE_CUDA_LAUNCH_CHECK("index_add");
  });
}

void CudaBackend::gather_rows(const Tensor& x, const Tensor& idx, const Tensor& out) {
  check_contiguous(x, "gather", "input");
  check_contiguous(out, "gather", "output");
  const int64_t* ip = index_ptr(idx, "gather");
  PE_CHECK(x.dim() == 2 && idx.dim() == 2 && out.dim() == 2 && idx.size(0) == x.size(0) &&
               out.shape() == idx.shape() && out.dtype() == x.dtype(),
           "gather: expected x [rows, n], idx and out [rows, k], got ", x.str(), ", ", idx.str(), ", ", out.str());
  int64_t n = x.size(1), k = idx.size(1), total = out.numel();
  if (total == 0) return;
  ErrorSink sink = error_sink();
  dispatch_all(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    gather_rows_kernel<T><<<grid_for(total, 256), 256, 0, stream()>>>(x.data<T>(), ip, out.data<T>(), total, n, k,
                                                                      sink);
    PE_CUDA_LAUNCH_CHECK("gather");
  });
}

void CudaBackend::scatter_add_rows(const Tensor& dst, const Tensor& idx, const Tensor& src) {
  check_contiguous(dst, "scatter_add", "destination");
  check_contiguous(src, "scatter_add", "source");
  const int64_t* ip = index_ptr(idx, "scatter_add");
  PE_CHECK(dst.dim() == 2 && idx.dim() == 2 && src.shape() == idx.shape() && idx.size(0) == dst.size(0) &&
               src.dtype() == dst.dtype(),
           "scatter_add: expected dst [rows, n], idx and src [rows, k], got ", dst.str(), ", ", idx.str(), ", ",
           src.str());
  int64_t rows = dst.size(0), n = dst.size(1), k = idx.size(1), total = src.numel();
  if (total == 0) return;
  ErrorSink sink = error_sink();
  dispatch_float(dst.dtype(), "scatter_add", [&](auto tag) {
    using T = decltype(tag);
    if (k == 1) {
      scatter_add_single_kernel<T><<<grid_for(rows, 256), 256, 0, stream()>>>(dst.data<T>(), ip, src.data<T>(), rows,
                                                                              n, sink);
      PE_CUDA_LAUNCH_CHECK("scatter_add");
      return;
    }
    DeviceBuffer keys(size_t(total) * 8), positions(size_t(total) * 8);
    int64_t limit = rows * n;
    scatter_keys_kernel<<<grid_for(total, 256), 256, 0, stream()>>>(ip, keys.as<int64_t>(), positions.as<int64_t>(),
                                                                    total, n, k, limit, sink);
    PE_CUDA_LAUNCH_CHECK("scatter_add");
    SortedPairs sorted(total);
    sort_pairs(keys.as<int64_t>(), positions.as<int64_t>(), sorted, total, bits_for(limit + 1), "scatter_add");
    scatter_add_sorted_kernel<T><<<grid_for(total, 256), 256, 0, stream()>>>(
        dst.data<T>(), sorted.keys.as<int64_t>(), sorted.vals.as<int64_t>(), src.data<T>(), total, limit);
    PE_CUDA_LAUNCH_CHECK("scatter_add");
  });
}

}  // namespace pe::cuda
