// Row reductions, softmax and layer norm. Statistics accumulate in double: this is the reference.
#include <algorithm>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/cpu/cpu_api.h"

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_common.h"
#include "kernels/cpu/vec_exp.h"

namespace pe::cpu {

void CpuBackend::reduce_rows(ReduceOp op, const Tensor& x, const Tensor& out) {
  dispatch_float(x.dtype(), "reduce", [&](auto tag) {
    using T = decltype(tag);
    int64_t rows = out.numel();
    int64_t n = rows ? x.numel() / rows : 0;
    const T* xp = x.data<T>();
    T* op_ = out.data<T>();
#pragma omp parallel for schedule(static) if (x.numel() > kParallelGrain)
    for (int64_t r = 0; r < rows; ++r) {
      const T* row = xp + r * n;
      if (op == ReduceOp::Max) {
        T m = n ? row[0] : -std::numeric_limits<T>::infinity();
        for (int64_t i = 1; i < n; ++i) m = row[i] > m ? row[i] : m;
        op_[r] = m;
      } else {
        double acc = 0;
        for (int64_t i = 0; i < n; ++i) acc += double(row[i]);
        op_[r] = T(op == ReduceOp::Mean ? (n ? acc / double(n) : std::numeric_limits<double>::quiet_NaN()) : acc);
      }
    }
  });
}

void reduce_leading(ReduceOp op, const Tensor& x, int64_t rows, int64_t cols, const Tensor& out) {
  PE_CHECK(x.device().is_cpu() && x.is_contiguous() && x.numel() == rows * cols && out.is_contiguous() &&
               out.numel() == cols && out.dtype() == x.dtype(),
           "reduce_leading: x ", x.str(), " is not a contiguous [", rows, ", ", cols, "] with an output ", out.str());
  dispatch_float(x.dtype(), "reduce", [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    T* op_ = out.data<T>();
    // Blocks of columns per thread; within a block, rows in order (deterministic sums).
    constexpr int64_t kCols = 256;
    int64_t blocks = (cols + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (x.numel() > kParallelGrain && blocks > 1)
    for (int64_t cb = 0; cb < blocks; ++cb) {
      int64_t c0 = cb * kCols, nc = std::min(kCols, cols - c0);
      if (op == ReduceOp::Max) {
        T m[kCols];
        for (int64_t j = 0; j < nc; ++j) m[j] = rows ? xp[c0 + j] : -std::numeric_limits<T>::infinity();
        for (int64_t r = 1; r < rows; ++r) {
          const T* row = xp + r * cols + c0;
          for (int64_t j = 0; j < nc; ++j) m[j] = row[j] > m[j] ? row[j] : m[j];
        }
        for (int64_t j = 0; j < nc; ++j) op_[c0 + j] = m[j];
      } else {
        double acc[kCols] = {};
        for (int64_t r = 0; r < rows; ++r) {
          const T* row = xp + r * cols + c0;
          for (int64_t j = 0; j < nc; ++j) acc[j] += double(row[j]);
        }
        for (int64_t j = 0; j < nc; ++j)
          op_[c0 + j] = T(op == ReduceOp::Mean ? (rows ? acc[j] / double(rows) : std::numeric_limits<double>::quiet_NaN())
                                               : acc[j]);
      }
    }
  });
}

void CpuBackend::softmax(const Tensor& x, const Tensor& y, bool log) {
  dispatch_float(x.dtype(), log ? "log_softmax" : "softmax", [&](auto tag) {
    using T = decltype(tag);
    int64_t n = x.dim() ? x.size(-1) : 1;
    int64_t rows = n ? x.numel() / n : 0;
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
#pragma omp parallel for schedule(static) if (x.numel() > kParallelGrain)
    for (int64_t r = 0; r < rows; ++r) {
      const T* xr = xp + r * n;
      T* yr = yp + r * n;
      T m = -std::numeric_limits<T>::infinity();
      for (int64_t i = 0; i < n; ++i) m = std::max(m, xr[i]);
      if (m == -std::numeric_limits<T>::infinity()) m = 0;  // fully masked row: avoid inf - inf
      // One exp per element, in T (f32: eight at a time, kernels/cpu/vec_exp.h); the sum accumulates
      // in double.
      double s = 0;
      if constexpr (std::is_same_v<T, float>) {
        for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] - m;
        exp_f32(yr, yr, n);
        for (int64_t i = 0; i < n; ++i) s += double(yr[i]);
      } else {
        for (int64_t i = 0; i < n; ++i) {
          T e = std::exp(xr[i] - m);
          yr[i] = e;
          s += double(e);
        }
      }
      if (log) {
        T ls = T(std::log(s));
        for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] - m - ls;
      } else {
        T inv = T(1.0 / s);
        for (int64_t i = 0; i < n; ++i) yr[i] *= inv;
      }
    }
  });
}

void CpuBackend::softmax_backward(const Tensor& y, const Tensor& gy, const Tensor& gx, bool log) {
  dispatch_float(y.dtype(), "softmax_backward", [&](auto tag) {
    using T = decltype(tag);
    int64_t n = y.dim() ? y.size(-1) : 1;
    int64_t rows = n ? y.numel() / n : 0;
    const T* yp = y.data<T>();
    const T* gp = gy.data<T>();
    T* gxp = gx.data<T>();
#pragma omp parallel for schedule(static) if (y.numel() > kParallelGrain)
    for (int64_t r = 0; r < rows; ++r) {
      const T* yr = yp + r * n;
      const T* gr = gp + r * n;
      T* gxr = gxp + r * n;
      double dot = 0;
      if (log) {
        for (int64_t i = 0; i < n; ++i) dot += double(gr[i]);
        if constexpr (std::is_same_v<T, float>) {
          // softmax = exp(log-softmax) in float, eight at a time (was a double exp per element: 2 % of
          // a quick-start step, for the 4,000-word text head); the rest in double as below.
          exp_f32(yr, gxr, n);
          for (int64_t i = 0; i < n; ++i) gxr[i] = float(double(gr[i]) - double(gxr[i]) * dot);
        } else {
          for (int64_t i = 0; i < n; ++i) gxr[i] = T(double(gr[i]) - std::exp(double(yr[i])) * dot);
        }
      } else {
        for (int64_t i = 0; i < n; ++i) dot += double(gr[i]) * double(yr[i]);
        for (int64_t i = 0; i < n; ++i) gxr[i] = T(double(yr[i]) * (double(gr[i]) - dot));
      }
    }
  });
}

// Sums over i < n in double with 8 independent partial sums (lane k takes i = k mod 8), added
// pairwise at the end: the loop vectorises, where one running sum is a chain of dependent additions
// (layer norm rows were latency-bound on it). The order is fixed: results do not depend on threads.
template <typename F>
inline double lane_sum(int64_t n, F f) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) acc[k] += f(i + k);
  for (int k = 0; i < n; ++i, ++k) acc[k] += f(i);
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}
// Two sums at once, as lane_sum: f(i, a, b) adds its terms to a and b.
template <typename F>
inline void lane_sum2(int64_t n, F f, double& sa, double& sb) {
  double a[8] = {0, 0, 0, 0, 0, 0, 0, 0}, b[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) f(i + k, a[k], b[k]);
  for (int k = 0; i < n; ++i, ++k) f(i, a[k], b[k]);
  sa = ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
  sb = ((b[0] + b[4]) + (b[1] + b[5])) + ((b[2] + b[6]) + (b[3] + b[7]));
}

void CpuBackend::layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& y,
                            const Tensor& mean, const Tensor& rstd) {
  dispatch_float(x.dtype(), "layer_norm", [&](auto tag) {
    using T = decltype(tag);
    int64_t n = x.size(-1);
    int64_t rows = n ? x.numel() / n : 0;
    const T* xp = x.data<T>();
    const T* wp = weight.defined() ? weight.data<T>() : nullptr;
    const T* bp = bias.defined() ? bias.data<T>() : nullptr;
    T* yp = y.data<T>();
    T* mp = mean.data<T>();
    T* rp = rstd.data<T>();
#pragma omp parallel for schedule(static) if (x.numel() > kParallelGrain)
    for (int64_t r = 0; r < rows; ++r) {
      const T* xr = xp + r * n;
      const double mu = lane_sum(n, [&](int64_t i) { return double(xr[i]); }) / double(n);
      const double var = lane_sum(n, [&](int64_t i) {
                           const double c = double(xr[i]) - mu;
                           return c * c;
                         }) / double(n);
      double rs = 1.0 / std::sqrt(var + eps);
      mp[r] = T(mu);
      rp[r] = T(rs);
      if constexpr (std::is_same_v<T, float>) {
        // f32: statistics in double above, the normalisation in float (8 lanes, not 4; within 2 ulp of
        // the double expression).
        const float muf = float(mu), rsf = float(rs);
        float* yr = yp + r * n;
        if (wp && bp)
          for (int64_t i = 0; i < n; ++i) yr[i] = (xr[i] - muf) * rsf * wp[i] + bp[i];
        else
          for (int64_t i = 0; i < n; ++i) {
            float v = (xr[i] - muf) * rsf;
            if (wp) v *= wp[i];
            if (bp) v += bp[i];
            yr[i] = v;
          }
      } else {
        for (int64_t i = 0; i < n; ++i) {
          double v = (double(xr[i]) - mu) * rs;
          if (wp) v *= double(wp[i]);
          if (bp) v += double(bp[i]);
          yp[r * n + i] = T(v);
        }
      }
    }
  });
}

void CpuBackend::add_layer_norm(const Tensor& x, const Tensor& r, const Tensor& weight, const Tensor& bias, double eps,
                                const Tensor& s, const Tensor& y, const Tensor& mean, const Tensor& rstd) {
  binary(BinaryOp::Add, x, r, s);
  layer_norm(s, weight, bias, eps, y, mean, rstd);
}

void CpuBackend::layer_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                                     const Tensor& gy, const Tensor& gx, const Tensor& gweight, const Tensor& gbias) {
  dispatch_float(x.dtype(), "layer_norm_backward", [&](auto tag) {
    using T = decltype(tag);
    int64_t n = x.size(-1);
    int64_t rows = n ? x.numel() / n : 0;
    const T* xp = x.data<T>();
    const T* wp = weight.defined() ? weight.data<T>() : nullptr;
    const T* mp = mean.data<T>();
    const T* rp = rstd.data<T>();
    const T* gp = gy.data<T>();
    T* gxp = gx.data<T>();
#pragma omp parallel for schedule(static) if (x.numel() > kParallelGrain)
    for (int64_t r = 0; r < rows; ++r) {
      const T* xr = xp + r * n;
      const T* gr = gp + r * n;
      double mu = double(mp[r]), rs = double(rp[r]);
      double mean_g = 0, mean_gx = 0;  // mean(g), mean(g * xhat) with g = gy * w
      lane_sum2(
          n,
          [&](int64_t i, double& a, double& b) {
            const double g = double(gr[i]) * (wp ? double(wp[i]) : 1.0);
            a += g;
            b += g * ((double(xr[i]) - mu) * rs);
          },
          mean_g, mean_gx);
      mean_g /= double(n);
      mean_gx /= double(n);
      for (int64_t i = 0; i < n; ++i) {
        double g = double(gr[i]) * (wp ? double(wp[i]) : 1.0);
        double xh = (double(xr[i]) - mu) * rs;
        gxp[r * n + i] = T(rs * (g - mean_g - xh * mean_gx));
      }
    }
    // Parameter gradients: column sums over rows, read row by row (not down the columns). Rows go in
    // fixed blocks of kLnRowBlock whose partial sums are added in block order, so the result does not
    // depend on the thread count.
    if (gweight.defined() || gbias.defined()) {
      T* gwp = gweight.defined() ? gweight.data<T>() : nullptr;
      T* gbp = gbias.defined() ? gbias.data<T>() : nullptr;
      constexpr int64_t kLnRowBlock = 256;
      const int64_t nblocks = (rows + kLnRowBlock - 1) / kLnRowBlock;
      std::vector<double> part(size_t(std::max<int64_t>(nblocks, 1) * 2 * n), 0.0);
#pragma omp parallel for schedule(static) if (x.numel() > kParallelGrain)
      for (int64_t blk = 0; blk < nblocks; ++blk) {
        double* sw = part.data() + blk * 2 * n;
        double* sb = sw + n;
        const int64_t r1 = std::min(rows, (blk + 1) * kLnRowBlock);
        for (int64_t r = blk * kLnRowBlock; r < r1; ++r) {
          const T* xr = xp + r * n;
          const T* gr = gp + r * n;
          const double mu = double(mp[r]), rs = double(rp[r]);
          for (int64_t i = 0; i < n; ++i) {
            const double g = double(gr[i]);
            sw[i] += g * ((double(xr[i]) - mu) * rs);
            sb[i] += g;
          }
        }
      }
      for (int64_t i = 0; i < n; ++i) {
        double sw = 0, sb = 0;
        for (int64_t blk = 0; blk < nblocks; ++blk) {
          sw += part[size_t(blk * 2 * n + i)];
          sb += part[size_t(blk * 2 * n + n + i)];
        }
        if (gwp) gwp[i] = T(sw);
        if (gbp) gbp[i] = T(sb);
      }
    }
  });
}

}  // namespace pe::cpu
