// Index ops. Accumulating ops run in index order so results are deterministic.
#include <algorithm>
#include <type_traits>
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_common.h"

namespace pe::cpu {

static const int64_t* index_data(const Tensor& idx, const char* op) {
  PE_CHECK(idx.dtype() == DType::I64 && idx.is_contiguous(), op, ": index must be contiguous i64, got ", idx.str());
  return idx.data<int64_t>();
}

void CpuBackend::index_select(const Tensor& x, const Tensor& idx, const Tensor& out) {
  int64_t outer = x.size(0), n = x.size(1), inner = x.size(2), k = idx.numel();
  const int64_t* ip = index_data(idx, "index_select");
  for (int64_t j = 0; j < k; ++j)
    PE_CHECK(ip[j] >= 0 && ip[j] < n, "index_select: index ", ip[j], " out of range [0, ", n, ")");
  dispatch_all(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    T* op_ = out.data<T>();
#pragma omp parallel for schedule(static) if (out.numel() > kParallelGrain)
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < k; ++j)
        for (int64_t i = 0; i < inner; ++i) op_[(o * k + j) * inner + i] = xp[(o * n + ip[j]) * inner + i];
  });
}

void CpuBackend::index_add(const Tensor& dst, const Tensor& idx, const Tensor& src) {
  int64_t outer = dst.size(0), n = dst.size(1), inner = dst.size(2), k = idx.numel();
  const int64_t* ip = index_data(idx, "index_add");
  for (int64_t j = 0; j < k; ++j)
    PE_CHECK(ip[j] >= 0 && ip[j] < n, "index_add: index ", ip[j], " out of range [0, ", n, ")");
  dispatch_float(dst.dtype(), "index_add", [&](auto tag) {
    using T = decltype(tag);
    T* dp = dst.data<T>();
    const T* sp = src.data<T>();
    // Tasks are (outer, chunk of kCols columns); each walks j in order adding contiguous row pieces
    // (vectorised), so every element still accumulates over j in order (deterministic, the same sums
    // as one column at a time, which strided through memory once per column).
    constexpr int64_t kCols = 256;
    const int64_t chunks = (inner + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (src.numel() > kParallelGrain && outer * chunks > 1)
    for (int64_t c = 0; c < outer * chunks; ++c) {
      const int64_t o = c / chunks, i0 = (c % chunks) * kCols, len = std::min(kCols, inner - i0);
      for (int64_t j = 0; j < k; ++j) {
        T* __restrict d = dp + (o * n + ip[j]) * inner + i0;
        const T* __restrict sr = sp + (o * k + j) * inner + i0;
        for (int64_t i = 0; i < len; ++i) d[i] += sr[i];
      }
    }
  });
}

void CpuBackend::gather_rows(const Tensor& x, const Tensor& idx, const Tensor& out) {
  int64_t rows = x.size(0), n = x.size(1), k = idx.size(1);
  const int64_t* ip = index_data(idx, "gather");
  dispatch_all(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    T* op_ = out.data<T>();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < k; ++j) {
        int64_t c = ip[r * k + j];
        PE_CHECK(c >= 0 && c < n, "gather: index ", c, " out of range [0, ", n, ") in row ", r);
        op_[r * k + j] = xp[r * n + c];
      }
  });
}

void CpuBackend::scatter_add_rows(const Tensor& dst, const Tensor& idx, const Tensor& src) {
  int64_t rows = dst.size(0), n = dst.size(1), k = idx.size(1);
  const int64_t* ip = index_data(idx, "scatter_add");
  dispatch_float(dst.dtype(), "scatter_add", [&](auto tag) {
    using T = decltype(tag);
    T* dp = dst.data<T>();
    const T* sp = src.data<T>();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < k; ++j) {
        int64_t c = ip[r * k + j];
        PE_CHECK(c >= 0 && c < n, "scatter_add: index ", c, " out of range [0, ", n, ") in row ", r);
        dp[r * n + c] += sp[r * k + j];
      }
  });
}

void CpuBackend::rotary(const Tensor& x, const Tensor& out, double base, bool inverse, const Tensor& positions) {
  int64_t B = x.size(0), L = x.size(1), H = x.size(2), D = x.size(3), half = D / 2;
  const int64_t* pos = nullptr;
  if (positions.defined()) {
    PE_CHECK(positions.dtype() == DType::I64 && positions.is_contiguous() && positions.numel() == B * L,
             "rotary: positions must be contiguous i64 [", B * L, "], got ", positions.str());
    pos = positions.data<int64_t>();
  }
  // inv_freq[i] = base^(-2i/dim), in double. (Stock transformers builds this buffer in float32, a
  // relative difference of ~1e-7 in the angles; the f64 fixtures use the exact values.)
  std::vector<double> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) inv_freq[size_t(i)] = std::pow(base, -double(2 * i) / double(D));
  int64_t npos = L;  // positions 0 .. npos - 1 occur
  if (pos) {
    npos = 0;
    for (int64_t r = 0; r < B * L; ++r) {
      PE_CHECK(pos[r] >= 0, "rotary: position ", pos[r], " at row ", r, " is negative");
      npos = std::max(npos, pos[r] + 1);
    }
  }
  dispatch_float(x.dtype(), "rotary", [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    T* op_ = out.data<T>();
    const T sign = T(inverse ? -1.0 : 1.0);
    // cos and sin of every (position, frequency) once: a batch repeats each position B times (packed:
    // once per sequence), and sincos was the largest cost of this op. The same expression as a direct
    // evaluation, so the values do not depend on the table.
    std::vector<T> cs(size_t(npos * half * 2));
#pragma omp parallel for schedule(static) if (npos * half > 4096)
    for (int64_t l = 0; l < npos; ++l)
      for (int64_t i = 0; i < half; ++i) {
        T ang = T(double(l)) * T(inv_freq[size_t(i)]);
        cs[size_t(l * half * 2 + i)] = std::cos(ang);  // a position's cosines, then its sines: the loop
        cs[size_t(l * half * 2 + half + i)] = sign * std::sin(ang);  // below reads both contiguously
      }
#pragma omp parallel for schedule(static) if (x.numel() > kParallelGrain)
    for (int64_t bl = 0; bl < B * L; ++bl) {
      const T* row = cs.data() + (pos ? pos[bl] : bl % L) * half * 2;
      for (int64_t h = 0; h < H; ++h) {
        const T* __restrict xr = xp + (bl * H + h) * D;
        T* __restrict orow = op_ + (bl * H + h) * D;
        for (int64_t i = 0; i < half; ++i) {
          const T c = row[i], sn = row[half + i];
          T x1 = xr[i], x2 = xr[i + half];
          orow[i] = x1 * c - x2 * sn;
          orow[i + half] = x2 * c + x1 * sn;
        }
      }
    }
  });
}

void CpuBackend::adam_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                           const AdamParams& p) {
  dispatch_float(param.dtype(), "adam_step", [&](auto tag) {
    using T = decltype(tag);
    T* __restrict w = param.data<T>();
    const T* __restrict g = grad.data<T>();
    T* __restrict mp = m.data<T>();
    T* __restrict vp = v.data<T>();
    int64_t n = param.numel();
    // Loop invariants hoisted so the element loop has no branch and vectorises (f64 and bf16
    // parameters: double arithmetic, the reference's).
    const double bc1 = 1.0 - std::pow(p.beta1, double(p.step));
    const double bc2 = 1.0 - std::pow(p.beta2, double(p.step));
    const double decay = p.decoupled ? 1.0 - p.lr * p.weight_decay : 1.0;  // on the weight (AdamW)
    const double l2 = p.decoupled ? 0.0 : p.weight_decay;                  // into the gradient (Adam)
    const double b1 = p.beta1, b2 = p.beta2, lr = p.lr, eps = p.eps;
    if constexpr (std::is_same_v<T, float>) {
      // f32 parameters: float arithmetic, as the CUDA kernel and PyTorch's Adam compute it; 8 lanes
      // and one division and square root per element (the double loop below was 3.4 % of a
      // quick-start training step on an AVX2 host: 4-wide double division and square root).
      const float fb1 = float(b1), fb2 = float(b2), fdecay = float(decay), fl2 = float(l2), feps = float(eps);
      const float step = float(lr / bc1), inv_sqrt_bc2 = float(1.0 / std::sqrt(bc2));
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain)
      for (int64_t i = 0; i < n; ++i) {
        const float gi = g[i] + fl2 * w[i];
        const float mi = fb1 * mp[i] + (1.0f - fb1) * gi;
        const float vi = fb2 * vp[i] + (1.0f - fb2) * gi * gi;
        mp[i] = mi;
        vp[i] = vi;
        w[i] = w[i] * fdecay - step * mi / (std::sqrt(vi) * inv_sqrt_bc2 + feps);
      }
      return;
    }
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
      double wi = double(w[i]) * decay;
      double gi = double(g[i]) + l2 * double(w[i]);
      double mi = b1 * double(mp[i]) + (1.0 - b1) * gi;
      double vi = b2 * double(vp[i]) + (1.0 - b2) * gi * gi;
      mp[i] = T(mi);
      vp[i] = T(vi);
      w[i] = T(wi - lr * (mi / bc1) / (std::sqrt(vi / bc2) + eps));
    }
  });
}

}  // namespace pe::cpu
