// Fused attention: softmax(scale * q k^T + key mask) v forward and backward without the [Lq, Lk]
// matrix (online softmax; the log-sum-exp of each query row is saved and the backward recomputes the
// probabilities from it). Written for this engine after the FlashAttention-2 scheme.
//
// Rows of q, k, v are tokens of [H, D] (padded [B, L, H, D] or packed [T, H, D]; see AttentionLayout).
// Two implementations, the same maths:
//   simple  every dtype (f32, f64, bf16 with fp32 math), D <= 128: a warp per query row (forward, dQ)
//           or per key row (dK, dV), lanes over D, one key (query) at a time. The reference on the GPU.
//   mma     bf16 with D % 8 == 0 and D <= 128: tensor cores (mma.sync m16n8k16, bf16 in, fp32
//           accumulate), D zero-padded to DP = 32, 64 or 128 in shared memory.
//           forward: a CTA takes 64 query rows of one (sequence, head), 4 warps x 16 rows, and loops
//             over 64-key tiles; scores and probabilities stay in registers (the C fragments of
//             S = Q K^T are the A fragments of P V).
//           backward: delta = rowsum(dO * O) first; then dK, dV by CTAs of 64 keys looping over query
//             tiles (recomputing P^T and dP^T), and dQ by CTAs of 64 queries looping over key tiles.
//             Every output row has one writer, so no atomics: results repeat bit for bit. The price
//             is recomputing S and dP in the dQ pass (7 instead of 5 GEMM-sized products).
//           Operands whose MMA fragments pair two elements along the slow axis are stored transposed
//           in shared memory (V^T in the forward, Q^T, dO^T, K^T in the backward), so every fragment
//           is one aligned 32-bit shared load; rows are padded by 8 elements against bank conflicts.
// PE_FUSED_SIMPLE=1 in the environment forces the simple kernels (the tests compare both).
// Causal (AttentionLayout::causal): every loop over keys (queries) is bounded by the causal horizon of
// its rows, so the tiles above the diagonal are never loaded; the mma kernels mask per element only in
// diagonal tiles.
// Decode step (attention_decode): a few new queries against a KV cache, split across CTAs and
// combined (flash-decoding); see the section below.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "kernels/cuda/cuda_backend.cuh"
#include "kernels/cuda/mma.cuh"

namespace pe::cuda {

namespace {

constexpr int kMaxHeadDim = 128;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

bool force_simple() {
  const char* v = std::getenv("PE_FUSED_SIMPLE");
  return v && *v && std::strcmp(v, "0") != 0;
}

// Where each sequence's rows are. Padded: sequence b has rows b*L .. b*L+L-1 and maybe a key mask;
// packed: rows cu[b] .. cu[b+1]-1.
struct SeqInfo {
  const void* cu_q = nullptr;
  const void* cu_k = nullptr;
  bool cu64 = false;
  int64_t Lq = 0, Lk = 0;
  const uint8_t* mask = nullptr;  // [B, Lk]
  int H = 0, D = 0;
  bool causal = false;  // AttentionLayout::causal: query i of a sequence sees keys j <= i + nk - nq

  __device__ __forceinline__ int64_t cu(const void* p, int64_t i) const {
    return cu64 ? static_cast<const int64_t*>(p)[i] : int64_t(static_cast<const int32_t*>(p)[i]);
  }
  __device__ __forceinline__ void get(int64_t b, int64_t& q0, int64_t& nq, int64_t& k0, int64_t& nk) const {
    if (cu_q) {
      q0 = cu(cu_q, b);
      nq = cu(cu_q, b + 1) - q0;
      k0 = cu(cu_k, b);
      nk = cu(cu_k, b + 1) - k0;
    } else {
      q0 = b * Lq;
      nq = Lq;
      k0 = b * Lk;
      nk = Lk;
    }
  }
  __device__ __forceinline__ bool key_real(int64_t b, int64_t j) const { return !mask || mask[b * Lk + j] != 0; }
  // Keys 0 .. key_end-1 are those query i may see (before the key mask); loops stop there, so the
  // keys above the diagonal are never read.
  __device__ __forceinline__ int64_t key_end(int64_t i, int64_t nq, int64_t nk) const {
    if (!causal) return nk;
    const int64_t e = i + nk - nq + 1;
    return e < 0 ? 0 : (e > nk ? nk : e);
  }
  // The first query that may see key j (queries before it are skipped).
  __device__ __forceinline__ int64_t query_begin(int64_t j, int64_t nq, int64_t nk) const {
    if (!causal) return 0;
    const int64_t i = j - (nk - nq);
    return i < 0 ? 0 : i;
  }
};

// ================================================================== simple kernels
constexpr int kLanes = kMaxHeadDim / 32;  // head-dim elements per lane

// A warp per query row: grid (ceil(max_q / 4), H, B), 128 threads. The minimum of 4 CTAs per
// multiprocessor gives ptxas a budget of 128 registers: without it, it holds the f64 instance to 64
// and spills once the key loop's bound is the causal horizon.
template <typename T>
__global__ void __launch_bounds__(128, 4)
    attn_fwd_simple(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, T* __restrict__ out,
                    acc_t<T>* __restrict__ lse, SeqInfo s, double scale) {
  using A = acc_t<T>;
  const int64_t b = blockIdx.z, h = blockIdx.y;
  int64_t q0, nq, k0, nk;
  s.get(b, q0, nq, k0, nk);
  const int64_t i = int64_t(blockIdx.x) * 4 + (threadIdx.x >> 5);
  if (i >= nq) return;
  const int lane = threadIdx.x & 31;
  const int64_t HD = int64_t(s.H) * s.D, off = h * s.D;
  const T* qi = q + (q0 + i) * HD + off;
  A qv[kLanes], o[kLanes];
#pragma unroll
  for (int r = 0; r < kLanes; ++r) {
    int d = lane + 32 * r;
    qv[r] = d < s.D ? to_acc(qi[d]) : A(0);
    o[r] = 0;
  }
  A m = -std::numeric_limits<A>::infinity(), l = 0;
  for (int64_t j = 0, je = s.key_end(i, nq, nk); j < je; ++j) {
    if (!s.key_real(b, j)) continue;
    const T* kj = k + (k0 + j) * HD + off;
    const T* vj = v + (k0 + j) * HD + off;
    A dot = 0;
#pragma unroll
    for (int r = 0; r < kLanes; ++r) {
      int d = lane + 32 * r;
      if (d < s.D) dot += qv[r] * to_acc(kj[d]);
    }
    dot = warp_sum(dot) * A(scale);
    A mn = dot > m ? dot : m;
    A corr = m_exp(m - mn), p = m_exp(dot - mn);
    l = l * corr + p;
#pragma unroll
    for (int r = 0; r < kLanes; ++r) {
      int d = lane + 32 * r;
      if (d < s.D) o[r] = o[r] * corr + p * to_acc(vj[d]);
    }
    m = mn;
  }
  T* oi = out + (q0 + i) * HD + off;
  A inv = l > A(0) ? A(1) / l : A(0);  // no real key: zeros
#pragma unroll
  for (int r = 0; r < kLanes; ++r) {
    int d = lane + 32 * r;
    if (d < s.D) oi[d] = from_acc<T>(o[r] * inv);
  }
  if (lane == 0) lse[(q0 + i) * s.H + h] = l > A(0) ? m + m_log(l) : std::numeric_limits<A>::infinity();
}

// delta[row, h] = sum_d gout * out, a warp per (row, head); rows * H items.
template <typename T>
__global__ void attn_delta_kernel(const T* __restrict__ out, const T* __restrict__ gout, acc_t<T>* __restrict__ delta,
                                  int64_t items, int D) {
  using A = acc_t<T>;
  const int lane = threadIdx.x & 31;
  const int64_t step = int64_t(gridDim.x) * (blockDim.x >> 5);
  for (int64_t it = int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5); it < items; it += step) {
    const T* o = out + it * D;
    const T* g = gout + it * D;
    A s = 0;
    for (int d = lane; d < D; d += 32) s += to_acc(o[d]) * to_acc(g[d]);
    s = warp_sum(s);
    if (lane == 0) delta[it] = s;
  }
}

// dQ, a warp per query row: grid (ceil(max_q / 4), H, B).
template <typename T>
__global__ void __launch_bounds__(128)
    attn_bwd_dq_simple(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                       const T* __restrict__ gout, const acc_t<T>* __restrict__ lse, const acc_t<T>* __restrict__ delta,
                       T* __restrict__ gq, SeqInfo s, double scale) {
  using A = acc_t<T>;
  const int64_t b = blockIdx.z, h = blockIdx.y;
  int64_t q0, nq, k0, nk;
  s.get(b, q0, nq, k0, nk);
  const int64_t i = int64_t(blockIdx.x) * 4 + (threadIdx.x >> 5);
  if (i >= nq) return;
  const int lane = threadIdx.x & 31;
  const int64_t HD = int64_t(s.H) * s.D, off = h * s.D, row = (q0 + i) * HD + off;
  A qv[kLanes], gov[kLanes], dq[kLanes];
#pragma unroll
  for (int r = 0; r < kLanes; ++r) {
    int d = lane + 32 * r;
    qv[r] = d < s.D ? to_acc(q[row + d]) : A(0);
    gov[r] = d < s.D ? to_acc(gout[row + d]) : A(0);
    dq[r] = 0;
  }
  const A li = lse[(q0 + i) * s.H + h], di = delta[(q0 + i) * s.H + h];
  if (li != std::numeric_limits<A>::infinity()) {
    for (int64_t j = 0, je = s.key_end(i, nq, nk); j < je; ++j) {
      if (!s.key_real(b, j)) continue;
      const T* kj = k + (k0 + j) * HD + off;
      const T* vj = v + (k0 + j) * HD + off;
      A dot = 0, dp = 0;
#pragma unroll
      for (int r = 0; r < kLanes; ++r) {
        int d = lane + 32 * r;
        if (d < s.D) {
          dot += qv[r] * to_acc(kj[d]);
          dp += gov[r] * to_acc(vj[d]);
        }
      }
      dot = warp_sum(dot);
      dp = warp_sum(dp);
      A ds = m_exp(dot * A(scale) - li) * (dp - di);
#pragma unroll
      for (int r = 0; r < kLanes; ++r) {
        int d = lane + 32 * r;
        if (d < s.D) dq[r] += ds * to_acc(kj[d]);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kLanes; ++r) {
    int d = lane + 32 * r;
    if (d < s.D) gq[row + d] = from_acc<T>(dq[r] * A(scale));
  }
}

// dK and dV, a warp per key row: grid (ceil(max_k / 4), H, B).
template <typename T>
__global__ void __launch_bounds__(128)
    attn_bwd_dkdv_simple(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                         const T* __restrict__ gout, const acc_t<T>* __restrict__ lse,
                         const acc_t<T>* __restrict__ delta, T* __restrict__ gk, T* __restrict__ gv, SeqInfo s,
                         double scale) {
  using A = acc_t<T>;
  const int64_t b = blockIdx.z, h = blockIdx.y;
  int64_t q0, nq, k0, nk;
  s.get(b, q0, nq, k0, nk);
  const int64_t j = int64_t(blockIdx.x) * 4 + (threadIdx.x >> 5);
  if (j >= nk) return;
  const int lane = threadIdx.x & 31;
  const int64_t HD = int64_t(s.H) * s.D, off = h * s.D, row = (k0 + j) * HD + off;
  A kv[kLanes], vv[kLanes], dk[kLanes], dv[kLanes];
#pragma unroll
  for (int r = 0; r < kLanes; ++r) {
    int d = lane + 32 * r;
    kv[r] = d < s.D ? to_acc(k[row + d]) : A(0);
    vv[r] = d < s.D ? to_acc(v[row + d]) : A(0);
    dk[r] = dv[r] = 0;
  }
  if (s.key_real(b, j)) {
    for (int64_t i = s.query_begin(j, nq, nk); i < nq; ++i) {
      const A li = lse[(q0 + i) * s.H + h];
      if (li == std::numeric_limits<A>::infinity()) continue;
      const A di = delta[(q0 + i) * s.H + h];
      const T* qi = q + (q0 + i) * HD + off;
      const T* goi = gout + (q0 + i) * HD + off;
      A dot = 0, dp = 0;
#pragma unroll
      for (int r = 0; r < kLanes; ++r) {
        int d = lane + 32 * r;
        if (d < s.D) {
          dot += to_acc(qi[d]) * kv[r];
          dp += to_acc(goi[d]) * vv[r];
        }
      }
      dot = warp_sum(dot);
      dp = warp_sum(dp);
      A p = m_exp(dot * A(scale) - li);
      A ds = p * (dp - di);
#pragma unroll
      for (int r = 0; r < kLanes; ++r) {
        int d = lane + 32 * r;
        if (d < s.D) {
          dv[r] += p * to_acc(goi[d]);
          dk[r] += ds * to_acc(qi[d]);
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kLanes; ++r) {
    int d = lane + 32 * r;
    if (d < s.D) {
      gk[row + d] = from_acc<T>(dk[r] * A(scale));
      gv[row + d] = from_acc<T>(dv[r]);
    }
  }
}

// ================================================================== tensor-core kernels (bf16)
// mma.sync.m16n8k16 and its fragments: kernels/cuda/mma.cuh.
// Two neighbouring C tiles (n-tiles 2j, 2j+1) of a 16-row strip are, packed to bf16, the A fragment of
// the 16x16 tile j: that is how P and dS go from one product into the next without shared memory.
// A fragment of 16x16 tile j from C fragments c[2j], c[2j+1] (fp32, rounded to bf16).
__device__ __forceinline__ void c_to_a(uint32_t (&a)[4], const float (&c0)[4], const float (&c1)[4]) {
  a[0] = pack_bf16(c0[0], c0[1]);
  a[1] = pack_bf16(c0[2], c0[3]);
  a[2] = pack_bf16(c1[0], c1[1]);
  a[3] = pack_bf16(c1[2], c1[3]);
}

// Copies rows row0 .. row0+ROWS-1 (those below `valid`), head slice [0, D), of a token-major tensor
// (row stride `stride` elements, `g` already offset to the head) into smem [ROWS][DP + 8]; zeros
// elsewhere. 16-byte loads: D % 8 == 0 and 16-byte aligned rows (checked by the launcher).
template <int ROWS, int DP>
__device__ __forceinline__ void load_tile(bf16_t* sm, const bf16_t* __restrict__ g, int64_t row0, int64_t valid,
                                          int64_t stride, int D) {
  constexpr int CH = DP / 8, LD = DP + 8;
  for (int c = threadIdx.x; c < ROWS * CH; c += blockDim.x) {
    int r = c / CH, d = (c % CH) * 8;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (r < valid && d < D) val = *reinterpret_cast<const uint4*>(g + (row0 + r) * stride + d);
    *reinterpret_cast<uint4*>(sm + r * LD + d) = val;
  }
}
// The same rows stored transposed: smem [DP][ROWS + 8], element (r, d) at sm[d * (ROWS + 8) + r].
template <int ROWS, int DP>
__device__ __forceinline__ void load_tile_t(bf16_t* sm, const bf16_t* __restrict__ g, int64_t row0, int64_t valid,
                                            int64_t stride, int D) {
  constexpr int CH = DP / 8, LDT = ROWS + 8;
  for (int c = threadIdx.x; c < ROWS * CH; c += blockDim.x) {
    int r = c % ROWS, d = (c / ROWS) * 8;  // neighbouring threads take neighbouring rows
    uint4 val = make_uint4(0, 0, 0, 0);
    if (r < valid && d < D) val = *reinterpret_cast<const uint4*>(g + (row0 + r) * stride + d);
    const bf16_t* e = reinterpret_cast<const bf16_t*>(&val);
#pragma unroll
    for (int x = 0; x < 8; ++x) sm[(d + x) * LDT + r] = e[x];
  }
}

// ------------------------------------------------------------------ forward
template <int DP>
struct FwdShape {
  static constexpr int BR = 64, BC = 64, LD = DP + 8, LDT = BC + 8;
  static constexpr size_t smem = size_t(BR * LD + BC * LD + DP * LDT) * sizeof(bf16_t) + BC * sizeof(float);
};

template <int DP>
__global__ void __launch_bounds__(128)
    attn_fwd_mma(const bf16_t* __restrict__ q, const bf16_t* __restrict__ k, const bf16_t* __restrict__ v,
                 bf16_t* __restrict__ out, float* __restrict__ lse, SeqInfo s, float scale_log2) {
  using S = FwdShape<DP>;
  constexpr int BR = S::BR, BC = S::BC, LD = S::LD, LDT = S::LDT;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16_t* Qs = reinterpret_cast<bf16_t*>(smem);            // [BR][LD]
  bf16_t* Ks = Qs + BR * LD;                               // [BC][LD]
  bf16_t* Vt = Ks + BC * LD;                               // [DP][LDT]: V^T
  float* kbias = reinterpret_cast<float*>(Vt + DP * LDT);  // [BC]: 0 for a real key, -inf otherwise

  const int64_t b = blockIdx.z, h = blockIdx.y;
  int64_t q0, nq, k0, nk;
  s.get(b, q0, nq, k0, nk);
  const int64_t i0 = int64_t(blockIdx.x) * BR;
  if (i0 >= nq) return;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int64_t HD = int64_t(s.H) * s.D, off = h * s.D;

  load_tile<BR, DP>(Qs, q + off, q0 + i0, nq - i0, HD, s.D);
  __syncthreads();
  uint32_t qa[DP / 16][4];
#pragma unroll
  for (int kk = 0; kk < DP / 16; ++kk) load_a(qa[kk], Qs, LD, warp * 16, kk * 16, g, t);

  float o[DP / 8][4];
#pragma unroll
  for (int dt = 0; dt < DP / 8; ++dt) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};  // rows g and g+8 of this warp's strip, log2 units

  // Causal: the loop stops at the last row's horizon, so the tiles above the diagonal are never
  // loaded; only the diagonal tiles mask, per element.
  const int64_t kend = s.key_end((i0 + BR < nq ? i0 + BR : nq) - 1, nq, nk);
  const int64_t shift = nk - nq;  // query i sees keys j <= i + shift
  for (int64_t j0 = 0; j0 < kend; j0 += BC) {
    __syncthreads();  // the previous tile is no longer read
    load_tile<BC, DP>(Ks, k + off, k0 + j0, nk - j0, HD, s.D);
    load_tile_t<BC, DP>(Vt, v + off, k0 + j0, nk - j0, HD, s.D);
    for (int j = threadIdx.x; j < BC; j += blockDim.x)
      kbias[j] = (j0 + j < nk && s.key_real(b, j0 + j)) ? 0.f : -INFINITY;
    __syncthreads();
    // A diagonal tile: some key of it lies past the first row's horizon. Row r of this thread sees
    // the tile's columns c <= lim[r].
    const bool diag = s.causal && j0 + BC - 1 > i0 + shift;
    int lim[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int64_t x = i0 + warp * 16 + g + 8 * r + shift - j0;
      lim[r] = x < -1 ? -1 : (x > BC ? BC : int(x));
    }

    float sc[BC / 8][4];
#pragma unroll
    for (int nt = 0; nt < BC / 8; ++nt) sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < DP / 16; ++kk)
#pragma unroll
      for (int nt = 0; nt < BC / 8; ++nt) {
        uint32_t b0, b1;
        load_b(b0, b1, Ks, LD, nt * 8, kk * 16, g, t);
        mma_bf16(sc[nt], qa[kk], b0, b1);
      }
    // Online softmax in log2 units; each row is spread over the 4 threads of a quad.
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < BC / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int c = nt * 8 + 2 * t + (e & 1);
        float x = sc[nt][e] * scale_log2 + kbias[c];
        if (diag && c > lim[e >> 1]) x = -INFINITY;
        sc[nt][e] = x;
        mx[e >> 1] = fmaxf(mx[e >> 1], x);
      }
    float muse[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      float mn = fmaxf(m[r], mx[r]);
      muse[r] = mn == -INFINITY ? 0.f : mn;  // no real key yet: keep exp2 away from inf - inf
      float corr = exp2f(m[r] - muse[r]);
      l[r] *= corr;
#pragma unroll
      for (int dt = 0; dt < DP / 8; ++dt) {
        o[dt][2 * r] *= corr;
        o[dt][2 * r + 1] *= corr;
      }
      m[r] = mn;
    }
#pragma unroll
    for (int nt = 0; nt < BC / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float p = exp2f(sc[nt][e] - muse[e >> 1]);
        sc[nt][e] = p;
        l[e >> 1] += p;
      }
      // O += P V, P straight from registers.
#pragma unroll
    for (int kk = 0; kk < BC / 16; ++kk) {
      uint32_t pa[4];
      c_to_a(pa, sc[2 * kk], sc[2 * kk + 1]);
#pragma unroll
      for (int dt = 0; dt < DP / 8; ++dt) {
        uint32_t b0, b1;
        load_b(b0, b1, Vt, LDT, dt * 8, kk * 16, g, t);
        mma_bf16(o[dt], pa, b0, b1);
      }
    }
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    const int64_t i = i0 + warp * 16 + g + 8 * r;
    if (i >= nq) continue;
    const float inv = l[r] > 0.f ? 1.f / l[r] : 0.f;  // no real key: zeros
    bf16_t* orow = out + (q0 + i) * HD + off;
#pragma unroll
    for (int dt = 0; dt < DP / 8; ++dt) {
      int d = dt * 8 + 2 * t;
      if (d < s.D) *reinterpret_cast<uint32_t*>(orow + d) = pack_bf16(o[dt][2 * r] * inv, o[dt][2 * r + 1] * inv);
    }
    if (t == 0) lse[(q0 + i) * s.H + h] = l[r] > 0.f ? (m[r] + log2f(l[r])) * kLn2 : INFINITY;
  }
}

// ------------------------------------------------------------------ backward: dK, dV
template <int DP>
struct DkdvShape {
  static constexpr int BC = 64, BR = DP == 128 ? 32 : 64, LD = DP + 8, LDT = BR + 8;
  static constexpr size_t smem =
      size_t(2 * BC * LD + 2 * BR * LD + 2 * DP * LDT) * sizeof(bf16_t) + size_t(2 * BR) * sizeof(float);
};

template <int DP>
__global__ void __launch_bounds__(128)
    attn_bwd_dkdv_mma(const bf16_t* __restrict__ q, const bf16_t* __restrict__ k, const bf16_t* __restrict__ v,
                      const bf16_t* __restrict__ gout, const float* __restrict__ lse, const float* __restrict__ delta,
                      bf16_t* __restrict__ gk, bf16_t* __restrict__ gv, SeqInfo s, float scale, float scale_log2) {
  using S = DkdvShape<DP>;
  constexpr int BC = S::BC, BR = S::BR, LD = S::LD, LDT = S::LDT;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16_t* Ks = reinterpret_cast<bf16_t*>(smem);            // [BC][LD]
  bf16_t* Vs = Ks + BC * LD;                               // [BC][LD]
  bf16_t* Qs = Vs + BC * LD;                               // [BR][LD]
  bf16_t* Gs = Qs + BR * LD;                               // [BR][LD]: dO
  bf16_t* Qt = Gs + BR * LD;                               // [DP][LDT]: Q^T
  bf16_t* Gt = Qt + DP * LDT;                              // [DP][LDT]: dO^T
  float* lse_s = reinterpret_cast<float*>(Gt + DP * LDT);  // [BR], log2 units, +inf for rows without keys
  float* del_s = lse_s + BR;                               // [BR]

  const int64_t b = blockIdx.z, h = blockIdx.y;
  int64_t q0, nq, k0, nk;
  s.get(b, q0, nq, k0, nk);
  const int64_t j0 = int64_t(blockIdx.x) * BC;
  if (j0 >= nk) return;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int64_t HD = int64_t(s.H) * s.D, off = h * s.D;

  load_tile<BC, DP>(Ks, k + off, k0 + j0, nk - j0, HD, s.D);
  load_tile<BC, DP>(Vs, v + off, k0 + j0, nk - j0, HD, s.D);
  bool kreal[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    int64_t j = j0 + warp * 16 + g + 8 * r;
    kreal[r] = j < nk && s.key_real(b, j);
  }
  float dk[DP / 8][4], dv[DP / 8][4];
#pragma unroll
  for (int dt = 0; dt < DP / 8; ++dt)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[dt][e] = dv[dt][e] = 0.f;

  // Causal: the query loop starts at the first query that sees key j0 (the tiles before it are above
  // the diagonal); only the diagonal tiles mask, per element.
  const int64_t shift = nk - nq;  // query i sees keys j <= i + shift
  for (int64_t i0 = s.query_begin(j0, nq, nk); i0 < nq; i0 += BR) {
    __syncthreads();
    load_tile<BR, DP>(Qs, q + off, q0 + i0, nq - i0, HD, s.D);
    load_tile<BR, DP>(Gs, gout + off, q0 + i0, nq - i0, HD, s.D);
    load_tile_t<BR, DP>(Qt, q + off, q0 + i0, nq - i0, HD, s.D);
    load_tile_t<BR, DP>(Gt, gout + off, q0 + i0, nq - i0, HD, s.D);
    for (int i = threadIdx.x; i < BR; i += blockDim.x) {
      bool in = i0 + i < nq;
      lse_s[i] = in ? lse[(q0 + i0 + i) * s.H + h] * kLog2e : INFINITY;
      del_s[i] = in ? delta[(q0 + i0 + i) * s.H + h] : 0.f;
    }
    __syncthreads();
    // A diagonal tile: key row jr (tile-relative) and query column qc are masked when jr - qc > dd.
    const bool diag = s.causal && j0 + BC - 1 > i0 + shift;
    int dd;
    {
      const int64_t x = i0 + shift - j0;
      dd = x < -BR ? -BR : (x > BC ? BC : int(x));
    }

    // S^T = K Q^T for this warp's 16 keys against BR queries; P^T = exp(S^T * scale - lse).
    float st[BR / 8][4], dpt[BR / 8][4];
#pragma unroll
    for (int nt = 0; nt < BR / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) st[nt][e] = dpt[nt][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < DP / 16; ++kk) {
      uint32_t ka[4], va[4];
      load_a(ka, Ks, LD, warp * 16, kk * 16, g, t);
      load_a(va, Vs, LD, warp * 16, kk * 16, g, t);
#pragma unroll
      for (int nt = 0; nt < BR / 8; ++nt) {
        uint32_t b0, b1;
        load_b(b0, b1, Qs, LD, nt * 8, kk * 16, g, t);
        mma_bf16(st[nt], ka, b0, b1);
        load_b(b0, b1, Gs, LD, nt * 8, kk * 16, g, t);  // dP^T = V dO^T
        mma_bf16(dpt[nt], va, b0, b1);
      }
    }
#pragma unroll
    for (int nt = 0; nt < BR / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        int qc = nt * 8 + 2 * t + (e & 1);
        bool seen = kreal[e >> 1] && !(diag && warp * 16 + g + 8 * (e >> 1) - qc > dd);
        float p = seen ? exp2f(st[nt][e] * scale_log2 - lse_s[qc]) : 0.f;
        st[nt][e] = p;
        dpt[nt][e] = p * (dpt[nt][e] - del_s[qc]);  // dS^T
      }
      // dV += P^T dO and dK += dS^T Q (scale applied at the end).
#pragma unroll
    for (int kk = 0; kk < BR / 16; ++kk) {
      uint32_t pa[4], da[4];
      c_to_a(pa, st[2 * kk], st[2 * kk + 1]);
      c_to_a(da, dpt[2 * kk], dpt[2 * kk + 1]);
#pragma unroll
      for (int dt = 0; dt < DP / 8; ++dt) {
        uint32_t b0, b1;
        load_b(b0, b1, Gt, LDT, dt * 8, kk * 16, g, t);
        mma_bf16(dv[dt], pa, b0, b1);
        load_b(b0, b1, Qt, LDT, dt * 8, kk * 16, g, t);
        mma_bf16(dk[dt], da, b0, b1);
      }
    }
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t j = j0 + warp * 16 + g + 8 * r;
    if (j >= nk) continue;
    bf16_t* krow = gk + (k0 + j) * HD + off;
    bf16_t* vrow = gv + (k0 + j) * HD + off;
#pragma unroll
    for (int dt = 0; dt < DP / 8; ++dt) {
      int d = dt * 8 + 2 * t;
      if (d >= s.D) continue;
      *reinterpret_cast<uint32_t*>(krow + d) = pack_bf16(dk[dt][2 * r] * scale, dk[dt][2 * r + 1] * scale);
      *reinterpret_cast<uint32_t*>(vrow + d) = pack_bf16(dv[dt][2 * r], dv[dt][2 * r + 1]);
    }
  }
}

// ------------------------------------------------------------------ backward: dQ
template <int DP>
struct DqShape {
  static constexpr int BR = 64, BC = DP == 128 ? 32 : 64, LD = DP + 8, LDT = BC + 8;
  static constexpr size_t smem =
      size_t(2 * BR * LD + 2 * BC * LD + DP * LDT) * sizeof(bf16_t) + size_t(BC) * sizeof(float);
};

template <int DP>
__global__ void __launch_bounds__(128)
    attn_bwd_dq_mma(const bf16_t* __restrict__ q, const bf16_t* __restrict__ k, const bf16_t* __restrict__ v,
                    const bf16_t* __restrict__ gout, const float* __restrict__ lse, const float* __restrict__ delta,
                    bf16_t* __restrict__ gq, SeqInfo s, float scale, float scale_log2) {
  using S = DqShape<DP>;
  constexpr int BR = S::BR, BC = S::BC, LD = S::LD, LDT = S::LDT;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16_t* Qs = reinterpret_cast<bf16_t*>(smem);            // [BR][LD]
  bf16_t* Gs = Qs + BR * LD;                               // [BR][LD]: dO
  bf16_t* Ks = Gs + BR * LD;                               // [BC][LD]
  bf16_t* Vs = Ks + BC * LD;                               // [BC][LD]
  bf16_t* Kt = Vs + BC * LD;                               // [DP][LDT]: K^T
  float* kbias = reinterpret_cast<float*>(Kt + DP * LDT);  // [BC]

  const int64_t b = blockIdx.z, h = blockIdx.y;
  int64_t q0, nq, k0, nk;
  s.get(b, q0, nq, k0, nk);
  const int64_t i0 = int64_t(blockIdx.x) * BR;
  if (i0 >= nq) return;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int64_t HD = int64_t(s.H) * s.D, off = h * s.D;

  load_tile<BR, DP>(Qs, q + off, q0 + i0, nq - i0, HD, s.D);
  load_tile<BR, DP>(Gs, gout + off, q0 + i0, nq - i0, HD, s.D);
  float lse2[2], del[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    int64_t i = i0 + warp * 16 + g + 8 * r;
    lse2[r] = i < nq ? lse[(q0 + i) * s.H + h] * kLog2e : INFINITY;
    del[r] = i < nq ? delta[(q0 + i) * s.H + h] : 0.f;
  }
  float dq[DP / 8][4];
#pragma unroll
  for (int dt = 0; dt < DP / 8; ++dt) dq[dt][0] = dq[dt][1] = dq[dt][2] = dq[dt][3] = 0.f;

  // Causal: as in the forward, the key loop stops at the last row's horizon and only diagonal tiles mask.
  const int64_t kend = s.key_end((i0 + BR < nq ? i0 + BR : nq) - 1, nq, nk);
  const int64_t shift = nk - nq;
  for (int64_t j0 = 0; j0 < kend; j0 += BC) {
    __syncthreads();
    load_tile<BC, DP>(Ks, k + off, k0 + j0, nk - j0, HD, s.D);
    load_tile<BC, DP>(Vs, v + off, k0 + j0, nk - j0, HD, s.D);
    load_tile_t<BC, DP>(Kt, k + off, k0 + j0, nk - j0, HD, s.D);
    for (int j = threadIdx.x; j < BC; j += blockDim.x)
      kbias[j] = (j0 + j < nk && s.key_real(b, j0 + j)) ? 0.f : -INFINITY;
    __syncthreads();
    const bool diag = s.causal && j0 + BC - 1 > i0 + shift;
    int lim[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int64_t x = i0 + warp * 16 + g + 8 * r + shift - j0;
      lim[r] = x < -1 ? -1 : (x > BC ? BC : int(x));
    }

    float sc[BC / 8][4], dp[BC / 8][4];
#pragma unroll
    for (int nt = 0; nt < BC / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) sc[nt][e] = dp[nt][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < DP / 16; ++kk) {
      uint32_t qa[4], ga[4];
      load_a(qa, Qs, LD, warp * 16, kk * 16, g, t);
      load_a(ga, Gs, LD, warp * 16, kk * 16, g, t);
#pragma unroll
      for (int nt = 0; nt < BC / 8; ++nt) {
        uint32_t b0, b1;
        load_b(b0, b1, Ks, LD, nt * 8, kk * 16, g, t);
        mma_bf16(sc[nt], qa, b0, b1);
        load_b(b0, b1, Vs, LD, nt * 8, kk * 16, g, t);  // dP = dO V^T
        mma_bf16(dp[nt], ga, b0, b1);
      }
    }
#pragma unroll
    for (int nt = 0; nt < BC / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        int r = e >> 1, c = nt * 8 + 2 * t + (e & 1);
        float p = diag && c > lim[r] ? 0.f : exp2f(sc[nt][e] * scale_log2 + kbias[c] - lse2[r]);
        dp[nt][e] = p * (dp[nt][e] - del[r]);  // dS
      }
      // dQ += dS K (scale applied at the end).
#pragma unroll
    for (int kk = 0; kk < BC / 16; ++kk) {
      uint32_t da[4];
      c_to_a(da, dp[2 * kk], dp[2 * kk + 1]);
#pragma unroll
      for (int dt = 0; dt < DP / 8; ++dt) {
        uint32_t b0, b1;
        load_b(b0, b1, Kt, LDT, dt * 8, kk * 16, g, t);
        mma_bf16(dq[dt], da, b0, b1);
      }
    }
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t i = i0 + warp * 16 + g + 8 * r;
    if (i >= nq) continue;
    bf16_t* row = gq + (q0 + i) * HD + off;
#pragma unroll
    for (int dt = 0; dt < DP / 8; ++dt) {
      int d = dt * 8 + 2 * t;
      if (d < s.D) *reinterpret_cast<uint32_t*>(row + d) = pack_bf16(dq[dt][2 * r] * scale, dq[dt][2 * r + 1] * scale);
    }
  }
}

// ================================================================== decode step (flash-decoding)
// q [B, Lnew, H, D] against caches [B, Lmax, H, D] holding len = cache_len[b] keys of row b; query i
// sees keys j < len - Lnew + i + 1 (its horizon). Long caches are cut across CTAs: the keys are split
// into `splits` chunks of `chunk`, and a CTA takes one chunk for one (row, head, group of up to
// dec_queries<T>() queries). Its 4 warps walk every 4th key of the chunk, up to the group's last horizon (lanes over D,
// one key at a time as in the simple kernels), each keeping an online softmax per query; the warps
// are merged in shared memory and the CTA writes (max, sum, unnormalised output) per (query row,
// head, split). attn_decode_combine merges the splits of each (query row, head) in split order
// (deterministic) and normalises. A chunk past a row's length writes (-inf, 0, 0).
constexpr int kDecMinChunk = 64;  // a split takes at least this many keys
// Queries of one CTA: their accumulators live in registers (f64: 2, which fits 128 registers).
template <typename T>
constexpr int dec_queries() { return sizeof(acc_t<T>) == 8 ? 2 : 4; }

__device__ __forceinline__ int64_t read_len(const void* p, bool is64, int64_t b) {
  return is64 ? static_cast<const int64_t*>(p)[b] : int64_t(static_cast<const int32_t*>(p)[b]);
}

// Grid (splits, H, B * qgroups), 128 threads. part_ml [items, splits, 2], part_o [items, splits, D] with
// items = B * Lnew * H in q's row order.
template <typename T>
__global__ void __launch_bounds__(128)
    attn_decode_split(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                      const void* __restrict__ cache_len, bool len64, acc_t<T>* __restrict__ part_ml,
                      acc_t<T>* __restrict__ part_o, int64_t Lnew, int64_t Lmax, int H, int D, int64_t chunk,
                      int splits, int qgroups, double scale) {
  using A = acc_t<T>;
  constexpr int kDecQ = dec_queries<T>();
  __shared__ A sm_m[4][kDecQ], sm_l[4][kDecQ];
  __shared__ A sm_o[4][kDecQ][kMaxHeadDim];
  const int split = blockIdx.x, h = blockIdx.y;
  const int64_t b = blockIdx.z / qgroups, i0 = int64_t(blockIdx.z % qgroups) * kDecQ;
  const int nqq = int(Lnew - i0 < kDecQ ? Lnew - i0 : kDecQ);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t HD = int64_t(H) * D, len = read_len(cache_len, len64, b);
  const int64_t hz0 = len - Lnew + i0;  // query i0 + qq sees keys j <= hz0 + qq
  const int64_t j_begin = int64_t(split) * chunk;
  int64_t j_end = j_begin + chunk;
  if (j_end > hz0 + nqq) j_end = hz0 + nqq;  // past the group's last horizon: above the diagonal

  A qv[kDecQ][kLanes], o[kDecQ][kLanes], m[kDecQ], l[kDecQ];
#pragma unroll
  for (int qq = 0; qq < kDecQ; ++qq) {
    const T* qi = q + ((b * Lnew + i0 + qq) * H + h) * D;
#pragma unroll
    for (int r = 0; r < kLanes; ++r) {
      const int d = lane + 32 * r;
      qv[qq][r] = qq < nqq && d < D ? to_acc(qi[d]) : A(0);
      o[qq][r] = 0;
    }
    m[qq] = -std::numeric_limits<A>::infinity();
    l[qq] = 0;
  }
  for (int64_t j = j_begin + warp; j < j_end; j += 4) {
    const T* kj = k + (b * Lmax + j) * HD + int64_t(h) * D;
    const T* vj = v + (b * Lmax + j) * HD + int64_t(h) * D;
    A kv[kLanes], vv[kLanes];
#pragma unroll
    for (int r = 0; r < kLanes; ++r) {
      const int d = lane + 32 * r;
      kv[r] = d < D ? to_acc(kj[d]) : A(0);
      vv[r] = d < D ? to_acc(vj[d]) : A(0);
    }
#pragma unroll
    for (int qq = 0; qq < kDecQ; ++qq) {
      if (qq >= nqq || j > hz0 + qq) continue;  // uniform over the warp
      A dot = 0;
#pragma unroll
      for (int r = 0; r < kLanes; ++r) dot += qv[qq][r] * kv[r];
      dot = warp_sum(dot) * A(scale);
      const A mn = dot > m[qq] ? dot : m[qq];
      const A corr = m_exp(m[qq] - mn), p = m_exp(dot - mn);
      l[qq] = l[qq] * corr + p;
#pragma unroll
      for (int r = 0; r < kLanes; ++r) o[qq][r] = o[qq][r] * corr + p * vv[r];
      m[qq] = mn;
    }
  }
#pragma unroll
  for (int qq = 0; qq < kDecQ; ++qq) {
    if (lane == 0) {
      sm_m[warp][qq] = m[qq];
      sm_l[warp][qq] = l[qq];
    }
#pragma unroll
    for (int r = 0; r < kLanes; ++r) {
      const int d = lane + 32 * r;
      if (d < D) sm_o[warp][qq][d] = o[qq][r];
    }
  }
  __syncthreads();
  for (int x = threadIdx.x; x < nqq * D; x += blockDim.x) {
    const int qq = x / D, d = x % D;
    A M = sm_m[0][qq];
    for (int w = 1; w < 4; ++w) M = sm_m[w][qq] > M ? sm_m[w][qq] : M;
    A L = 0, O = 0;
    if (M != -std::numeric_limits<A>::infinity())
      for (int w = 0; w < 4; ++w) {
        const A c = m_exp(sm_m[w][qq] - M);  // a warp without keys: exp(-inf) = 0
        L += sm_l[w][qq] * c;
        O += sm_o[w][qq][d] * c;
      }
    const int64_t at = ((b * Lnew + i0 + qq) * H + h) * splits + split;
    part_o[at * D + d] = O;
    if (d == 0) {
      part_ml[2 * at] = M;
      part_ml[2 * at + 1] = L;
    }
  }
}

// out row `it` (a (query row, head) pair) from its splits: a warp per item.
template <typename T>
__global__ void attn_decode_combine(const acc_t<T>* __restrict__ part_ml, const acc_t<T>* __restrict__ part_o,
                                    T* __restrict__ out, int64_t items, int D, int splits) {
  using A = acc_t<T>;
  const int lane = threadIdx.x & 31;
  const int64_t step = int64_t(gridDim.x) * (blockDim.x >> 5);
  for (int64_t it = int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5); it < items; it += step) {
    const A* ml = part_ml + it * splits * 2;
    const A* po = part_o + it * splits * D;
    A M = -std::numeric_limits<A>::infinity();
    for (int sp = 0; sp < splits; ++sp) M = ml[2 * sp] > M ? ml[2 * sp] : M;
    A L = 0;
    if (M != -std::numeric_limits<A>::infinity())
      for (int sp = 0; sp < splits; ++sp) L += ml[2 * sp + 1] * m_exp(ml[2 * sp] - M);
    const A inv = L > A(0) ? A(1) / L : A(0);  // no key seen: zeros
    for (int d = lane; d < D; d += 32) {
      A O = 0;
      if (L > A(0))
        for (int sp = 0; sp < splits; ++sp) O += po[int64_t(sp) * D + d] * m_exp(ml[2 * sp] - M);
      out[it * D + d] = from_acc<T>(O * inv);
    }
  }
}

// ================================================================== launchers
struct Problem {
  SeqInfo s;
  int64_t B = 0, max_q = 0, max_k = 0, q_rows = 0;
};

Problem describe(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, const AttentionLayout& L) {
  for (const Tensor* t : {&q, &k, &v}) check_contiguous(*t, op, "q/k/v");
  PE_CHECK(q.dtype() == k.dtype() && q.dtype() == v.dtype() && is_floating(q.dtype()), op, ": q ", q.str(), ", k ",
           k.str(), ", v ", v.str(), " must share one floating dtype");
  Problem p;
  p.s.causal = L.causal;
  if (L.packed()) {
    PE_CHECK(q.dim() == 3 && k.dim() == 3 && k.shape() == v.shape() && k.size(1) == q.size(1) && k.size(2) == q.size(2),
             op, ": packed q [Tq, H, D], k, v [Tk, H, D] expected, got ", q.str(), ", ", k.str(), ", ", v.str());
    PE_CHECK(!L.key_mask.defined(), op, ": a packed batch takes no key mask");
    PE_CHECK(L.cu_k.defined(), op, ": cu_q given without cu_k");
    for (const Tensor* c : {&L.cu_q, &L.cu_k}) {
      check_contiguous(*c, op, "cumulative lengths");
      PE_CHECK((c->dtype() == DType::I32 || c->dtype() == DType::I64) && c->dim() == 1 && c->numel() >= 1, op,
               ": cumulative lengths must be i32 or i64 [B+1], got ", c->str());
    }
    PE_CHECK(L.cu_q.numel() == L.cu_k.numel() && L.cu_q.dtype() == L.cu_k.dtype(), op, ": cu_q ", L.cu_q.str(),
             " and cu_k ", L.cu_k.str(), " differ");
    PE_CHECK(L.max_q >= 0 && L.max_k >= 0, op, ": negative max length");
    p.B = L.cu_q.numel() - 1;
    p.max_q = L.max_q;
    p.max_k = L.max_k;
    p.s.cu_q = L.cu_q.raw_data();
    p.s.cu_k = L.cu_k.raw_data();
    p.s.cu64 = L.cu_q.dtype() == DType::I64;
    p.s.H = int(q.size(1));
    p.s.D = int(q.size(2));
  } else {
    PE_CHECK(q.dim() == 4 && k.dim() == 4 && k.shape() == v.shape() && k.size(0) == q.size(0) &&
                 k.size(2) == q.size(2) && k.size(3) == q.size(3),
             op, ": padded q [B, Lq, H, D], k, v [B, Lk, H, D] expected, got ", q.str(), ", ", k.str(), ", ", v.str());
    p.B = q.size(0);
    p.max_q = p.s.Lq = q.size(1);
    p.max_k = p.s.Lk = k.size(1);
    p.s.H = int(q.size(2));
    p.s.D = int(q.size(3));
    if (L.key_mask.defined()) {
      check_contiguous(L.key_mask, op, "key mask");
      PE_CHECK((L.key_mask.dtype() == DType::Bool || L.key_mask.dtype() == DType::U8) &&
                   L.key_mask.shape() == (Shape{p.B, p.s.Lk}),
               op, ": key mask must be bool or u8 [", p.B, ", ", p.s.Lk, "], got ", L.key_mask.str());
      p.s.mask = static_cast<const uint8_t*>(L.key_mask.raw_data());
    }
  }
  PE_CHECK(p.s.D >= 1 && p.s.D <= kMaxHeadDim, op, ": head dim ", p.s.D, " outside [1, ", kMaxHeadDim,
           "] on the CUDA backend");
  PE_CHECK(p.B <= 65535 && p.s.H <= 65535, op, ": ", p.B, " sequences x ", p.s.H, " heads exceed the CUDA grid");
  p.q_rows = q.numel() / p.s.D;
  return p;
}

void check_lse(const char* op, const Tensor& lse, const Tensor& q) {
  check_contiguous(lse, op, "lse");
  Shape ls(q.shape().begin(), q.shape().end() - 1);
  DType acc = q.dtype() == DType::F64 ? DType::F64 : DType::F32;
  PE_CHECK(lse.dtype() == acc && lse.shape() == ls, op, ": lse must be ", dtype_name(acc), " ", shape_str(ls), ", got ",
           lse.str());
}

void check_like(const char* op, const Tensor& t, const Tensor& like, const char* what) {
  check_contiguous(t, op, what);
  PE_CHECK(t.shape() == like.shape() && t.dtype() == like.dtype(), op, ": ", what, " ", t.str(), " does not match ",
           like.str());
}

// The tensor-core path: bf16, D % 8 == 0, every row start 16-byte aligned.
bool use_mma(const Problem& p, std::initializer_list<const Tensor*> ts) {
  if (force_simple() || p.s.D % 8 != 0) return false;
  for (const Tensor* t : ts)
    if (t->dtype() != DType::BF16 || !aligned16(t->raw_data())) return false;
  return true;
}

template <typename K>
void allow_smem(K kernel, size_t bytes, const char* op) {
  if (bytes > 48 * 1024)
    PE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)), op);
}

// Calls f(std::integral_constant<int, DP>) for the padded head dim.
template <typename F>
void dispatch_dp(int D, F&& f) {
  if (D <= 32)
    f(std::integral_constant<int, 32>{});
  else if (D <= 64)
    f(std::integral_constant<int, 64>{});
  else
    f(std::integral_constant<int, 128>{});
}

unsigned blocks(int64_t n, int per) { return unsigned((n + per - 1) / per); }

}  // namespace

void CudaBackend::attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionLayout& layout,
                                    const Tensor& out, const Tensor& lse) {
  const char* op = "attention_forward";
  Problem p = describe(op, q, k, v, layout);
  check_like(op, out, q, "output");
  check_lse(op, lse, q);
  if (p.B == 0 || p.max_q == 0 || q.numel() == 0) return;
  if (use_mma(p, {&q, &k, &v, &out})) {
    dispatch_dp(p.s.D, [&](auto dp) {
      constexpr int DP = decltype(dp)::value;
      using S = FwdShape<DP>;
      allow_smem(attn_fwd_mma<DP>, S::smem, op);
      dim3 grid(blocks(p.max_q, S::BR), unsigned(p.s.H), unsigned(p.B));
      attn_fwd_mma<DP><<<grid, 128, S::smem, stream()>>>(q.data<bf16_t>(), k.data<bf16_t>(), v.data<bf16_t>(),
                                                         out.data<bf16_t>(), lse.data<float>(), p.s,
                                                         float(layout.scale) * kLog2e);
    });
    PE_CUDA_LAUNCH_CHECK(op);
    return;
  }
  dispatch_float(q.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    dim3 grid(blocks(p.max_q, 4), unsigned(p.s.H), unsigned(p.B));
    attn_fwd_simple<T><<<grid, 128, 0, stream()>>>(q.data<T>(), k.data<T>(), v.data<T>(), out.data<T>(),
                                                   lse.data<acc_t<T>>(), p.s, layout.scale);
    PE_CUDA_LAUNCH_CHECK(op);
  });
}

void CudaBackend::attention_decode(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                                   const Tensor& cache_len, double scale, const Tensor& out) {
  const char* op = "attention_decode";
  for (const Tensor* t : {&q, &k_cache, &v_cache}) check_contiguous(*t, op, "q/k/v");
  PE_CHECK(q.dtype() == k_cache.dtype() && q.dtype() == v_cache.dtype() && is_floating(q.dtype()), op, ": q ", q.str(),
           ", k ", k_cache.str(), ", v ", v_cache.str(), " must share one floating dtype");
  PE_CHECK(q.dim() == 4 && k_cache.dim() == 4 && k_cache.shape() == v_cache.shape() && k_cache.size(0) == q.size(0) &&
               k_cache.size(2) == q.size(2) && k_cache.size(3) == q.size(3),
           op, ": q [B, Lnew, H, D], caches [B, Lmax, H, D] expected, got ", q.str(), ", ", k_cache.str(), ", ",
           v_cache.str());
  check_like(op, out, q, "output");
  const int64_t B = q.size(0), Lnew = q.size(1), H = q.size(2), D = q.size(3), Lmax = k_cache.size(1);
  check_contiguous(cache_len, op, "cache lengths");
  PE_CHECK((cache_len.dtype() == DType::I32 || cache_len.dtype() == DType::I64) && cache_len.shape() == Shape{B}, op,
           ": cache lengths must be i32 or i64 [", B, "], got ", cache_len.str());
  PE_CHECK(D >= 1 && D <= kMaxHeadDim, op, ": head dim ", D, " outside [1, ", kMaxHeadDim, "] on the CUDA backend");
  if (q.numel() == 0) return;
  const int64_t items = B * Lnew * H;
  dispatch_float(q.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const int64_t qgroups = (Lnew + dec_queries<T>() - 1) / dec_queries<T>();
    PE_CHECK(H <= 65535 && B * qgroups <= 65535, op, ": ", B, " rows x ", Lnew, " queries x ", H,
             " heads exceed the CUDA grid");
    // Enough CTAs for about four per multiprocessor, each split of at least kDecMinChunk keys. The
    // splits are sized by the capacity Lmax (the lengths stay on the device: no synchronisation).
    const int64_t base = B * H * qgroups, want = (4 * int64_t(sm_count()) + base - 1) / base;
    const int64_t most = std::max<int64_t>(1, (Lmax + kDecMinChunk - 1) / kDecMinChunk);
    const int64_t splits = std::max<int64_t>(1, std::min(want, most));
    const int64_t chunk = (Lmax + splits - 1) / splits;
    DeviceBuffer ml(size_t(items * splits * 2) * sizeof(A)), po(size_t(items * splits * D) * sizeof(A));
    dim3 grid(unsigned(splits), unsigned(H), unsigned(B * qgroups));
    attn_decode_split<T><<<grid, 128, 0, stream()>>>(q.data<T>(), k_cache.data<T>(), v_cache.data<T>(),
                                                     cache_len.raw_data(), cache_len.dtype() == DType::I64,
                                                     ml.as<A>(), po.as<A>(), Lnew, Lmax, int(H), int(D), chunk,
                                                     int(splits), int(qgroups), scale);
    PE_CUDA_LAUNCH_CHECK(op);
    attn_decode_combine<T><<<grid_for(items * 32, 128), 128, 0, stream()>>>(ml.as<A>(), po.as<A>(), out.data<T>(),
                                                                             items, int(D), int(splits));
    PE_CUDA_LAUNCH_CHECK(op);
  });
}

void CudaBackend::attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                     const Tensor& lse, const Tensor& gout, const AttentionLayout& layout,
                                     const Tensor& gq, const Tensor& gk, const Tensor& gv) {
  const char* op = "attention_backward";
  Problem p = describe(op, q, k, v, layout);
  check_like(op, out, q, "output");
  check_like(op, gout, q, "output gradient");
  check_like(op, gq, q, "q gradient");
  check_like(op, gk, k, "k gradient");
  check_like(op, gv, v, "v gradient");
  check_lse(op, lse, q);
  if (p.B == 0) return;
  const int64_t items = p.q_rows;  // (row, head) pairs
  dispatch_float(q.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    DeviceBuffer delta(size_t(items) * sizeof(A));
    if (items) {
      attn_delta_kernel<T>
          <<<grid_for(items * 32, 128), 128, 0, stream()>>>(out.data<T>(), gout.data<T>(), delta.as<A>(), items, p.s.D);
      PE_CUDA_LAUNCH_CHECK(op);
    }
    if constexpr (std::is_same_v<T, bf16_t>) {
      if (use_mma(p, {&q, &k, &v, &gout, &gq, &gk, &gv})) {
        dispatch_dp(p.s.D, [&](auto dp) {
          constexpr int DP = decltype(dp)::value;
          const float sc = float(layout.scale), sl2 = float(layout.scale) * kLog2e;
          if (p.max_k > 0) {
            using S = DkdvShape<DP>;
            allow_smem(attn_bwd_dkdv_mma<DP>, S::smem, op);
            dim3 grid(blocks(p.max_k, S::BC), unsigned(p.s.H), unsigned(p.B));
            attn_bwd_dkdv_mma<DP><<<grid, 128, S::smem, stream()>>>(
                q.data<T>(), k.data<T>(), v.data<T>(), gout.data<T>(), lse.data<float>(), delta.as<float>(),
                gk.data<T>(), gv.data<T>(), p.s, sc, sl2);
            PE_CUDA_LAUNCH_CHECK(op);
          }
          if (p.max_q > 0) {
            using S = DqShape<DP>;
            allow_smem(attn_bwd_dq_mma<DP>, S::smem, op);
            dim3 grid(blocks(p.max_q, S::BR), unsigned(p.s.H), unsigned(p.B));
            attn_bwd_dq_mma<DP><<<grid, 128, S::smem, stream()>>>(q.data<T>(), k.data<T>(), v.data<T>(), gout.data<T>(),
                                                                  lse.data<float>(), delta.as<float>(), gq.data<T>(),
                                                                  p.s, sc, sl2);
            PE_CUDA_LAUNCH_CHECK(op);
          }
        });
        return;
      }
    }
    if (p.max_k > 0) {
      dim3 grid(blocks(p.max_k, 4), unsigned(p.s.H), unsigned(p.B));
      attn_bwd_dkdv_simple<T><<<grid, 128, 0, stream()>>>(q.data<T>(), k.data<T>(), v.data<T>(), gout.data<T>(),
                                                          lse.data<A>(), delta.as<A>(), gk.data<T>(), gv.data<T>(), p.s,
                                                          layout.scale);
      PE_CUDA_LAUNCH_CHECK(op);
    }
    if (p.max_q > 0) {
      dim3 grid(blocks(p.max_q, 4), unsigned(p.s.H), unsigned(p.B));
      attn_bwd_dq_simple<T><<<grid, 128, 0, stream()>>>(q.data<T>(), k.data<T>(), v.data<T>(), gout.data<T>(),
                                                        lse.data<A>(), delta.as<A>(), gq.data<T>(), p.s, layout.scale);
      PE_CUDA_LAUNCH_CHECK(op);
    }
  });
}

}  // namespace pe::cuda
