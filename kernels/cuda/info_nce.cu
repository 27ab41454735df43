// The tiled softmax cross-entropy engine behind InfoNCE (this file's Backend methods) and masked
// cross-entropy (masked_ce.cu): rows x [R, D] against columns y [C, D], logits
// z_ij = a x_i . y_j (+ bias_j) formed tile by tile and never stored, so memory is O((R + C) D).
//
// forward   one pass over column tiles per row block with a running max and sum (online
//           log-sum-exp), over all columns and over the positives: stats [R, 2], loss [R].
// backward  with w_r = g row_weight, w_c = g col_weight and the column statistics optional,
//             G_ij = w_r (e^(z_ij - lse_i) - pos_ij e^(z_ij - lsep_i)) + w_c (e^(z_ij - lse'_j) - pos_ij e^(z_ij -
//             lsep'_j)),
//           two passes of one kernel: "outer" blocks of rows looping over column tiles give
//           dx_i = a sum_j G_ij y_j and dlog(a)_i = sum_j G_ij (z_ij - bias_j); the same kernel with
//           rows and columns swapped gives dy_j = a sum_i G_ij x_i and dbias_j = sum_i G_ij. Each output
//           row has one writer (or, for few outer blocks, a fixed split of the inner loop summed in
//           order afterwards): deterministic, no atomics.
// Single-device InfoNCE (fused_info_nce) runs the forward twice (p->t, and t->p which gives the
// column statistics) and the backward once with both terms: 6 GEMM-sized products instead of 10.
//
// Two implementations of each kernel:
//   simple  every dtype (f32, f64, bf16 with fp32 math), any D: a warp per outer row, lanes over D,
//           one inner row at a time (the reference on the GPU).
//   mma     bf16 with D % 8 == 0: tensor cores (mma.sync m16n8k16 bf16 -> fp32), 64-column tiles,
//           D in chunks of 64. The backward keeps the [32, D-slice] output block of a CTA in
//           registers (up to 512 columns; wider D runs several slices, each recomputing z) and
//           passes G through shared memory as bf16.
// PE_FUSED_SIMPLE=1 in the environment forces the simple kernels.
#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "kernels/cuda/cuda_backend.cuh"
#include "kernels/cuda/mma.cuh"

namespace pe::cuda {

namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

bool force_simple() {
  const char* v = std::getenv("PE_FUSED_SIMPLE");
  return v && *v && std::strcmp(v, "0") != 0;
}

// One pass seen from its outer side (the rows whose outputs a warp or CTA owns) and inner side.
struct XentView {
  const void* outer = nullptr;  // [n_out, D]
  const void* inner = nullptr;  // [n_in, D]
  int64_t n_out = 0, n_in = 0, D = 0;
  FloatPtr bias;  // [n_in], or [n_out] when bias_outer; null: no bias
  bool bias_outer = false;
  const int64_t* out_key = nullptr;  // key(o) = out_key ? out_key[o] : out_key_off + o
  const int64_t* in_key = nullptr;
  int64_t out_key_off = 0, in_key_off = 0;
  FloatPtr log_scale;  // a = exp(min(log_scale, max_log_scale)); null: a = 1
  double max_log_scale = 0;
  // backward only: statistics [n, 2] in the accumulation type (null: that term is absent)
  const void* out_stats = nullptr;
  const void* in_stats = nullptr;
  FloatPtr gloss;
  double w_out = 0, w_in = 0;

  __device__ __forceinline__ int64_t okey(int64_t o) const { return out_key ? out_key[o] : out_key_off + o; }
  __device__ __forceinline__ int64_t ikey(int64_t n) const { return in_key ? in_key[n] : in_key_off + n; }
  template <typename A>
  __device__ __forceinline__ A alpha() const {
    if (!log_scale.p) return A(1);
    double s = log_scale.load_d(0);
    return A(exp(s < max_log_scale ? s : max_log_scale));
  }
};

// ================================================================== simple kernels
template <typename A>
__device__ __forceinline__ void online_add(A& m, A& l, A z) {
  if (z > m) {
    l = l * m_exp(m - z) + A(1);
    m = z;
  } else {
    l += m_exp(z - m);
  }
}

// A warp per outer row (grid-stride), 128 threads.
template <typename T>
__global__ void __launch_bounds__(128)
    xent_stats_simple(XentView v, acc_t<T>* __restrict__ stats, acc_t<T>* __restrict__ loss) {
  using A = acc_t<T>;
  const T* X = static_cast<const T*>(v.outer);
  const T* Y = static_cast<const T*>(v.inner);
  const int lane = threadIdx.x & 31;
  const A a = v.alpha<A>();
  const int64_t step = int64_t(gridDim.x) * 4;
  for (int64_t o = int64_t(blockIdx.x) * 4 + (threadIdx.x >> 5); o < v.n_out; o += step) {
    const T* xo = X + o * v.D;
    const int64_t ko = v.okey(o);
    A m = -std::numeric_limits<A>::infinity(), l = 0, mp = m, lp = 0;
    for (int64_t n = 0; n < v.n_in; ++n) {
      const T* yn = Y + n * v.D;
      A dot = 0;
      for (int64_t d = lane; d < v.D; d += 32) dot += to_acc(xo[d]) * to_acc(yn[d]);
      A z = a * warp_sum(dot) + (v.bias.p ? v.bias.load<A>(n) : A(0));
      online_add(m, l, z);
      if (v.ikey(n) == ko) online_add(mp, lp, z);
    }
    if (lane == 0) {
      A lse = m + m_log(l), lsep = lp > A(0) ? mp + m_log(lp) : -std::numeric_limits<A>::infinity();
      stats[2 * o] = lse;
      stats[2 * o + 1] = lsep;
      loss[o] = lse - lsep;
    }
  }
}

// Accumulator of the simple gradient kernel's sums over all inner rows (30,522 for a BERT
// vocabulary): fp64 for f32/f64 inputs, so that the f32 result keeps f32 accuracy however long the
// sum; fp32 for bf16 (whose rounding dominates). The exponentials stay in acc_t.
template <typename T>
using grad_sum_t = std::conditional_t<std::is_same_v<T, bf16_t>, float, double>;

// A warp per outer row; its output accumulator (grad_sum_t) lives in dynamic shared memory
// (warps per block x D values). gsum/gzsum (any floating dtype, may be null): sum_n G and sum_n G (z - bias).
template <typename T>
__global__ void xent_grad_simple(XentView v, T* __restrict__ gout, FloatPtr gsum, FloatPtr gzsum) {
  using A = acc_t<T>;
  using S = grad_sum_t<T>;
  extern __shared__ __align__(16) unsigned char smem[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t o = int64_t(blockIdx.x) * (blockDim.x >> 5) + warp;
  if (o >= v.n_out) return;
  S* acc = reinterpret_cast<S*>(smem) + int64_t(warp) * v.D;  // lane-owned entries only: no sync needed
  for (int64_t d = lane; d < v.D; d += 32) acc[d] = 0;
  const T* X = static_cast<const T*>(v.outer);
  const T* Y = static_cast<const T*>(v.inner);
  const A a = v.alpha<A>(), gl = v.gloss.load<A>(0);
  const A wo = gl * A(v.w_out), wi = gl * A(v.w_in);
  const A* so = v.out_stats ? static_cast<const A*>(v.out_stats) + 2 * o : nullptr;
  const A* si_all = static_cast<const A*>(v.in_stats);
  const int64_t ko = v.okey(o);
  const A bias_o = (v.bias.p && v.bias_outer) ? v.bias.load<A>(o) : A(0);
  const T* xo = X + o * v.D;
  S gs = 0, gz = 0;
  for (int64_t n = 0; n < v.n_in; ++n) {
    const T* yn = Y + n * v.D;
    A dot = 0;
    for (int64_t d = lane; d < v.D; d += 32) dot += to_acc(xo[d]) * to_acc(yn[d]);
    const A bias = v.bias_outer ? bias_o : (v.bias.p ? v.bias.load<A>(n) : A(0));
    const A z = a * warp_sum(dot) + bias;
    const bool pos = v.ikey(n) == ko;
    A G = 0;
    if (so) G += wo * (m_exp(z - so[0]) - (pos ? m_exp(z - so[1]) : A(0)));
    if (si_all) {
      const A* si = si_all + 2 * n;
      G += wi * (m_exp(z - si[0]) - (pos ? m_exp(z - si[1]) : A(0)));
    }
    gs += S(G);
    gz += S(G) * S(z - bias);
    for (int64_t d = lane; d < v.D; d += 32) acc[d] += S(G) * S(to_acc(yn[d]));
  }
  for (int64_t d = lane; d < v.D; d += 32) gout[o * v.D + d] = from_acc<T>(S(a) * acc[d]);
  if (lane == 0) {
    if (gsum.p) gsum.store(o, gs);
    if (gzsum.p) gzsum.store(o, gz);
  }
}

// ================================================================== tensor-core kernels (bf16)
// mma.sync.m16n8k16 and its fragments: kernels/cuda/mma.cuh.

constexpr int kChunk = 64;        // features per step
constexpr int kLd = kChunk + 8;   // padded row of a [rows][64] tile
constexpr int kInner = 64;        // inner rows (columns of z) per tile
constexpr int kLdT = kInner + 8;  // padded row of a transposed [64 features][64 inner] tile
constexpr int kStatsOuter = 64;   // outer rows per CTA in the forward
constexpr int kGradOuter = 32;    // outer rows per CTA in the backward
constexpr int kMaxChunks = 8;     // backward: at most 8 x 64 = 512 output features per CTA

// rows row0 .. row0+ROWS-1 (below `valid`) x features c0 .. c0+63 of a row-major [*, D] tensor into
// smem [ROWS][kLd]; zeros outside. 16-byte loads (D % 8 == 0, aligned rows: checked by the launcher).
template <int ROWS>
__device__ __forceinline__ void load_chunk(bf16_t* sm, const bf16_t* __restrict__ g, int64_t row0, int64_t valid,
                                           int64_t D, int64_t c0) {
  for (int c = threadIdx.x; c < ROWS * (kChunk / 8); c += blockDim.x) {
    int r = c / (kChunk / 8), d = (c % (kChunk / 8)) * 8;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (r < valid && c0 + d < D) val = *reinterpret_cast<const uint4*>(g + (row0 + r) * D + c0 + d);
    *reinterpret_cast<uint4*>(sm + r * kLd + d) = val;
  }
}
// The same transposed: smem [64 features][kLdT], element (r, d) at sm[d * kLdT + r].
__device__ __forceinline__ void load_chunk_t(bf16_t* sm, const bf16_t* __restrict__ g, int64_t row0, int64_t valid,
                                             int64_t D, int64_t c0) {
  for (int c = threadIdx.x; c < kInner * (kChunk / 8); c += blockDim.x) {
    int r = c % kInner, d = (c / kInner) * 8;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (r < valid && c0 + d < D) val = *reinterpret_cast<const uint4*>(g + (row0 + r) * D + c0 + d);
    const bf16_t* e = reinterpret_cast<const bf16_t*>(&val);
#pragma unroll
    for (int x = 0; x < 8; ++x) sm[(d + x) * kLdT + r] = e[x];
  }
}

// Forward: a CTA per 64 outer rows (4 warps x 16), looping over 64-column tiles. Running max and sum
// in log2 units per row, over all columns and over the positives.
__global__ void __launch_bounds__(128) xent_stats_mma(XentView v, float* __restrict__ stats, float* __restrict__ loss) {
  __shared__ __align__(16) bf16_t Os[kStatsOuter * kLd];
  __shared__ __align__(16) bf16_t Is[kInner * kLd];
  __shared__ float ibias[kInner];  // bias, -inf past the last column
  __shared__ long long ikey[kInner];
  const bf16_t* X = static_cast<const bf16_t*>(v.outer);
  const bf16_t* Y = static_cast<const bf16_t*>(v.inner);
  const int64_t o0 = int64_t(blockIdx.x) * kStatsOuter;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const float a = v.alpha<float>();
  long long okey[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    int64_t o = o0 + warp * 16 + g + 8 * r;
    okey[r] = o < v.n_out ? v.okey(o) : LLONG_MIN;
  }
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f}, mp[2] = {-INFINITY, -INFINITY}, lp[2] = {0.f, 0.f};

  for (int64_t n0 = 0; n0 < v.n_in; n0 += kInner) {
    float sc[kInner / 8][4];
#pragma unroll
    for (int nt = 0; nt < kInner / 8; ++nt) sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.f;
    for (int64_t c0 = 0; c0 < v.D; c0 += kChunk) {
      __syncthreads();
      load_chunk<kStatsOuter>(Os, X, o0, v.n_out - o0, v.D, c0);
      load_chunk<kInner>(Is, Y, n0, v.n_in - n0, v.D, c0);
      if (c0 == 0)
        for (int j = threadIdx.x; j < kInner; j += blockDim.x) {
          int64_t n = n0 + j;
          ibias[j] = n < v.n_in ? (v.bias.p ? v.bias.load_f(n) : 0.f) : -INFINITY;
          ikey[j] = n < v.n_in ? v.ikey(n) : LLONG_MIN;
        }
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < kChunk / 16; ++kk) {
        uint32_t af[4];
        load_a(af, Os, kLd, warp * 16, kk * 16, g, t);
#pragma unroll
        for (int nt = 0; nt < kInner / 8; ++nt) {
          uint32_t b0, b1;
          load_b(b0, b1, Is, kLd, nt * 8, kk * 16, g, t);
          mma_bf16(sc[nt], af, b0, b1);
        }
      }
    }
    float mx[2] = {-INFINITY, -INFINITY}, mxp[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < kInner / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        int col = nt * 8 + 2 * t + (e & 1), r = e >> 1;
        float z = (a * sc[nt][e] + ibias[col]) * kLog2e;
        sc[nt][e] = z;
        mx[r] = fmaxf(mx[r], z);
        if (ikey[col] == okey[r]) mxp[r] = fmaxf(mxp[r], z);
      }
    float muse[2], musep[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      mxp[r] = fmaxf(mxp[r], __shfl_xor_sync(0xffffffffu, mxp[r], 1));
      mxp[r] = fmaxf(mxp[r], __shfl_xor_sync(0xffffffffu, mxp[r], 2));
      float mn = fmaxf(m[r], mx[r]), mnp = fmaxf(mp[r], mxp[r]);
      muse[r] = mn == -INFINITY ? 0.f : mn;
      musep[r] = mnp == -INFINITY ? 0.f : mnp;
      l[r] *= exp2f(m[r] - muse[r]);
      lp[r] *= exp2f(mp[r] - musep[r]);
      m[r] = mn;
      mp[r] = mnp;
    }
#pragma unroll
    for (int nt = 0; nt < kInner / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        int col = nt * 8 + 2 * t + (e & 1), r = e >> 1;
        l[r] += exp2f(sc[nt][e] - muse[r]);
        if (ikey[col] == okey[r]) lp[r] += exp2f(sc[nt][e] - musep[r]);
      }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    lp[r] += __shfl_xor_sync(0xffffffffu, lp[r], 1);
    lp[r] += __shfl_xor_sync(0xffffffffu, lp[r], 2);
    int64_t o = o0 + warp * 16 + g + 8 * r;
    if (t == 0 && o < v.n_out) {
      float lse = (m[r] + log2f(l[r])) * kLn2;
      float lsep = lp[r] > 0.f ? (mp[r] + log2f(lp[r])) * kLn2 : -INFINITY;
      stats[2 * o] = lse;
      stats[2 * o + 1] = lsep;
      loss[o] = lse - lsep;
    }
  }
}

// Backward: a CTA per (32 outer rows, feature slice of NCH x 64, split of the inner loop).
// Per inner tile: S = outer . inner^T over all of D (warp w: rows (w & 1) * 16, columns (w >> 1) * 32),
// G from S and the statistics into shared memory as bf16, then out[:, slice] += G . inner[:, slice]
// (warp w: all 32 rows, features w * 16 of each 64-chunk). With splits > 1 the partial block (times a)
// goes to ws [splits, n_out, D] and the sums to ws_sums [splits, n_out, 2], added in order afterwards.
template <int NCH>
__global__ void __launch_bounds__(128)
    xent_grad_mma(XentView v, bf16_t* __restrict__ gout, FloatPtr gsum, FloatPtr gzsum, float* __restrict__ ws,
                  float* __restrict__ ws_sums, int64_t tiles_per_split) {
  __shared__ __align__(16) bf16_t Os[kGradOuter * kLd];
  __shared__ __align__(16) bf16_t Is[kInner * kLd];
  __shared__ __align__(16) bf16_t It[kChunk * kLdT];
  __shared__ __align__(16) bf16_t Gs[kGradOuter * kLd];
  __shared__ float ibias[kInner];
  __shared__ float istat[kInner][2];
  __shared__ long long ikey[kInner];
  __shared__ float red[2][2][kGradOuter];

  const bf16_t* X = static_cast<const bf16_t*>(v.outer);
  const bf16_t* Y = static_cast<const bf16_t*>(v.inner);
  const float* ost = static_cast<const float*>(v.out_stats);
  const float* ist = static_cast<const float*>(v.in_stats);
  const int64_t o0 = int64_t(blockIdx.x) * kGradOuter;
  const int64_t d_lo = int64_t(blockIdx.y) * NCH * kChunk;
  const int64_t split = blockIdx.z;
  const int64_t n_begin = split * tiles_per_split * kInner;
  const int64_t n_end = min(v.n_in, n_begin + tiles_per_split * kInner);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int mt = warp & 1, nh = warp >> 1;
  const float a = v.alpha<float>(), gl = v.gloss.load_f(0);
  const float wo = gl * float(v.w_out), wi = gl * float(v.w_in);

  bool ovalid[2];
  long long okey[2];
  float ost0[2], ost1[2], obias[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    int64_t o = o0 + mt * 16 + g + 8 * r;
    ovalid[r] = o < v.n_out;
    okey[r] = ovalid[r] ? v.okey(o) : LLONG_MIN;
    ost0[r] = ovalid[r] && ost ? ost[2 * o] : 0.f;
    ost1[r] = ovalid[r] && ost ? ost[2 * o + 1] : 0.f;
    obias[r] = ovalid[r] && v.bias.p && v.bias_outer ? v.bias.load_f(o) : 0.f;
  }
  float acc[NCH][2][2][4];
#pragma unroll
  for (int c = 0; c < NCH; ++c)
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < 2; ++j) acc[c][i][j][0] = acc[c][i][j][1] = acc[c][i][j][2] = acc[c][i][j][3] = 0.f;
  float gs[2] = {0.f, 0.f}, gz[2] = {0.f, 0.f};

  for (int64_t n0 = n_begin; n0 < n_end; n0 += kInner) {
    float sc[4][4];
#pragma unroll
    for (int j = 0; j < 4; ++j) sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.f;
    for (int64_t c0 = 0; c0 < v.D; c0 += kChunk) {
      __syncthreads();
      load_chunk<kGradOuter>(Os, X, o0, v.n_out - o0, v.D, c0);
      load_chunk<kInner>(Is, Y, n0, v.n_in - n0, v.D, c0);
      if (c0 == 0)
        for (int j = threadIdx.x; j < kInner; j += blockDim.x) {
          int64_t n = n0 + j;
          bool in = n < v.n_in;
          ibias[j] = in && v.bias.p && !v.bias_outer ? v.bias.load_f(n) : 0.f;
          ikey[j] = in ? v.ikey(n) : LLONG_MIN;
          istat[j][0] = in && ist ? ist[2 * n] : 0.f;
          istat[j][1] = in && ist ? ist[2 * n + 1] : 0.f;
        }
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < kChunk / 16; ++kk) {
        uint32_t af[4];
        load_a(af, Os, kLd, mt * 16, kk * 16, g, t);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          uint32_t b0, b1;
          load_b(b0, b1, Is, kLd, (nh * 4 + j) * 8, kk * 16, g, t);
          mma_bf16(sc[j], af, b0, b1);
        }
      }
    }
    // G, the per-row sums, and G into shared memory (bf16) as the A operand of the next product.
#pragma unroll
    for (int j = 0; j < 4; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        int col = (nh * 4 + j) * 8 + 2 * t + (e & 1), r = e >> 1;
        float G = 0.f;
        if (ovalid[r] && n0 + col < v.n_in) {
          float bias = v.bias_outer ? obias[r] : ibias[col];
          float z = a * sc[j][e] + bias;
          bool pos = ikey[col] == okey[r];
          if (ost) G += wo * (expf(z - ost0[r]) - (pos ? expf(z - ost1[r]) : 0.f));
          if (ist) G += wi * (expf(z - istat[col][0]) - (pos ? expf(z - istat[col][1]) : 0.f));
          gs[r] += G;
          gz[r] += G * (z - bias);
        }
        sc[j][e] = G;
      }
      int col = (nh * 4 + j) * 8 + 2 * t;
      *reinterpret_cast<uint32_t*>(Gs + (mt * 16 + g) * kLd + col) = pack_bf16(sc[j][0], sc[j][1]);
      *reinterpret_cast<uint32_t*>(Gs + (mt * 16 + g + 8) * kLd + col) = pack_bf16(sc[j][2], sc[j][3]);
    }
#pragma unroll
    for (int c = 0; c < NCH; ++c) {
      const int64_t d0 = d_lo + c * kChunk;
      if (d0 >= v.D) break;
      __syncthreads();  // G written; It free
      load_chunk_t(It, Y, n0, v.n_in - n0, v.D, d0);
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < kInner / 16; ++kk)
#pragma unroll
        for (int i = 0; i < 2; ++i) {
          uint32_t af[4];
          load_a(af, Gs, kLd, i * 16, kk * 16, g, t);
#pragma unroll
          for (int j = 0; j < 2; ++j) {
            uint32_t b0, b1;
            load_b(b0, b1, It, kLdT, (warp * 2 + j) * 8, kk * 16, g, t);
            mma_bf16(acc[c][i][j], af, b0, b1);
          }
        }
    }
  }

#pragma unroll
  for (int c = 0; c < NCH; ++c)
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < 2; ++j)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          int64_t o = o0 + i * 16 + g + 8 * h;
          int64_t d = d_lo + c * kChunk + (warp * 2 + j) * 8 + 2 * t;
          if (o >= v.n_out || d >= v.D) continue;
          float x0 = a * acc[c][i][j][2 * h], x1 = a * acc[c][i][j][2 * h + 1];
          if (ws) {
            float* w = ws + (split * v.n_out + o) * v.D + d;
            w[0] = x0;
            w[1] = x1;
          } else {
            *reinterpret_cast<uint32_t*>(gout + o * v.D + d) = pack_bf16(x0, x1);
          }
        }
  if (blockIdx.y != 0) return;  // the sums once per outer row (uniform per block)
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    gs[r] += __shfl_xor_sync(0xffffffffu, gs[r], 1);
    gs[r] += __shfl_xor_sync(0xffffffffu, gs[r], 2);
    gz[r] += __shfl_xor_sync(0xffffffffu, gz[r], 1);
    gz[r] += __shfl_xor_sync(0xffffffffu, gz[r], 2);
    if (t == 0) {
      red[0][nh][mt * 16 + g + 8 * r] = gs[r];
      red[1][nh][mt * 16 + g + 8 * r] = gz[r];
    }
  }
  __syncthreads();
  if (threadIdx.x < kGradOuter) {
    int64_t o = o0 + threadIdx.x;
    if (o < v.n_out) {
      float s0 = red[0][0][threadIdx.x] + red[0][1][threadIdx.x];
      float s1 = red[1][0][threadIdx.x] + red[1][1][threadIdx.x];
      if (ws_sums) {
        ws_sums[(split * v.n_out + o) * 2] = s0;
        ws_sums[(split * v.n_out + o) * 2 + 1] = s1;
      } else {
        if (gsum.p) gsum.store(o, s0);
        if (gzsum.p) gzsum.store(o, s1);
      }
    }
  }
}

// Adds the split partials in split order.
__global__ void xent_split_sum(const float* __restrict__ ws, const float* __restrict__ ws_sums, int64_t splits,
                               int64_t n_out, int64_t D, bf16_t* __restrict__ gout, FloatPtr gsum, FloatPtr gzsum) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n_out * D; i += step) {
    float s = 0.f;
    for (int64_t k = 0; k < splits; ++k) s += ws[k * n_out * D + i];
    gout[i] = __float2bfloat16_rn(s);
    if (i < n_out) {
      float s0 = 0.f, s1 = 0.f;
      for (int64_t k = 0; k < splits; ++k) {
        s0 += ws_sums[(k * n_out + i) * 2];
        s1 += ws_sums[(k * n_out + i) * 2 + 1];
      }
      if (gsum.p) gsum.store(i, s0);
      if (gzsum.p) gzsum.store(i, s1);
    }
  }
}

// ================================================================== launchers
struct Host {
  const char* op;
  int64_t R = 0, C = 0, D = 0;
  DType acc = DType::F32;
  bool mma = false;
};

void check_acc(const char* op, const Tensor& t, DType acc, const Shape& shape, const char* what) {
  check_contiguous(t, op, what);
  PE_CHECK(t.dtype() == acc && t.shape() == shape, op, ": ", what, " must be ", dtype_name(acc), " ", shape_str(shape),
           ", got ", t.str());
}

Host check_problem(const char* op, const Tensor& x, const Tensor& y, const Tensor& bias, const InfoNceArgs& args) {
  check_contiguous(x, op, "rows");
  check_contiguous(y, op, "columns");
  PE_CHECK(x.dim() == 2 && y.dim() == 2 && x.size(1) == y.size(1) && x.dtype() == y.dtype() && is_floating(x.dtype()),
           op, ": rows [R, D] and columns [C, D] of one floating dtype expected, got ", x.str(), " and ", y.str());
  Host h{op, x.size(0), y.size(0), x.size(1)};
  h.acc = x.dtype() == DType::F64 ? DType::F64 : DType::F32;
  if (bias.defined()) {
    check_contiguous(bias, op, "bias");
    PE_CHECK(bias.dtype() == x.dtype() && bias.shape() == Shape{h.C}, op, ": bias ", bias.str(), " is not [", h.C,
             "] of ", dtype_name(x.dtype()));
  }
  if (args.logit_scale.defined()) {
    check_contiguous(args.logit_scale, op, "logit scale");
    PE_CHECK(args.logit_scale.numel() == 1 && is_floating(args.logit_scale.dtype()), op,
             ": logit scale must be one floating element, got ", args.logit_scale.str());
  }
  if (args.row_group.defined()) {
    check_contiguous(args.row_group, op, "row groups");
    PE_CHECK(args.row_group.dtype() == DType::I64 && args.row_group.shape() == Shape{h.R}, op,
             ": row groups must be i64 [", h.R, "], got ", args.row_group.str());
  }
  if (args.col_group.defined()) {
    check_contiguous(args.col_group, op, "column groups");
    PE_CHECK(args.col_group.dtype() == DType::I64 && args.col_group.shape() == Shape{h.C}, op,
             ": column groups must be i64 [", h.C, "], got ", args.col_group.str());
  }
  h.mma =
      !force_simple() && x.dtype() == DType::BF16 && h.D % 8 == 0 && aligned16(x.raw_data()) && aligned16(y.raw_data());
  return h;
}

// The view with x as outer (transpose = false) or y as outer (transpose = true).
XentView make_view(const Tensor& x, const Tensor& y, const Tensor& bias, const InfoNceArgs& args, bool transpose,
                   const char* op) {
  XentView v;
  const int64_t* rkey = args.row_group.defined() ? args.row_group.data<int64_t>() : nullptr;
  const int64_t* ckey = args.col_group.defined() ? args.col_group.data<int64_t>() : nullptr;
  v.outer = transpose ? y.raw_data() : x.raw_data();
  v.inner = transpose ? x.raw_data() : y.raw_data();
  v.n_out = transpose ? y.size(0) : x.size(0);
  v.n_in = transpose ? x.size(0) : y.size(0);
  v.D = x.size(1);
  if (bias.defined()) v.bias = float_ptr(bias, op, "bias");
  v.bias_outer = transpose;
  v.out_key = transpose ? ckey : rkey;
  v.out_key_off = transpose ? 0 : args.row_offset;
  v.in_key = transpose ? rkey : ckey;
  v.in_key_off = transpose ? args.row_offset : 0;
  if (args.logit_scale.defined()) v.log_scale = float_ptr(args.logit_scale, op, "logit scale");
  v.max_log_scale = args.max_logit_scale;
  return v;
}

// The outputs of one backward pass: gout [n_out, D] (dtype of x), gsum / gzsum [n_out] (may be undefined).
void run_grad(const Host& h, const Tensor& x, XentView v, const Tensor& gout, const Tensor& gsum_t,
              const Tensor& gzsum_t) {
  FloatPtr gsum = gsum_t.defined() ? float_ptr(gsum_t, h.op, "gradient sums") : FloatPtr{};
  FloatPtr gzsum = gzsum_t.defined() ? float_ptr(gzsum_t, h.op, "gradient sums") : FloatPtr{};
  if (v.n_out == 0) return;
  if (h.mma) {
    const int64_t chunks = (v.D + kChunk - 1) / kChunk;
    const int nch = chunks <= 1 ? 1 : chunks <= 2 ? 2 : chunks <= 4 ? 4 : kMaxChunks;
    const int64_t slices = (chunks + nch - 1) / nch;
    const int64_t outer_blocks = (v.n_out + kGradOuter - 1) / kGradOuter;
    const int64_t tiles = std::max<int64_t>(1, (v.n_in + kInner - 1) / kInner);
    // Too few CTAs to fill the card: split the inner loop (the split depends on the shape only,
    // so results repeat on every card).
    constexpr int64_t kTargetBlocks = 264;
    int64_t splits =
        std::min<int64_t>((tiles + 1) / 2, (kTargetBlocks + outer_blocks * slices - 1) / (outer_blocks * slices));
    splits = std::max<int64_t>(1, std::min<int64_t>(splits, 65535));
    const int64_t per = (tiles + splits - 1) / splits;
    splits = (tiles + per - 1) / per;
    PE_CHECK(outer_blocks <= INT_MAX && slices <= 65535, h.op, ": ", v.n_out, " x ", v.D, " exceeds the CUDA grid");
    DeviceBuffer ws(splits > 1 ? size_t(splits * v.n_out * v.D) * sizeof(float) : 0);
    DeviceBuffer ws_sums(splits > 1 ? size_t(splits * v.n_out * 2) * sizeof(float) : 0);
    dim3 grid(static_cast<unsigned>(outer_blocks), static_cast<unsigned>(slices), static_cast<unsigned>(splits));
    auto go = [&](auto kernel) {
      kernel<<<grid, 128, 0, stream()>>>(v, gout.data<bf16_t>(), gsum, gzsum, ws.as<float>(), ws_sums.as<float>(), per);
    };
    switch (nch) {
      case 1:
        go(xent_grad_mma<1>);
        break;
      case 2:
        go(xent_grad_mma<2>);
        break;
      case 4:
        go(xent_grad_mma<4>);
        break;
      default:
        go(xent_grad_mma<kMaxChunks>);
        break;
    }
    PE_CUDA_LAUNCH_CHECK(h.op);
    if (splits > 1) {
      xent_split_sum<<<grid_for(v.n_out * v.D, 256), 256, 0, stream()>>>(
          ws.as<float>(), ws_sums.as<float>(), splits, v.n_out, v.D, gout.data<bf16_t>(), gsum, gzsum);
      PE_CUDA_LAUNCH_CHECK(h.op);
    }
    return;
  }
  dispatch_float(x.dtype(), h.op, [&](auto tag) {
    using T = decltype(tag);
    const size_t per_warp = size_t(v.D) * sizeof(grad_sum_t<T>);
    PE_CHECK(per_warp <= 48 * 1024, h.op, ": feature dim ", v.D, " too large for the simple CUDA kernel");
    const int warps = int(std::max<size_t>(1, std::min<size_t>(4, (48 * 1024) / std::max<size_t>(per_warp, 1))));
    const unsigned grid = unsigned((v.n_out + warps - 1) / warps);
    xent_grad_simple<T><<<grid, 32 * warps, per_warp * size_t(warps), stream()>>>(v, gout.data<T>(), gsum, gzsum);
    PE_CUDA_LAUNCH_CHECK(h.op);
  });
}

}  // namespace

void xent_forward(const char* op, const Tensor& x, const Tensor& y, const Tensor& bias, const InfoNceArgs& args,
                  const Tensor& stats, const Tensor& loss) {
  Host h = check_problem(op, x, y, bias, args);
  check_acc(op, stats, h.acc, {h.R, 2}, "statistics");
  check_acc(op, loss, h.acc, {h.R}, "loss");
  if (h.R == 0) return;
  PE_CHECK(h.C > 0, op, ": no columns");
  XentView v = make_view(x, y, bias, args, false, op);
  if (h.mma) {
    const int64_t blocks = (h.R + kStatsOuter - 1) / kStatsOuter;
    PE_CHECK(blocks <= INT_MAX, op, ": ", h.R, " rows exceed the CUDA grid");
    xent_stats_mma<<<unsigned(blocks), 128, 0, stream()>>>(v, stats.data<float>(), loss.data<float>());
    PE_CUDA_LAUNCH_CHECK(op);
    return;
  }
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    xent_stats_simple<T><<<grid_for(h.R * 32, 128), 128, 0, stream()>>>(v, stats.data<A>(), loss.data<A>());
    PE_CUDA_LAUNCH_CHECK(op);
  });
}

void xent_backward(const char* op, const Tensor& x, const Tensor& y, const Tensor& bias, const InfoNceArgs& args,
                   const Tensor& row_stats, const Tensor& col_stats, const Tensor& gloss, double row_weight,
                   double col_weight, const Tensor& gx, const Tensor& gy, const Tensor& glog, const Tensor& gbias) {
  Host h = check_problem(op, x, y, bias, args);
  check_acc(op, row_stats, h.acc, {h.R, 2}, "row statistics");
  if (col_stats.defined()) check_acc(op, col_stats, h.acc, {h.C, 2}, "column statistics");
  check_contiguous(gloss, op, "loss gradient");
  PE_CHECK(gloss.numel() == 1 && is_floating(gloss.dtype()), op, ": loss gradient must be one floating element, got ",
           gloss.str());
  check_contiguous(gx, op, "row gradient");
  check_contiguous(gy, op, "column gradient");
  PE_CHECK(gx.shape() == x.shape() && gx.dtype() == x.dtype() && gy.shape() == y.shape() && gy.dtype() == y.dtype(), op,
           ": gradients ", gx.str(), ", ", gy.str(), " do not match ", x.str(), ", ", y.str());
  if (glog.defined()) check_acc(op, glog, h.acc, {h.R}, "logit-scale gradient");
  if (gbias.defined()) {
    check_contiguous(gbias, op, "bias gradient");
    PE_CHECK(gbias.shape() == Shape{h.C} && is_floating(gbias.dtype()), op, ": bias gradient ", gbias.str(),
             " is not [", h.C, "]");
  }
  FloatPtr g = float_ptr(gloss, op, "loss gradient");
  // Rows: outer x, inner y; the row statistics are the outer ones.
  XentView vr = make_view(x, y, bias, args, false, op);
  vr.out_stats = row_stats.raw_data();
  vr.in_stats = col_stats.defined() ? col_stats.raw_data() : nullptr;
  vr.gloss = g;
  vr.w_out = row_weight;
  vr.w_in = col_weight;
  run_grad(h, x, vr, gx, Tensor(), glog);
  // Columns: outer y, inner x.
  XentView vc = make_view(x, y, bias, args, true, op);
  vc.out_stats = col_stats.defined() ? col_stats.raw_data() : nullptr;
  vc.in_stats = row_stats.raw_data();
  vc.gloss = g;
  vc.w_out = col_weight;
  vc.w_in = row_weight;
  run_grad(h, x, vc, gy, gbias, Tensor());
}

// ------------------------------------------------------------------ Backend methods
void CudaBackend::info_nce_forward(const Tensor& x, const Tensor& y, const InfoNceArgs& args, const Tensor& stats,
                                   const Tensor& loss) {
  xent_forward("info_nce_forward", x, y, Tensor(), args, stats, loss);
}

void CudaBackend::info_nce_backward(const Tensor& x, const Tensor& y, const InfoNceArgs& args, const Tensor& row_stats,
                                    const Tensor& col_stats, const Tensor& gloss, double row_weight, double col_weight,
                                    const Tensor& gx, const Tensor& gy, const Tensor& glog) {
  xent_backward("info_nce_backward", x, y, Tensor(), args, row_stats, col_stats, gloss, row_weight, col_weight, gx, gy,
                glog, Tensor());
}

}  // namespace pe::cuda
