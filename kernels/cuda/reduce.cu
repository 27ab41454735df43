// Row reductions, softmax and layer norm. Statistics accumulate in fp32 (fp64 for f64 tensors);
// mean/rstd may be stored as f32, f64 or bf16 whatever the input dtype.
//
// Two launch shapes over rows of length n: a warp per row (4 rows per 128-thread block) when
// n <= 1024 (or n <= 4096 with >= 2048 rows), else a block per row. VEC > 1 reads rows with 16-byte packs when every row start is
// 16-byte aligned. Reductions run in a fixed order, so results repeat bit for bit.
#include <algorithm>
#include <limits>

#include "kernels/cuda/cuda_backend.cuh"

namespace pe::cuda {

namespace {

constexpr int64_t kWarpRowMax = 1024;

template <bool WR>
struct RowCtx {
  int lane, width;       // this thread's index in its row group, threads per row
  int64_t first, step;   // first row of the group, row stride of the grid-stride loop
};
template <bool WR>
__device__ __forceinline__ RowCtx<WR> row_ctx() {
  if constexpr (WR) {
    int rpb = int(blockDim.x >> 5);
    return {int(threadIdx.x & 31), 32, int64_t(blockIdx.x) * rpb + (threadIdx.x >> 5), int64_t(gridDim.x) * rpb};
  } else {
    return {int(threadIdx.x), int(blockDim.x), int64_t(blockIdx.x), int64_t(gridDim.x)};
  }
}
template <bool WR, typename A>
__device__ __forceinline__ A row_sum(A v, A* sh) {
  if constexpr (WR) return warp_sum(v);
  else return block_sum(v, sh);
}
template <bool WR, typename A>
__device__ __forceinline__ A row_max(A v, A* sh) {
  if constexpr (WR) return warp_max(v);
  else return block_max(v, sh, -std::numeric_limits<A>::infinity());
}

// f(i, a_i) over this thread's elements of a row.
template <int VEC, typename T, typename F>
__device__ __forceinline__ void for_row(const T* __restrict__ row, int64_t n, int lane, int width, F&& f) {
  int64_t nv = VEC > 1 ? n / VEC : 0;
  for (int64_t j = lane; j < nv; j += width) {
    Pack<T, VEC> p = reinterpret_cast<const Pack<T, VEC>*>(row)[j];
#pragma unroll
    for (int k = 0; k < VEC; ++k) f(j * VEC + k, to_acc(p.v[k]));
  }
  for (int64_t i = nv * VEC + lane; i < n; i += width) f(i, to_acc(row[i]));
}
// f(i, a_i, b_i) over two rows.
template <int VEC, typename T, typename F>
__device__ __forceinline__ void for_row2(const T* __restrict__ a, const T* __restrict__ b, int64_t n, int lane,
                                         int width, F&& f) {
  int64_t nv = VEC > 1 ? n / VEC : 0;
  for (int64_t j = lane; j < nv; j += width) {
    Pack<T, VEC> pa = reinterpret_cast<const Pack<T, VEC>*>(a)[j];
    Pack<T, VEC> pb = reinterpret_cast<const Pack<T, VEC>*>(b)[j];
#pragma unroll
    for (int k = 0; k < VEC; ++k) f(j * VEC + k, to_acc(pa.v[k]), to_acc(pb.v[k]));
  }
  for (int64_t i = nv * VEC + lane; i < n; i += width) f(i, to_acc(a[i]), to_acc(b[i]));
}
// out_i = f(i, a_i, b_i) (b may alias a when only one input is needed).
template <int VEC, typename T, typename F>
__device__ __forceinline__ void map_row2(T* __restrict__ out, const T* a, const T* b, int64_t n, int lane, int width,
                                         F&& f) {
  int64_t nv = VEC > 1 ? n / VEC : 0;
  for (int64_t j = lane; j < nv; j += width) {
    Pack<T, VEC> pa = reinterpret_cast<const Pack<T, VEC>*>(a)[j];
    Pack<T, VEC> pb = reinterpret_cast<const Pack<T, VEC>*>(b)[j];
    Pack<T, VEC> po;
#pragma unroll
    for (int k = 0; k < VEC; ++k) po.v[k] = from_acc<T>(f(j * VEC + k, to_acc(pa.v[k]), to_acc(pb.v[k])));
    reinterpret_cast<Pack<T, VEC>*>(out)[j] = po;
  }
  for (int64_t i = nv * VEC + lane; i < n; i += width) out[i] = from_acc<T>(f(i, to_acc(a[i]), to_acc(b[i])));
}

// ------------------------------------------------------------------ kernels
template <bool WR, int VEC, typename T>
__global__ void reduce_rows_kernel(ReduceOp op, const T* __restrict__ x, T* __restrict__ out, int64_t rows,
                                   int64_t n) {
  using A = acc_t<T>;
  __shared__ A sh[32];
  RowCtx<WR> c = row_ctx<WR>();
  for (int64_t r = c.first; r < rows; r += c.step) {
    const T* row = x + r * n;
    A res;
    if (op == ReduceOp::Max) {
      A m = -std::numeric_limits<A>::infinity();
      for_row<VEC>(row, n, c.lane, c.width, [&](int64_t, A v) { m = max_nan(m, v); });
      res = row_max<WR>(m, sh);
    } else {
      A s = 0;
      for_row<VEC>(row, n, c.lane, c.width, [&](int64_t, A v) { s += v; });
      res = row_sum<WR>(s, sh);
      if (op == ReduceOp::Mean) res = res / A(n);  // n == 0 gives NaN, as on the CPU
    }
    if (c.lane == 0) out[r] = from_acc<T>(res);
  }
}

// Online softmax: each thread keeps (max, sum of exp(x - max)) of its elements; the row combines them.
template <bool WR, int VEC, typename T>
__global__ void softmax_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t rows, int64_t n, bool log_out) {
  using A = acc_t<T>;
  constexpr A kNegInf = -std::numeric_limits<A>::infinity();
  __shared__ A sh[32];
  RowCtx<WR> c = row_ctx<WR>();
  for (int64_t r = c.first; r < rows; r += c.step) {
    const T* xr = x + r * n;
    A m = kNegInf, s = 0;
    for_row<VEC>(xr, n, c.lane, c.width, [&](int64_t, A v) {
      if (v > m) {
        s = s * m_exp(m - v) + A(1);
        m = v;
      } else if (v != kNegInf) {
        s += m_exp(v - m);
      }
    });
    A mx = row_max<WR>(m, sh);
    A sum = row_sum<WR>(m == kNegInf ? A(0) : s * m_exp(m - mx), sh);
    if (mx == kNegInf) mx = 0;  // fully masked row: as the CPU, 0/0 = NaN rather than inf - inf
    A ls = m_log(sum);
    map_row2<VEC>(y + r * n, xr, xr, n, c.lane, c.width,
                  [&](int64_t, A v, A) { return log_out ? v - mx - ls : m_exp(v - mx) / sum; });
  }
}

template <bool WR, int VEC, typename T>
__global__ void softmax_backward_kernel(const T* __restrict__ y, const T* __restrict__ gy, T* __restrict__ gx,
                                        int64_t rows, int64_t n, bool log_out) {
  using A = acc_t<T>;
  __shared__ A sh[32];
  RowCtx<WR> c = row_ctx<WR>();
  for (int64_t r = c.first; r < rows; r += c.step) {
    const T* yr = y + r * n;
    const T* gr = gy + r * n;
    A dot = 0;
    for_row2<VEC>(yr, gr, n, c.lane, c.width, [&](int64_t, A yv, A gv) { dot += log_out ? gv : gv * yv; });
    dot = row_sum<WR>(dot, sh);
    map_row2<VEC>(gx + r * n, yr, gr, n, c.lane, c.width,
                  [&](int64_t, A yv, A gv) { return log_out ? gv - m_exp(yv) * dot : yv * (gv - dot); });
  }
}

// RES: the input row is s = x + res, rounded to T and written to s first (the residual add fused in);
// every thread then reads back only the elements it wrote, so no barrier is needed.
template <bool WR, int VEC, typename T, bool RES = false>
__global__ void layer_norm_kernel(const T* __restrict__ x, FloatPtr w, FloatPtr b, double eps, T* __restrict__ y,
                                  FloatPtr mean, FloatPtr rstd, int64_t rows, int64_t n, const T* res = nullptr,
                                  T* s = nullptr) {
  using A = acc_t<T>;
  __shared__ A sh[32];
  RowCtx<WR> c = row_ctx<WR>();
  for (int64_t r = c.first; r < rows; r += c.step) {
    const T* xr = x + r * n;
    if constexpr (RES) {
      map_row2<VEC>(s + r * n, xr, res + r * n, n, c.lane, c.width, [](int64_t, A u, A v) { return u + v; });
      xr = s + r * n;
    }
    A s = 0;
    for_row<VEC>(xr, n, c.lane, c.width, [&](int64_t, A v) { s += v; });
    A mu = row_sum<WR>(s, sh) / A(n);
    A q = 0;
    for_row<VEC>(xr, n, c.lane, c.width, [&](int64_t, A v) { q += (v - mu) * (v - mu); });
    A var = row_sum<WR>(q, sh) / A(n);
    A rs = A(1) / m_sqrt(var + A(eps));
    if (c.lane == 0) {
      mean.store(r, mu);
      rstd.store(r, rs);
    }
    map_row2<VEC>(y + r * n, xr, xr, n, c.lane, c.width, [&](int64_t i, A v, A) {
      A o = (v - mu) * rs;
      if (w.p) o *= w.load<A>(i);
      if (b.p) o += b.load<A>(i);
      return o;
    });
  }
}

// gx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = gy * w.
template <bool WR, int VEC, typename T>
__global__ void layer_norm_backward_kernel(const T* __restrict__ x, FloatPtr w, FloatPtr mean, FloatPtr rstd,
                                           const T* __restrict__ gy, T* __restrict__ gx, int64_t rows, int64_t n) {
  using A = acc_t<T>;
  __shared__ A sh[32];
  RowCtx<WR> c = row_ctx<WR>();
  for (int64_t r = c.first; r < rows; r += c.step) {
    const T* xr = x + r * n;
    const T* gr = gy + r * n;
    A mu = mean.load<A>(r), rs = rstd.load<A>(r);
    A sg = 0, sgx = 0;
    for_row2<VEC>(xr, gr, n, c.lane, c.width, [&](int64_t i, A xv, A gv) {
      A g = w.p ? gv * w.load<A>(i) : gv;
      sg += g;
      sgx += g * (xv - mu) * rs;
    });
    A mean_g = row_sum<WR>(sg, sh) / A(n);
    A mean_gx = row_sum<WR>(sgx, sh) / A(n);
    map_row2<VEC>(gx + r * n, xr, gr, n, c.lane, c.width, [&](int64_t i, A xv, A gv) {
      A g = w.p ? gv * w.load<A>(i) : gv;
      return rs * (g - mean_g - (xv - mu) * rs * mean_gx);
    });
  }
}

// Column sums for the weight and bias gradients, deterministic in two steps: block (cx, chunk)
// sums rows [chunk * rows_per_chunk, ...) of 32 columns into partial[chunk, col]; then each column
// adds its chunks in order.
constexpr int kColTile = 32, kColRows = 8;
template <typename T>
__global__ void layer_norm_param_partial_kernel(const T* __restrict__ x, const T* __restrict__ gy, FloatPtr mean,
                                                FloatPtr rstd, acc_t<T>* __restrict__ pw, acc_t<T>* __restrict__ pb,
                                                int64_t rows, int64_t n, int64_t rows_per_chunk) {
  using A = acc_t<T>;
  __shared__ A shw[kColRows][kColTile + 1], shb[kColRows][kColTile + 1];
  int64_t col = int64_t(blockIdx.x) * kColTile + threadIdx.x;
  int64_t r0 = int64_t(blockIdx.y) * rows_per_chunk;
  int64_t r1 = r0 + rows_per_chunk < rows ? r0 + rows_per_chunk : rows;
  A sw = 0, sb = 0;
  if (col < n) {
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kColRows) {
      A g = to_acc(gy[r * n + col]);
      sw += g * (to_acc(x[r * n + col]) - mean.load<A>(r)) * rstd.load<A>(r);
      sb += g;
    }
  }
  shw[threadIdx.y][threadIdx.x] = sw;
  shb[threadIdx.y][threadIdx.x] = sb;
  __syncthreads();
  if (threadIdx.y == 0 && col < n) {
    for (int k = 1; k < kColRows; ++k) {
      sw += shw[k][threadIdx.x];
      sb += shb[k][threadIdx.x];
    }
    pw[int64_t(blockIdx.y) * n + col] = sw;
    pb[int64_t(blockIdx.y) * n + col] = sb;
  }
}

template <typename A>
__global__ void layer_norm_param_final_kernel(const A* __restrict__ pw, const A* __restrict__ pb, int64_t chunks,
                                              int64_t n, FloatPtr gw, FloatPtr gb) {
  int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t col = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; col < n; col += step) {
    A sw = 0, sb = 0;
    for (int64_t k = 0; k < chunks; ++k) {
      sw += pw[k * n + col];
      sb += pb[k * n + col];
    }
    if (gw.p) gw.store(col, sw);
    if (gb.p) gb.store(col, sb);
  }
}

// ------------------------------------------------------------------ launch helpers
// Calls launch(std::bool_constant<warp_row>, std::integral_constant<int, VEC>, grid, threads).
template <typename T, typename F>
void launch_rows(int64_t rows, int64_t n, std::initializer_list<const void*> row_ptrs, F&& launch) {
  constexpr int V = pack_width<T>();
  bool vec = n % V == 0;
  for (const void* p : row_ptrs) vec &= aligned16(p);
  // A warp per row also for rows up to 4096 when there are enough of them to fill the card
  // (no block barriers); the choice depends on the shape only.
  bool warp_row = n <= kWarpRowMax || (n <= 4096 && rows >= 2048);
  int threads = warp_row ? 128 : (n <= 4096 ? 256 : (n <= 16384 ? 512 : 1024));
  int64_t groups = warp_row ? (rows + 3) / 4 : rows;
  int64_t cap = int64_t(sm_count()) * (2048 / threads);  // one full wave; the kernels loop over rows
  unsigned grid = unsigned(groups < cap ? (groups < 1 ? 1 : groups) : cap);
  auto go = [&](auto wr) {
    if (vec) launch(wr, std::integral_constant<int, V>{}, grid, threads);
    else launch(wr, std::integral_constant<int, 1>{}, grid, threads);
  };
  if (warp_row) go(std::true_type{});
  else go(std::false_type{});
}

void check_rows(const char* op, const Tensor& x, std::initializer_list<const Tensor*> same) {
  check_contiguous(x, op, "input");
  PE_CHECK(is_floating(x.dtype()), op, ": expected a floating tensor, got ", x.str());
  for (const Tensor* t : same) {
    check_contiguous(*t, op, "operand");
    PE_CHECK(t->dtype() == x.dtype() && t->numel() == x.numel(), op, ": ", t->str(), " does not match ", x.str());
  }
}

FloatPtr optional_param(const Tensor& t, int64_t n, const char* op, const char* what) {
  if (!t.defined()) return FloatPtr{};
  FloatPtr p = float_ptr(t, op, what);
  PE_CHECK(t.numel() == n, op, ": ", what, " ", t.str(), " does not have ", n, " elements");
  return p;
}

}  // namespace

// ------------------------------------------------------------------ Backend methods
void CudaBackend::reduce_rows(ReduceOp op, const Tensor& x, const Tensor& out) {
  check_rows("reduce", x, {});
  check_contiguous(out, "reduce", "output");
  PE_CHECK(out.dtype() == x.dtype(), "reduce: output ", out.str(), " differs in dtype from ", x.str());
  int64_t rows = out.numel();
  if (rows == 0) return;
  PE_CHECK(x.numel() % rows == 0, "reduce: ", x.str(), " is not [", rows, ", n]");
  int64_t n = x.numel() / rows;
  dispatch_float(x.dtype(), "reduce", [&](auto tag) {
    using T = decltype(tag);
    launch_rows<T>(rows, n, {x.raw_data()}, [&](auto wr, auto vec, unsigned grid, int threads) {
      reduce_rows_kernel<decltype(wr)::value, decltype(vec)::value, T>
          <<<grid, threads, 0, stream()>>>(op, x.data<T>(), out.data<T>(), rows, n);
    });
    PE_CUDA_LAUNCH_CHECK("reduce");
  });
}

void CudaBackend::softmax(const Tensor& x, const Tensor& y, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  check_rows(name, x, {&y});
  int64_t n = x.dim() ? x.size(-1) : 1;
  int64_t rows = n ? x.numel() / n : 0;
  if (rows == 0) return;
  dispatch_float(x.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    launch_rows<T>(rows, n, {x.raw_data(), y.raw_data()}, [&](auto wr, auto vec, unsigned grid, int threads) {
      softmax_kernel<decltype(wr)::value, decltype(vec)::value, T>
          <<<grid, threads, 0, stream()>>>(x.data<T>(), y.data<T>(), rows, n, log);
    });
    PE_CUDA_LAUNCH_CHECK(name);
  });
}

void CudaBackend::softmax_backward(const Tensor& y, const Tensor& gy, const Tensor& gx, bool log) {
  const char* name = log ? "log_softmax_backward" : "softmax_backward";
  check_rows(name, y, {&gy, &gx});
  int64_t n = y.dim() ? y.size(-1) : 1;
  int64_t rows = n ? y.numel() / n : 0;
  if (rows == 0) return;
  dispatch_float(y.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    launch_rows<T>(rows, n, {y.raw_data(), gy.raw_data(), gx.raw_data()},
                   [&](auto wr, auto vec, unsigned grid, int threads) {
                     softmax_backward_kernel<decltype(wr)::value, decltype(vec)::value, T>
                         <<<grid, threads, 0, stream()>>>(y.data<T>(), gy.data<T>(), gx.data<T>(), rows, n, log);
                   });
    PE_CUDA_LAUNCH_CHECK(name);
  });
}

namespace {
// layer_norm (res undefined) and add_layer_norm (s = x + res normalised, s written).
void layer_norm_forward(const char* op, const Tensor& x, const Tensor& res, const Tensor& s, const Tensor& weight,
                        const Tensor& bias, double eps, const Tensor& y, const Tensor& mean, const Tensor& rstd) {
  const bool fused_add = res.defined();
  if (fused_add) check_rows(op, x, {&res, &s, &y});
  else check_rows(op, x, {&y});
  int64_t n = x.size(-1);
  int64_t rows = n ? x.numel() / n : 0;
  if (rows == 0) return;
  FloatPtr w = optional_param(weight, n, op, "weight");
  FloatPtr b = optional_param(bias, n, op, "bias");
  FloatPtr mu = float_ptr(mean, op, "mean"), rs = float_ptr(rstd, op, "rstd");
  PE_CHECK(mean.numel() == rows && rstd.numel() == rows, op, ": statistics ", mean.str(), ", ", rstd.str(),
           " do not have ", rows, " rows");
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    auto go = [&](auto wr, auto vec, unsigned grid, int threads) {
      constexpr bool WR = decltype(wr)::value;
      constexpr int VEC = decltype(vec)::value;
      if (fused_add)
        layer_norm_kernel<WR, VEC, T, true><<<grid, threads, 0, stream()>>>(
            x.data<T>(), w, b, eps, y.data<T>(), mu, rs, rows, n, res.data<T>(), s.data<T>());
      else
        layer_norm_kernel<WR, VEC, T><<<grid, threads, 0, stream()>>>(x.data<T>(), w, b, eps, y.data<T>(), mu, rs,
                                                                      rows, n);
    };
    if (fused_add) launch_rows<T>(rows, n, {x.raw_data(), res.raw_data(), s.raw_data(), y.raw_data()}, go);
    else launch_rows<T>(rows, n, {x.raw_data(), y.raw_data()}, go);
    PE_CUDA_LAUNCH_CHECK(op);
  });
}
}  // namespace

void CudaBackend::layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& y,
                             const Tensor& mean, const Tensor& rstd) {
  layer_norm_forward("layer_norm", x, Tensor(), Tensor(), weight, bias, eps, y, mean, rstd);
}

void CudaBackend::add_layer_norm(const Tensor& x, const Tensor& res, const Tensor& weight, const Tensor& bias,
                                 double eps, const Tensor& s, const Tensor& y, const Tensor& mean, const Tensor& rstd) {
  layer_norm_forward("add_layer_norm", x, res, s, weight, bias, eps, y, mean, rstd);
}

void CudaBackend::layer_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                                      const Tensor& gy, const Tensor& gx, const Tensor& gweight, const Tensor& gbias) {
  check_rows("layer_norm_backward", x, {&gy, &gx});
  int64_t n = x.size(-1);
  int64_t rows = n ? x.numel() / n : 0;
  FloatPtr w = optional_param(weight, n, "layer_norm_backward", "weight");
  FloatPtr gw = optional_param(gweight, n, "layer_norm_backward", "weight gradient");
  FloatPtr gb = optional_param(gbias, n, "layer_norm_backward", "bias gradient");
  if (rows == 0) {
    if (gw.p) fill(gweight, 0.0);
    if (gb.p) fill(gbias, 0.0);
    return;
  }
  FloatPtr mu = float_ptr(mean, "layer_norm_backward", "mean");
  FloatPtr rs = float_ptr(rstd, "layer_norm_backward", "rstd");
  PE_CHECK(mean.numel() == rows && rstd.numel() == rows, "layer_norm_backward: statistics ", mean.str(), ", ",
           rstd.str(), " do not have ", rows, " rows");
  dispatch_float(x.dtype(), "layer_norm_backward", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    launch_rows<T>(rows, n, {x.raw_data(), gy.raw_data(), gx.raw_data()},
                   [&](auto wr, auto vec, unsigned grid, int threads) {
                     layer_norm_backward_kernel<decltype(wr)::value, decltype(vec)::value, T>
                         <<<grid, threads, 0, stream()>>>(x.data<T>(), w, mu, rs, gy.data<T>(), gx.data<T>(), rows, n);
                   });
    PE_CUDA_LAUNCH_CHECK("layer_norm_backward");
    if (!gw.p && !gb.p) return;
    // Chunks depend on the shape only (not on the card), so the sums repeat everywhere.
    int64_t rows_per_chunk = std::max<int64_t>(64, (rows + 1023) / 1024);
    int64_t chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;
    DeviceBuffer partial(size_t(2 * chunks * n) * sizeof(A));
    A* pw = partial.as<A>();
    A* pb = pw + chunks * n;
    dim3 grid(unsigned((n + kColTile - 1) / kColTile), unsigned(chunks));
    layer_norm_param_partial_kernel<T><<<grid, dim3(kColTile, kColRows), 0, stream()>>>(
        x.data<T>(), gy.data<T>(), mu, rs, pw, pb, rows, n, rows_per_chunk);
    PE_CUDA_LAUNCH_CHECK("layer_norm_backward");
    layer_norm_param_final_kernel<A><<<grid_for(n, 256), 256, 0, stream()>>>(pw, pb, chunks, n, gw, gb);
    PE_CUDA_LAUNCH_CHECK("layer_norm_backward");
  });
}

}  // namespace pe::cuda
