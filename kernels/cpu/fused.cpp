// Fused attention, InfoNCE and masked cross-entropy on the CPU: the reference for the CUDA kernels
// (kernels/cuda/{attention,info_nce,masked_ce}.cu). Plain loops in the input dtype (f32 or f64),
// OpenMP over (sequence, head) pairs or rows. Nothing of size [Lq, Lk] or [R, C] is stored: a thread
// keeps one row of logits at a time.
//
// Attention backward per query row i (p_ij = exp(s_ij - lse_i), delta_i = dO_i . O_i):
//   dv_j += p_ij dO_i,  ds_ij = p_ij (dO_i . v_j - delta_i),  dq_i += scale ds_ij k_j,  dk_j += scale ds_ij q_i.
// Cross-entropy of rows against columns, logits z_ij = a x_i . y_j + bias_j, with the gradient of
// w_r sum_i (lse_i - lsep_i) + w_c sum_j (lse'_j - lsep'_j) with respect to z:
//   G_ij = w_r (e^(z_ij - lse_i) - pos_ij e^(z_ij - lsep_i)) + w_c (e^(z_ij - lse'_j) - pos_ij e^(z_ij - lsep'_j)),
//   dx_i = a sum_j G_ij y_j,  dy_j = a sum_i G_ij x_i,  dbias_j = sum_i G_ij,  dlog(a) = sum_ij G_ij (z_ij - bias_j).
#include <Eigen/Dense>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_common.h"
#include "kernels/cpu/attn_small.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/vec_exp.h"

namespace pe::cpu {

namespace {

DType acc_dtype(DType t) { return t == DType::F64 ? DType::F64 : DType::F32; }

void check_cpu(const char* op, const char* what, const Tensor& t) {
  PE_CHECK(t.defined(), op, ": ", what, " is undefined");
  PE_CHECK(t.device().is_cpu() && t.is_contiguous(), op, ": ", what, " ", t.str(), " must be a contiguous CPU tensor");
}

// ------------------------------------------------------------------ attention
// The rows of each sequence: queries q0[b] .. q0[b]+nq[b]-1, keys k0[b] .. k0[b]+nk[b]-1.
struct Sequences {
  int64_t B = 0, H = 0, D = 0;
  std::vector<int64_t> q0, nq, k0, nk;
  std::vector<uint8_t> mask;  // padded with a key mask: [B, Lk] of 0/1, else empty
  int64_t mask_stride = 0;
  bool causal = false;
  // Keys 0 .. key_end(b, i)-1 of sequence b are the ones query i may see (before the key mask):
  // all of them, or with causal (bottom-right aligned, backend.h) those j <= i + nk - nq.
  int64_t key_end(int64_t b, int64_t i) const {
    const int64_t n = nk[size_t(b)];
    if (!causal) return n;
    return std::clamp<int64_t>(i + n - nq[size_t(b)] + 1, 0, n);
  }
};

std::vector<int64_t> read_cu(const Tensor& cu, int64_t rows, const char* op, const char* what) {
  check_cpu(op, what, cu);
  PE_CHECK((cu.dtype() == DType::I32 || cu.dtype() == DType::I64) && cu.dim() == 1 && cu.numel() >= 1, op, ": ", what,
           " must be i32 or i64 [B+1], got ", cu.str());
  std::vector<int64_t> v = cu.to_int_vector();
  PE_CHECK(v.front() == 0 && v.back() == rows, op, ": ", what, " must run from 0 to ", rows, ", got ", v.front(),
           " .. ", v.back());
  for (size_t i = 1; i < v.size(); ++i) PE_CHECK(v[i] >= v[i - 1], op, ": ", what, " decreases at ", i);
  return v;
}

Sequences attention_sequences(const char* op, const Tensor& q, const Tensor& k, const Tensor& v,
                              const AttentionLayout& L) {
  for (const Tensor* t : {&q, &k, &v}) check_cpu(op, "q/k/v", *t);
  PE_CHECK(q.dtype() == k.dtype() && q.dtype() == v.dtype(), op, ": q ", q.str(), ", k ", k.str(), ", v ", v.str(),
           " differ in dtype");
  Sequences s;
  s.causal = L.causal;
  if (L.packed()) {
    PE_CHECK(q.dim() == 3 && k.dim() == 3 && k.shape() == v.shape() && k.size(1) == q.size(1) && k.size(2) == q.size(2),
             op, ": packed q [Tq, H, D], k, v [Tk, H, D] expected, got ", q.str(), ", ", k.str(), ", ", v.str());
    PE_CHECK(!L.key_mask.defined(), op, ": a packed batch takes no key mask");
    PE_CHECK(L.cu_k.defined(), op, ": cu_q given without cu_k");
    std::vector<int64_t> cq = read_cu(L.cu_q, q.size(0), op, "cu_q"), ck = read_cu(L.cu_k, k.size(0), op, "cu_k");
    PE_CHECK(cq.size() == ck.size(), op, ": cu_q ", L.cu_q.str(), " and cu_k ", L.cu_k.str(), " differ in length");
    s.B = int64_t(cq.size()) - 1;
    s.H = q.size(1);
    s.D = q.size(2);
    for (int64_t b = 0; b < s.B; ++b) {
      s.q0.push_back(cq[size_t(b)]);
      s.nq.push_back(cq[size_t(b) + 1] - cq[size_t(b)]);
      s.k0.push_back(ck[size_t(b)]);
      s.nk.push_back(ck[size_t(b) + 1] - ck[size_t(b)]);
    }
    return s;
  }
  PE_CHECK(q.dim() == 4 && k.dim() == 4 && k.shape() == v.shape() && k.size(0) == q.size(0) && k.size(2) == q.size(2) &&
               k.size(3) == q.size(3),
           op, ": padded q [B, Lq, H, D], k, v [B, Lk, H, D] expected, got ", q.str(), ", ", k.str(), ", ", v.str());
  s.B = q.size(0);
  s.H = q.size(2);
  s.D = q.size(3);
  int64_t Lq = q.size(1), Lk = k.size(1);
  for (int64_t b = 0; b < s.B; ++b) {
    s.q0.push_back(b * Lq);
    s.nq.push_back(Lq);
    s.k0.push_back(b * Lk);
    s.nk.push_back(Lk);
  }
  if (L.key_mask.defined()) {
    check_cpu(op, "key mask", L.key_mask);
    PE_CHECK((L.key_mask.dtype() == DType::Bool || L.key_mask.dtype() == DType::U8) &&
                 L.key_mask.shape() == (Shape{s.B, Lk}),
             op, ": key mask must be bool or u8 [", s.B, ", ", Lk, "], got ", L.key_mask.str());
    const uint8_t* m = static_cast<const uint8_t*>(L.key_mask.raw_data());
    s.mask.assign(m, m + s.B * Lk);
    s.mask_stride = Lk;
  }
  return s;
}

bool key_real(const Sequences& s, int64_t b, int64_t j) {
  return s.mask.empty() || s.mask[size_t(b * s.mask_stride + j)] != 0;
}

// Scaled logits of query row i of (b, h) against the keys it may see, j < s.key_end(b, i) (-inf for
// masked keys); returns the max.
template <typename T>
T logits_row(const Sequences& s, const T* q, const T* k, int64_t b, int64_t h, int64_t i, double scale, T* row) {
  const int64_t HD = s.H * s.D;
  const T* qi = q + (s.q0[size_t(b)] + i) * HD + h * s.D;
  T mx = -std::numeric_limits<T>::infinity();
  for (int64_t j = 0, je = s.key_end(b, i); j < je; ++j) {
    if (!key_real(s, b, j)) {
      row[j] = -std::numeric_limits<T>::infinity();
      continue;
    }
    const T* kj = k + (s.k0[size_t(b)] + j) * HD + h * s.D;
    T dot = 0;
    for (int64_t d = 0; d < s.D; ++d) dot += qi[d] * kj[d];
    row[j] = dot * T(scale);
    mx = std::max(mx, row[j]);
  }
  return mx;
}

template <typename T>
void attention_forward_impl(const Sequences& s, const T* q, const T* k, const T* v, double scale, T* out, T* lse) {
  const int64_t HD = s.H * s.D;
  int64_t max_k = 0;
  for (int64_t n : s.nk) max_k = std::max(max_k, n);
#pragma omp parallel
  {
    std::vector<T> row(static_cast<size_t>(max_k));
#pragma omp for collapse(2) schedule(dynamic)
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t h = 0; h < s.H; ++h)
        for (int64_t i = 0; i < s.nq[size_t(b)]; ++i) {
          T* oi = out + (s.q0[size_t(b)] + i) * HD + h * s.D;
          T* li = lse + (s.q0[size_t(b)] + i) * s.H + h;
          std::fill(oi, oi + s.D, T(0));
          T mx = logits_row(s, q, k, b, h, i, scale, row.data());
          if (mx == -std::numeric_limits<T>::infinity()) {  // no real key: zeros, lse +inf
            *li = std::numeric_limits<T>::infinity();
            continue;
          }
          T sum = 0;
          for (int64_t j = 0, je = s.key_end(b, i); j < je; ++j) {
            T p = std::exp(row[size_t(j)] - mx);  // exp(-inf) = 0 for masked keys
            if (p == T(0)) continue;
            sum += p;
            const T* vj = v + (s.k0[size_t(b)] + j) * HD + h * s.D;
            for (int64_t d = 0; d < s.D; ++d) oi[d] += p * vj[d];
          }
          for (int64_t d = 0; d < s.D; ++d) oi[d] /= sum;
          *li = mx + std::log(sum);
        }
  }
}

// Parallel over (b, h): every gradient row written belongs to that pair alone, so the sums are
// formed in a fixed order (deterministic).
template <typename T>
void attention_backward_impl(const Sequences& s, const T* q, const T* k, const T* v, const T* out, const T* lse,
                             const T* gout, double scale, T* gq, T* gk, T* gv) {
  const int64_t HD = s.H * s.D;
  const T sc = T(scale);
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.H; ++h) {
      for (int64_t i = 0; i < s.nq[size_t(b)]; ++i) std::fill_n(gq + (s.q0[size_t(b)] + i) * HD + h * s.D, s.D, T(0));
      for (int64_t j = 0; j < s.nk[size_t(b)]; ++j) {
        std::fill_n(gk + (s.k0[size_t(b)] + j) * HD + h * s.D, s.D, T(0));
        std::fill_n(gv + (s.k0[size_t(b)] + j) * HD + h * s.D, s.D, T(0));
      }
      for (int64_t i = 0; i < s.nq[size_t(b)]; ++i) {
        int64_t qrow = (s.q0[size_t(b)] + i) * HD + h * s.D;
        T li = lse[(s.q0[size_t(b)] + i) * s.H + h];
        if (li == std::numeric_limits<T>::infinity()) continue;  // no real key: no gradient
        const T *qi = q + qrow, *oi = out + qrow, *goi = gout + qrow;
        T* gqi = gq + qrow;
        T delta = 0;
        for (int64_t d = 0; d < s.D; ++d) delta += goi[d] * oi[d];
        for (int64_t j = 0, je = s.key_end(b, i); j < je; ++j) {
          if (!key_real(s, b, j)) continue;
          int64_t krow = (s.k0[size_t(b)] + j) * HD + h * s.D;
          const T *kj = k + krow, *vj = v + krow;
          T dot = 0, dp = 0;
          for (int64_t d = 0; d < s.D; ++d) {
            dot += qi[d] * kj[d];
            dp += goi[d] * vj[d];
          }
          T p = std::exp(dot * sc - li);
          T ds = p * (dp - delta) * sc;
          T *gkj = gk + krow, *gvj = gv + krow;
          for (int64_t d = 0; d < s.D; ++d) {
            gqi[d] += ds * kj[d];
            gkj[d] += ds * qi[d];
            gvj[d] += p * goi[d];
          }
        }
      }
    }
}

// ------------------------------------------------------------------ attention, blocked (the fast path)
// The same mathematics on blocks of query rows with matrix products, so the work runs in the
// GEMM micro-kernels instead of scalar dot products: per (sequence, head) and block of at most
// kAttnBlock query rows, S = scale Q K^T (+ -inf at masked keys), P = exp(S - lse), O = P V; the
// backward recomputes P and forms dV += P^T dO, dS = P (dO V^T - delta), dQ = scale dS K,
// dK += scale dS^T Q. Q, K, V, O are read in place through strided maps ([rows, H*D] with the head
// at column h*D): nothing is transposed or copied, and only one [block, Lk] tile per thread exists.
// The products go through gemm_rowmajor (oneDNN's sgemm for f32 where built: 1.4-1.7x Eigen's here,
// bench_cpu_attention; a register-tiled kernel of our own for D = 16..64 was tried and was slower).
// Forward tasks are (sequence, head, query block); backward tasks are (sequence, head), whose dK,
// dV rows no other task writes, summed over the query blocks in order (deterministic).
// Causal: a query block multiplies only the keys its last row may see (Sequences::key_end), so the
// key blocks above the diagonal are never touched; inside that range the rows' own horizons are
// masked with -inf (the diagonal part). About half the work of the non-causal product for nq == nk.
constexpr int64_t kAttnBlock = 128;
constexpr double kLog2e = 1.4426950408889634074, kLn2 = 0.69314718055994530942;
// Rows per query block for a sequence of n queries: n split into ceil(n / kAttnBlock) blocks of equal
// size (so 130 rows are two blocks of 65, not 128 and a 2-row block whose products run at a fraction
// of the GEMM's speed).
inline int64_t attn_block_rows(int64_t n) {
  const int64_t blocks = (n + kAttnBlock - 1) / kAttnBlock;
  return blocks > 0 ? (n + blocks - 1) / blocks : kAttnBlock;
}

// -inf at the keys of the block's rows i0 .. i0+rows-1 beyond each row's causal horizon; S holds the
// first kend keys (kend = the last row's horizon).
template <typename Mat>
void mask_diagonal(const Sequences& s, int64_t b, int64_t i0, Mat& S) {
  if (!s.causal) return;
  const int64_t kend = S.cols();
  for (int64_t i = 0; i < S.rows(); ++i) {
    const int64_t e = s.key_end(b, i0 + i);
    if (e < kend) S.row(i).tail(kend - e).setConstant(-std::numeric_limits<typename Mat::Scalar>::infinity());
  }
}

template <typename T>
struct AttnMaps {
  using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using CMap = Eigen::Map<const RowMat, 0, Eigen::OuterStride<>>;
  using MMap = Eigen::Map<RowMat, 0, Eigen::OuterStride<>>;
};

// Column bias of the keys of sequence b: 0 for a real key, -inf for a masked one; empty if all are real.
template <typename T>
std::vector<T> key_bias(const Sequences& s, int64_t b) {
  if (s.mask.empty()) return {};
  std::vector<T> bias(size_t(s.nk[size_t(b)]));
  bool any = false;
  for (int64_t j = 0; j < s.nk[size_t(b)]; ++j) {
    bool real = key_real(s, b, j);
    bias[size_t(j)] = real ? T(0) : -std::numeric_limits<T>::infinity();
    any |= !real;
  }
  if (!any) bias.clear();
  return bias;
}

std::atomic<bool>& small_head_flag();  // set_small_head_attention (below)

template <typename T>
void attention_forward_blocked(const Sequences& s, const T* q, const T* k, const T* v, double scale, T* out, T* lse) {
  using M = AttnMaps<T>;
  const int64_t HD = s.H * s.D, D = s.D;
  struct Task { int64_t b, h, i0, n; };
  std::vector<Task> tasks;
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.H; ++h)
      for (int64_t i0 = 0, bs = attn_block_rows(s.nq[size_t(b)]); i0 < s.nq[size_t(b)]; i0 += bs)
        tasks.push_back({b, h, i0, std::min(bs, s.nq[size_t(b)] - i0)});
  std::vector<std::vector<T>> biases(size_t(s.B));
  for (int64_t b = 0; b < s.B; ++b) biases[size_t(b)] = key_bias<T>(s, b);
  const T inf = std::numeric_limits<T>::infinity();
  std::atomic<bool> failed{false};
  // f32 at head dims 16 / 24 / 32 (ESM-2 8M / 35M / 150M): both products in registers (attn_small.h).
  bool small = false;
  if constexpr (std::is_same_v<T, float>) small = attn_small_supported(D) && small_head_flag().load();
  // f32 scores in base 2: log2 e folded into the products' scale (exp(s) = 2^(s log2 e)), so the softmax
  // runs vec_exp.h's exp2, a third cheaper than its exp; lse goes back to base e. f64: base e.
  constexpr bool base2 = std::is_same_v<T, float>;
  const double sscale = base2 ? scale * kLog2e : scale;
#pragma omp parallel if (tasks.size() > 1)
  {
    // Eigen's aligned storage for S: the GEMM (seen with Eigen's f64 product) rounds differently at
    // another alignment, and malloc's 16-byte alignment varies between calls; the result must not.
    Eigen::Matrix<T, Eigen::Dynamic, 1> Sbuf;
    std::vector<T> inv;
    // The small-head-dim path's packed K and V of one (sequence, head), reused by that pair's next
    // query blocks when this thread takes them (tasks are in (b, h, block) order).
    Eigen::Matrix<float, Eigen::Dynamic, 1> Kp, Vp;
    int64_t packed_b = -1, packed_h = -1;
#pragma omp for schedule(dynamic)
    for (size_t t = 0; t < tasks.size(); ++t) {
      const Task& tk = tasks[t];
      const int64_t nk = s.key_end(tk.b, tk.i0 + tk.n - 1);  // the keys any row of the block sees
      const int64_t qrow = s.q0[size_t(tk.b)] + tk.i0;
      typename M::MMap O(out + qrow * HD + tk.h * D, tk.n, D, Eigen::OuterStride<>(HD));
      T* L = lse + qrow * s.H + tk.h;
      if (nk == 0) {
        O.setZero();
        for (int64_t i = 0; i < tk.n; ++i) L[i * s.H] = inf;
        continue;
      }
      typename M::CMap Q(q + qrow * HD + tk.h * D, tk.n, D, Eigen::OuterStride<>(HD));
      typename M::CMap K(k + s.k0[size_t(tk.b)] * HD + tk.h * D, nk, D, Eigen::OuterStride<>(HD));
      typename M::CMap V(v + s.k0[size_t(tk.b)] * HD + tk.h * D, nk, D, Eigen::OuterStride<>(HD));
      const std::vector<T>& bias = biases[size_t(tk.b)];
      // S = scale Q K^T into rows of lds >= nk values.
      int64_t lds = nk;
      if constexpr (std::is_same_v<T, float>) {
        if (small) {
          if (tk.b != packed_b || tk.h != packed_h) {  // every key any block of the sequence sees
            const int64_t all = s.key_end(tk.b, s.nq[size_t(tk.b)] - 1);
            Kp.resize(attn_small_keys_padded(all) * D);
            Vp.resize(all * D);
            attn_pack_k(K.data(), HD, all, D, Kp.data());
            attn_pack_v(V.data(), HD, all, D, Vp.data());
            packed_b = tk.b;
            packed_h = tk.h;
          }
          lds = attn_small_keys_padded(nk);
          Sbuf.resize(tk.n * lds);
          attn_qk_small(Q.data(), HD, Kp.data(), nk, Sbuf.data(), lds, tk.n, D, float(sscale));
        }
      }
      if (!small) {
        Sbuf.resize(tk.n * nk);
        if (!gemm_rowmajor<T>(false, true, tk.n, nk, D, T(sscale), Q.data(), HD, K.data(), HD, T(0), Sbuf.data(), nk))
          failed = true;
      }
      typename M::MMap S(Sbuf.data(), tk.n, nk, Eigen::OuterStride<>(lds));
      if (!bias.empty()) S.rowwise() += Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(bias.data(), nk);
      mask_diagonal(s, tk.b, tk.i0, S);
      // Unnormalised P = exp(S - max) times V, then each output row times 1 / sum: n x D multiplies
      // instead of n x nk divisions (the softmax was 14 % of an ESM-2 8M embedding pass).
      inv.resize(size_t(tk.n));
      for (int64_t i = 0; i < tk.n; ++i) {
        T mx;
        if constexpr (std::is_same_v<T, float>) mx = row_max_f32(&S(i, 0), nk);
        else mx = S.row(i).maxCoeff();
        if (mx == -inf) {  // no real key: zeros, lse +inf
          S.row(i).setZero();
          inv[size_t(i)] = T(0);
          L[i * s.H] = inf;
          continue;
        }
        T sum;
        if constexpr (base2) {
          sum = exp2_shift_sum_f32(&S(i, 0), nk, mx);  // 2^(s - max) and its sum in one pass (vec_exp.h)
          L[i * s.H] = mx * T(kLn2) + std::log(sum);  // lse in base e: ln 2 max + ln sum (float logf)
        } else {
          S.row(i) = (S.row(i).array() - mx).exp().matrix();
          sum = S.row(i).sum();
          L[i * s.H] = mx + std::log(sum);
        }
        inv[size_t(i)] = T(1) / sum;
      }
      if constexpr (std::is_same_v<T, float>) {
        if (small) {
          attn_pv_small(Sbuf.data(), lds, Vp.data(), D, O.data(), HD, tk.n, nk, D, inv.data());
          continue;
        }
      }
      if (!gemm_rowmajor<T>(false, false, tk.n, D, nk, T(1), Sbuf.data(), lds, V.data(), HD, T(0), O.data(), HD))
        failed = true;
      for (int64_t i = 0; i < tk.n; ++i) O.row(i) *= inv[size_t(i)];
    }
  }
  PE_CHECK(!failed, "attention_forward: oneDNN sgemm failed");
}

template <typename T>
void attention_backward_blocked(const Sequences& s, const T* q, const T* k, const T* v, const T* out, const T* lse,
                                const T* gout, double scale, T* gq, T* gk, T* gv) {
  using M = AttnMaps<T>;
  const int64_t HD = s.H * s.D, D = s.D;
  const T sc = T(scale), inf = std::numeric_limits<T>::infinity();
  // P recomputed as the forward formed it: f32 in base 2 (2^(s log2 e - lse log2 e)), f64 in base e.
  constexpr bool base2 = std::is_same_v<T, float>;
  const T sp = T(base2 ? scale * kLog2e : scale);
  std::atomic<bool> failed{false};
#pragma omp parallel if (s.B * s.H > 1)
  {
    typename M::RowMat P, dP;
    Eigen::Matrix<T, Eigen::Dynamic, 1> delta;
#pragma omp for collapse(2) schedule(dynamic)
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t h = 0; h < s.H; ++h) {
        const int64_t nk = s.nk[size_t(b)], k0 = s.k0[size_t(b)];
        typename M::CMap K(k + k0 * HD + h * D, nk, D, Eigen::OuterStride<>(HD));
        typename M::CMap V(v + k0 * HD + h * D, nk, D, Eigen::OuterStride<>(HD));
        typename M::MMap dK(gk + k0 * HD + h * D, nk, D, Eigen::OuterStride<>(HD));
        typename M::MMap dV(gv + k0 * HD + h * D, nk, D, Eigen::OuterStride<>(HD));
        dK.setZero();
        dV.setZero();
        std::vector<T> bias = key_bias<T>(s, b);
        const int64_t bs = attn_block_rows(s.nq[size_t(b)]);
        for (int64_t i0 = 0; i0 < s.nq[size_t(b)]; i0 += bs) {
          const int64_t n = std::min(bs, s.nq[size_t(b)] - i0);
          const int64_t qrow = s.q0[size_t(b)] + i0;
          typename M::CMap Q(q + qrow * HD + h * D, n, D, Eigen::OuterStride<>(HD));
          typename M::CMap O(out + qrow * HD + h * D, n, D, Eigen::OuterStride<>(HD));
          typename M::CMap dO(gout + qrow * HD + h * D, n, D, Eigen::OuterStride<>(HD));
          typename M::MMap dQ(gq + qrow * HD + h * D, n, D, Eigen::OuterStride<>(HD));
          const int64_t ke = s.key_end(b, i0 + n - 1);  // the keys any row of the block sees
          if (ke == 0) {
            dQ.setZero();
            continue;
          }
          const T* L = lse + qrow * s.H + h;
          P.resize(n, ke);
          bool ok = gemm_rowmajor<T>(false, true, n, ke, D, sp, Q.data(), HD, K.data(), HD, T(0), P.data(), ke);
          if (!bias.empty()) P.rowwise() += Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(bias.data(), ke);
          mask_diagonal(s, b, i0, P);
          for (int64_t i = 0; i < n; ++i) {
            T li = L[i * s.H];
            if (li == inf) P.row(i).setZero();  // no real key: no gradient
            else if constexpr (base2) exp2_shift_sum_f32(&P(i, 0), ke, T(double(li) * kLog2e));
            else P.row(i) = (P.row(i).array() - li).exp().matrix();
          }
          ok &= gemm_rowmajor<T>(true, false, ke, D, n, T(1), P.data(), ke, dO.data(), HD, T(1), dV.data(), HD);
          dP.resize(n, ke);
          ok &= gemm_rowmajor<T>(false, true, n, ke, D, T(1), dO.data(), HD, V.data(), HD, T(0), dP.data(), ke);
          delta = (dO.array() * O.array()).rowwise().sum().matrix();
          dP = (P.array() * (dP.array().colwise() - delta.array())).matrix();  // dS
          ok &= gemm_rowmajor<T>(false, false, n, D, ke, sc, dP.data(), ke, K.data(), HD, T(0), dQ.data(), HD);
          ok &= gemm_rowmajor<T>(true, false, ke, D, n, sc, dP.data(), ke, Q.data(), HD, T(1), dK.data(), HD);
          if (!ok) failed = true;
        }
      }
  }
  PE_CHECK(!failed, "attention_backward: oneDNN sgemm failed");
}

// PE_FUSED_SIMPLE=1 runs the plain loops above instead (as on CUDA): the obviously-correct version.
std::atomic<bool>& simple_attention_flag() {
  static std::atomic<bool> on([] {
    const char* e = std::getenv("PE_FUSED_SIMPLE");
    return e && std::string(e) == "1";
  }());
  return on;
}
bool use_simple_attention() { return simple_attention_flag().load(); }
std::atomic<bool>& small_head_flag() {
  static std::atomic<bool> on([] {
    const char* e = std::getenv("PE_ATTN_SMALL");
    return !(e && std::string(e) == "0");
  }());
  return on;
}

// ------------------------------------------------------------------ cross-entropy of rows against columns
// The engine behind info_nce_* and masked_ce_* (see the file comment).
struct Xent {
  const char* op = "";
  Tensor x, y, bias;  // [R, D], [C, D], [C] or undefined
  InfoNceArgs args;
  int64_t R = 0, C = 0, D = 0;
  double a = 1.0;  // exp(min(logit_scale, max))
  std::vector<int64_t> rkey, ckey;
};

Xent make_xent(const char* op, const Tensor& x, const Tensor& y, const Tensor& bias, const InfoNceArgs& args) {
  check_cpu(op, "rows", x);
  check_cpu(op, "columns", y);
  PE_CHECK(x.dim() == 2 && y.dim() == 2 && x.size(1) == y.size(1) && x.dtype() == y.dtype(), op,
           ": rows [R, D] and columns [C, D] of one dtype expected, got ", x.str(), " and ", y.str());
  Xent p;
  p.op = op;
  p.x = x;
  p.y = y;
  p.bias = bias;
  p.args = args;
  p.R = x.size(0);
  p.C = y.size(0);
  p.D = x.size(1);
  if (bias.defined()) {
    check_cpu(op, "bias", bias);
    PE_CHECK(bias.dtype() == x.dtype() && bias.shape() == Shape{p.C}, op, ": bias ", bias.str(), " is not [", p.C,
             "] of ", dtype_name(x.dtype()));
  }
  if (args.logit_scale.defined()) {
    PE_CHECK(args.logit_scale.numel() == 1 && is_floating(args.logit_scale.dtype()), op,
             ": logit scale must be one floating element, got ", args.logit_scale.str());
    p.a = std::exp(std::min(args.logit_scale.item(), args.max_logit_scale));
  }
  auto keys = [&](const Tensor& g, int64_t n, int64_t offset, const char* what) {
    std::vector<int64_t> k(static_cast<size_t>(n));
    if (g.defined()) {
      check_cpu(op, what, g);
      PE_CHECK(g.dtype() == DType::I64 && g.shape() == Shape{n}, op, ": ", what, " must be i64 [", n, "], got ",
               g.str());
      const int64_t* gp = g.data<int64_t>();
      std::copy(gp, gp + n, k.begin());
    } else {
      for (int64_t i = 0; i < n; ++i) k[size_t(i)] = offset + i;
    }
    return k;
  };
  p.rkey = keys(args.row_group, p.R, args.row_offset, "row groups");
  p.ckey = keys(args.col_group, p.C, 0, "column groups");
  return p;
}

void check_acc(const char* op, const char* what, const Tensor& t, DType acc, const Shape& shape) {
  check_cpu(op, what, t);
  PE_CHECK(t.dtype() == acc && t.shape() == shape, op, ": ", what, " must be ", dtype_name(acc), " ", shape_str(shape),
           ", got ", t.str());
}

// z_ij for all j of row i; returns (max over all, max over positives).
template <typename T>
void xent_row(const Xent& p, const T* x, const T* y, const T* bias, int64_t i, T* z) {
  const T* xi = x + i * p.D;
  for (int64_t j = 0; j < p.C; ++j) {
    const T* yj = y + j * p.D;
    T dot = 0;
    for (int64_t d = 0; d < p.D; ++d) dot += xi[d] * yj[d];
    z[j] = T(p.a) * dot + (bias ? bias[j] : T(0));
  }
}

template <typename T>
void xent_forward_impl(const Xent& p, T* stats, T* loss) {
  const T* x = p.x.data<T>();
  const T* y = p.y.data<T>();
  const T* bias = p.bias.defined() ? p.bias.data<T>() : nullptr;
  const T kNegInf = -std::numeric_limits<T>::infinity();
#pragma omp parallel
  {
    std::vector<T> z(static_cast<size_t>(p.C));
#pragma omp for schedule(static)
    for (int64_t i = 0; i < p.R; ++i) {
      xent_row(p, x, y, bias, i, z.data());
      T m = kNegInf, mp = kNegInf;
      for (int64_t j = 0; j < p.C; ++j) {
        m = std::max(m, z[size_t(j)]);
        if (p.ckey[size_t(j)] == p.rkey[size_t(i)]) mp = std::max(mp, z[size_t(j)]);
      }
      T s = 0, sp = 0;
      for (int64_t j = 0; j < p.C; ++j) {
        s += std::exp(z[size_t(j)] - m);
        if (p.ckey[size_t(j)] == p.rkey[size_t(i)]) sp += std::exp(z[size_t(j)] - mp);
      }
      T lse = m + std::log(s), lsep = mp == kNegInf ? kNegInf : mp + std::log(sp);
      stats[2 * i] = lse;
      stats[2 * i + 1] = lsep;
      loss[i] = lse - lsep;
    }
  }
}

// G_ij (see the file comment); col_stats may be null.
template <typename T>
inline T xent_g(T z, bool pos, const T* rs, const T* cs, T wr, T wc) {
  T g = wr * (std::exp(z - rs[0]) - (pos ? std::exp(z - rs[1]) : T(0)));
  if (cs) g += wc * (std::exp(z - cs[0]) - (pos ? std::exp(z - cs[1]) : T(0)));
  return g;
}

template <typename T>
void xent_backward_impl(const Xent& p, const T* row_stats, const T* col_stats, T wr, T wc, T* gx, T* gy, T* glog,
                        T* gbias) {
  const T* x = p.x.data<T>();
  const T* y = p.y.data<T>();
  const T* bias = p.bias.defined() ? p.bias.data<T>() : nullptr;
  const T a = T(p.a);
  // Rows: dx_i and dlog(a)_i.
#pragma omp parallel
  {
    std::vector<T> z(static_cast<size_t>(p.C));
#pragma omp for schedule(static)
    for (int64_t i = 0; i < p.R; ++i) {
      xent_row(p, x, y, bias, i, z.data());
      T* gxi = gx + i * p.D;
      std::fill_n(gxi, p.D, T(0));
      T gl = 0;
      for (int64_t j = 0; j < p.C; ++j) {
        T g = xent_g(z[size_t(j)], p.ckey[size_t(j)] == p.rkey[size_t(i)], row_stats + 2 * i,
                     col_stats ? col_stats + 2 * j : nullptr, wr, wc);
        gl += g * (z[size_t(j)] - (bias ? bias[j] : T(0)));
        const T* yj = y + j * p.D;
        for (int64_t d = 0; d < p.D; ++d) gxi[d] += g * yj[d];
      }
      for (int64_t d = 0; d < p.D; ++d) gxi[d] *= a;
      if (glog) glog[i] = gl;
    }
  }
  // Columns: dy_j and dbias_j.
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < p.C; ++j) {
    const T* yj = y + j * p.D;
    T* gyj = gy + j * p.D;
    std::fill_n(gyj, p.D, T(0));
    T gb = 0;
    for (int64_t i = 0; i < p.R; ++i) {
      const T* xi = x + i * p.D;
      T dot = 0;
      for (int64_t d = 0; d < p.D; ++d) dot += xi[d] * yj[d];
      T z = a * dot + (bias ? bias[j] : T(0));
      T g = xent_g(z, p.ckey[size_t(j)] == p.rkey[size_t(i)], row_stats + 2 * i,
                   col_stats ? col_stats + 2 * j : nullptr, wr, wc);
      gb += g;
      for (int64_t d = 0; d < p.D; ++d) gyj[d] += g * xi[d];
    }
    for (int64_t d = 0; d < p.D; ++d) gyj[d] *= a;
    if (gbias) gbias[j] = gb;
  }
}

void xent_forward(const Xent& p, const Tensor& stats, const Tensor& loss) {
  DType acc = acc_dtype(p.x.dtype());
  check_acc(p.op, "statistics", stats, acc, {p.R, 2});
  check_acc(p.op, "loss", loss, acc, {p.R});
  dispatch_float(p.x.dtype(), p.op, [&](auto tag) {
    using T = decltype(tag);
    xent_forward_impl<T>(p, stats.data<T>(), loss.data<T>());
  });
}

void xent_backward(const Xent& p, const Tensor& row_stats, const Tensor& col_stats, const Tensor& gloss,
                   double row_weight, double col_weight, const Tensor& gx, const Tensor& gy, const Tensor& glog,
                   const Tensor& gbias) {
  DType acc = acc_dtype(p.x.dtype());
  check_acc(p.op, "row statistics", row_stats, acc, {p.R, 2});
  if (col_stats.defined()) check_acc(p.op, "column statistics", col_stats, acc, {p.C, 2});
  check_cpu(p.op, "loss gradient", gloss);
  PE_CHECK(gloss.numel() == 1 && is_floating(gloss.dtype()), p.op, ": loss gradient must be one floating element, got ",
           gloss.str());
  for (const Tensor* t : {&gx, &gy}) check_cpu(p.op, "gradient", *t);
  PE_CHECK(
      gx.shape() == p.x.shape() && gx.dtype() == p.x.dtype() && gy.shape() == p.y.shape() && gy.dtype() == p.y.dtype(),
      p.op, ": gradients ", gx.str(), ", ", gy.str(), " do not match ", p.x.str(), ", ", p.y.str());
  if (glog.defined()) check_acc(p.op, "logit-scale gradient", glog, acc, {p.R});
  if (gbias.defined()) {
    check_cpu(p.op, "bias gradient", gbias);
    PE_CHECK(gbias.shape() == Shape{p.C} && gbias.dtype() == p.x.dtype(), p.op, ": bias gradient ", gbias.str(),
             " is not [", p.C, "]");
  }
  double g = gloss.item();
  dispatch_float(p.x.dtype(), p.op, [&](auto tag) {
    using T = decltype(tag);
    xent_backward_impl<T>(p, row_stats.data<T>(), col_stats.defined() ? col_stats.data<T>() : nullptr,
                          T(g * row_weight), T(g * col_weight), gx.data<T>(), gy.data<T>(),
                          glog.defined() ? glog.data<T>() : nullptr, gbias.defined() ? gbias.data<T>() : nullptr);
  });
}

// Masked CE on the engine: the positive of row i is column targets[i]; a = 1.
Xent masked_ce_problem(const char* op, const Tensor& hidden, const Tensor& weight, const Tensor& bias,
                       const Tensor& targets) {
  Xent p = make_xent(op, hidden, weight, bias, InfoNceArgs{});
  check_cpu(op, "targets", targets);
  PE_CHECK(targets.dtype() == DType::I64 && targets.shape() == Shape{p.R}, op, ": targets must be i64 [", p.R,
           "], got ", targets.str());
  const int64_t* t = targets.data<int64_t>();
  for (int64_t i = 0; i < p.R; ++i)
    PE_CHECK(t[i] >= 0 && t[i] < p.C, op, ": target ", t[i], " of row ", i, " outside [0, ", p.C, ")");
  p.rkey.assign(t, t + p.R);
  return p;
}

}  // namespace

// ------------------------------------------------------------------ Backend methods
bool set_simple_attention(bool on) { return simple_attention_flag().exchange(on); }
bool set_small_head_attention(bool on) { return small_head_flag().exchange(on); }

void CpuBackend::attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionLayout& layout,
                                   const Tensor& out, const Tensor& lse) {
  const char* op = "attention_forward";
  Sequences s = attention_sequences(op, q, k, v, layout);
  check_cpu(op, "output", out);
  PE_CHECK(out.shape() == q.shape() && out.dtype() == q.dtype(), op, ": output ", out.str(), " does not match q ",
           q.str());
  Shape ls(q.shape().begin(), q.shape().end() - 1);
  check_acc(op, "lse", lse, acc_dtype(q.dtype()), ls);
  dispatch_float(q.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    if (use_simple_attention())
      attention_forward_impl<T>(s, q.data<T>(), k.data<T>(), v.data<T>(), layout.scale, out.data<T>(), lse.data<T>());
    else
      attention_forward_blocked<T>(s, q.data<T>(), k.data<T>(), v.data<T>(), layout.scale, out.data<T>(), lse.data<T>());
  });
}

void CpuBackend::attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                    const Tensor& lse, const Tensor& gout, const AttentionLayout& layout,
                                    const Tensor& gq, const Tensor& gk, const Tensor& gv) {
  const char* op = "attention_backward";
  Sequences s = attention_sequences(op, q, k, v, layout);
  for (const Tensor* t : {&out, &gout, &gq}) {
    check_cpu(op, "output/gradient", *t);
    PE_CHECK(t->shape() == q.shape() && t->dtype() == q.dtype(), op, ": ", t->str(), " does not match q ", q.str());
  }
  for (const Tensor* t : {&gk, &gv}) {
    check_cpu(op, "gradient", *t);
    PE_CHECK(t->shape() == k.shape() && t->dtype() == k.dtype(), op, ": ", t->str(), " does not match k ", k.str());
  }
  Shape ls(q.shape().begin(), q.shape().end() - 1);
  check_acc(op, "lse", lse, acc_dtype(q.dtype()), ls);
  dispatch_float(q.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    auto run = use_simple_attention() ? attention_backward_impl<T> : attention_backward_blocked<T>;
    run(s, q.data<T>(), k.data<T>(), v.data<T>(), out.data<T>(), lse.data<T>(), gout.data<T>(), layout.scale,
        gq.data<T>(), gk.data<T>(), gv.data<T>());
  });
}

// The decode step is causal attention of each row's Lnew queries over the first cache_len[b] keys of
// its cache: the same engine on sequences (q rows b*Lnew .., cache rows b*Lmax ..), lse discarded.
void CpuBackend::attention_decode(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                                  const Tensor& cache_len, double scale, const Tensor& out) {
  const char* op = "attention_decode";
  for (const Tensor* t : {&q, &k_cache, &v_cache}) check_cpu(op, "q/k/v", *t);
  PE_CHECK(q.dtype() == k_cache.dtype() && q.dtype() == v_cache.dtype(), op, ": q ", q.str(), ", k ", k_cache.str(),
           ", v ", v_cache.str(), " differ in dtype");
  PE_CHECK(q.dim() == 4 && k_cache.dim() == 4 && k_cache.shape() == v_cache.shape() && k_cache.size(0) == q.size(0) &&
               k_cache.size(2) == q.size(2) && k_cache.size(3) == q.size(3),
           op, ": q [B, Lnew, H, D], caches [B, Lmax, H, D] expected, got ", q.str(), ", ", k_cache.str(), ", ",
           v_cache.str());
  check_cpu(op, "output", out);
  PE_CHECK(out.shape() == q.shape() && out.dtype() == q.dtype(), op, ": output ", out.str(), " does not match q ",
           q.str());
  check_cpu(op, "cache lengths", cache_len);
  const int64_t B = q.size(0), Lnew = q.size(1), Lmax = k_cache.size(1);
  PE_CHECK((cache_len.dtype() == DType::I32 || cache_len.dtype() == DType::I64) && cache_len.shape() == Shape{B}, op,
           ": cache lengths must be i32 or i64 [", B, "], got ", cache_len.str());
  std::vector<int64_t> len = cache_len.to_int_vector();
  Sequences s;
  s.B = B;
  s.H = q.size(2);
  s.D = q.size(3);
  s.causal = true;
  for (int64_t b = 0; b < B; ++b) {
    PE_CHECK(len[size_t(b)] >= 0 && len[size_t(b)] <= Lmax, op, ": cache length ", len[size_t(b)], " of row ", b,
             " outside [0, ", Lmax, "]");
    s.q0.push_back(b * Lnew);
    s.nq.push_back(Lnew);
    s.k0.push_back(b * Lmax);
    s.nk.push_back(len[size_t(b)]);
  }
  if (q.numel() == 0) return;
  Tensor lse = Tensor::empty({B, Lnew, s.H}, acc_dtype(q.dtype()));
  dispatch_float(q.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    auto run = use_simple_attention() ? attention_forward_impl<T> : attention_forward_blocked<T>;
    run(s, q.data<T>(), k_cache.data<T>(), v_cache.data<T>(), scale, out.data<T>(), lse.data<T>());
  });
}

void CpuBackend::info_nce_forward(const Tensor& x, const Tensor& y, const InfoNceArgs& args, const Tensor& stats,
                                  const Tensor& loss) {
  xent_forward(make_xent("info_nce_forward", x, y, Tensor(), args), stats, loss);
}

void CpuBackend::info_nce_backward(const Tensor& x, const Tensor& y, const InfoNceArgs& args, const Tensor& row_stats,
                                   const Tensor& col_stats, const Tensor& gloss, double row_weight, double col_weight,
                                   const Tensor& gx, const Tensor& gy, const Tensor& glog) {
  xent_backward(make_xent("info_nce_backward", x, y, Tensor(), args), row_stats, col_stats, gloss, row_weight,
                col_weight, gx, gy, glog, Tensor());
}

void CpuBackend::masked_ce_forward(const Tensor& hidden, const Tensor& weight, const Tensor& bias,
                                   const Tensor& targets, const Tensor& stats, const Tensor& loss) {
  xent_forward(masked_ce_problem("masked_ce_forward", hidden, weight, bias, targets), stats, loss);
}

void CpuBackend::masked_ce_backward(const Tensor& hidden, const Tensor& weight, const Tensor& bias,
                                    const Tensor& targets, const Tensor& stats, const Tensor& gloss, double row_weight,
                                    const Tensor& ghidden, const Tensor& gweight, const Tensor& gbias) {
  xent_backward(masked_ce_problem("masked_ce_backward", hidden, weight, bias, targets), stats, Tensor(), gloss,
                row_weight, 0.0, ghidden, gweight, Tensor(), gbias);
}

}  // namespace pe::cpu
