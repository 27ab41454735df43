// Adam/AdamW: the per-tensor adam_step, and a fused multi-tensor step (apex's multi_tensor_apply
// layout: tensor pointers and a block -> (tensor, chunk) table travel as kernel arguments) that
// updates fp32 master weights and moments and writes the bf16 (or f32) working copy in one pass.
#include <cmath>
#include <map>

#include "kernels/cuda/cuda_backend.cuh"
#include "kernels/cuda/elementwise.cuh"

namespace pe::cuda {

namespace {

struct AdamConsts {
  double lr, beta1, beta2, eps, weight_decay, bc1, bc2;
  bool decoupled;
};
AdamConsts adam_consts(const AdamParams& p) {
  return {p.lr, p.beta1, p.beta2, p.eps, p.weight_decay, 1.0 - std::pow(p.beta1, double(p.step)),
          1.0 - std::pow(p.beta2, double(p.step)), p.decoupled};
}

// The update of one element, in A (the CPU reference does it in double).
template <typename A>
__device__ __forceinline__ void adam_update(const AdamConsts& c, A g, A& w, A& m, A& v) {
  if (c.weight_decay != 0.0) {
    if (c.decoupled) w *= A(1) - A(c.lr) * A(c.weight_decay);
    else g += A(c.weight_decay) * w;
  }
  m = A(c.beta1) * m + (A(1) - A(c.beta1)) * g;
  v = A(c.beta2) * v + (A(1) - A(c.beta2)) * g * g;
  w -= A(c.lr) * (m / A(c.bc1)) / (m_sqrt(v / A(c.bc2)) + A(c.eps));
}

template <typename P, typename A>
__global__ void adam_step_kernel(int64_t n, AdamConsts c, P* __restrict__ w, FloatPtr g, FloatPtr m, FloatPtr v) {
  int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    A wi = A(to_acc(w[i])), mi = m.load<A>(i), vi = v.load<A>(i);
    adam_update<A>(c, g.load<A>(i), wi, mi, vi);
    m.store(i, mi);
    v.store(i, vi);
    w[i] = from_acc<P>(wi);
  }
}

// ------------------------------------------------------------------ multi-tensor
constexpr int kMtTensors = 36;
constexpr int kMtBlocks = 320;
constexpr int64_t kMtChunk = 65536;
constexpr int kMtThreads = 512;
struct MtArgs {  // ~3.3 KB: within the 4 KB kernel-parameter limit of every CUDA version
  float* w[kMtTensors];
  const void* g[kMtTensors];
  float* m[kMtTensors];
  float* v[kMtTensors];
  void* out[kMtTensors];
  int64_t n[kMtTensors];
  uint8_t block_tensor[kMtBlocks];
  int32_t block_chunk[kMtBlocks];
};

// G: gradient type; O: working-copy type (void = none). VEC: elements per packed access.
template <typename G, typename O, int VEC>
__global__ void __launch_bounds__(kMtThreads) adam_multi_kernel(MtArgs args, AdamConsts c) {
  int t = args.block_tensor[blockIdx.x];
  int64_t begin = int64_t(args.block_chunk[blockIdx.x]) * kMtChunk;
  int64_t n = args.n[t] - begin < kMtChunk ? args.n[t] - begin : kMtChunk;
  float* w = args.w[t] + begin;
  const G* g = static_cast<const G*>(args.g[t]) + begin;
  float* m = args.m[t] + begin;
  float* v = args.v[t] + begin;
  int64_t nv = n / VEC;
  for (int64_t j = threadIdx.x; j < nv; j += blockDim.x) {
    Pack<float, VEC> pw = reinterpret_cast<const Pack<float, VEC>*>(w)[j];
    Pack<float, VEC> pm = reinterpret_cast<const Pack<float, VEC>*>(m)[j];
    Pack<float, VEC> pv = reinterpret_cast<const Pack<float, VEC>*>(v)[j];
    Pack<G, VEC> pg = reinterpret_cast<const Pack<G, VEC>*>(g)[j];
#pragma unroll
    for (int k = 0; k < VEC; ++k) adam_update<float>(c, to_acc(pg.v[k]), pw.v[k], pm.v[k], pv.v[k]);
    reinterpret_cast<Pack<float, VEC>*>(w)[j] = pw;
    reinterpret_cast<Pack<float, VEC>*>(m)[j] = pm;
    reinterpret_cast<Pack<float, VEC>*>(v)[j] = pv;
    if constexpr (!std::is_void_v<O>) {
      Pack<O, VEC> po;
#pragma unroll
      for (int k = 0; k < VEC; ++k) po.v[k] = from_acc<O>(pw.v[k]);
      reinterpret_cast<Pack<O, VEC>*>(static_cast<O*>(args.out[t]) + begin)[j] = po;
    }
  }
  for (int64_t i = nv * VEC + threadIdx.x; i < n; i += blockDim.x) {
    float wi = w[i], mi = m[i], vi = v[i];
    adam_update<float>(c, to_acc(g[i]), wi, mi, vi);
    w[i] = wi;
    m[i] = mi;
    v[i] = vi;
    if constexpr (!std::is_void_v<O>) static_cast<O*>(args.out[t])[begin + i] = from_acc<O>(wi);
  }
}

template <typename G, typename O>
void run_multi(const std::vector<size_t>& ids, const std::vector<Tensor>& master, const std::vector<Tensor>& grad,
               const std::vector<Tensor>& m, const std::vector<Tensor>& v, const std::vector<Tensor>& working,
               const AdamConsts& c) {
  bool aligned = true;
  for (size_t t : ids) {
    aligned &= aligned16(master[t].raw_data()) && aligned16(grad[t].raw_data()) && aligned16(m[t].raw_data()) &&
               aligned16(v[t].raw_data());
    if constexpr (!std::is_void_v<O>) aligned &= aligned16(working[t].raw_data());
  }
  MtArgs args{};
  int ntens = 0, nblocks = 0;
  auto launch = [&]() {
    if (aligned)
      adam_multi_kernel<G, O, 4><<<nblocks, kMtThreads, 0, stream()>>>(args, c);
    else
      adam_multi_kernel<G, O, 1><<<nblocks, kMtThreads, 0, stream()>>>(args, c);
    PE_CUDA_LAUNCH_CHECK("adam_multi_tensor");
  };
  for (size_t idx = 0; idx < ids.size(); ++idx) {
    size_t t = ids[idx];
    int64_t n = master[t].numel();
    args.w[ntens] = master[t].data<float>();
    args.g[ntens] = grad[t].raw_data();
    args.m[ntens] = m[t].data<float>();
    args.v[ntens] = v[t].data<float>();
    args.out[ntens] = std::is_void_v<O> ? nullptr : working[t].raw_data();
    args.n[ntens] = n;
    ++ntens;
    int64_t chunks = (n + kMtChunk - 1) / kMtChunk;
    for (int64_t ch = 0; ch < chunks; ++ch) {
      args.block_tensor[nblocks] = uint8_t(ntens - 1);
      args.block_chunk[nblocks] = int32_t(ch);
      ++nblocks;
      bool last_chunk = ch == chunks - 1;
      if (nblocks == kMtBlocks || (last_chunk && (ntens == kMtTensors || idx + 1 == ids.size()))) {
        launch();
        nblocks = 0;
        if (last_chunk) {
          ntens = 0;
        } else {  // the tensor continues in the next launch as slot 0
          args.w[0] = args.w[ntens - 1];
          args.g[0] = args.g[ntens - 1];
          args.m[0] = args.m[ntens - 1];
          args.v[0] = args.v[ntens - 1];
          args.out[0] = args.out[ntens - 1];
          args.n[0] = args.n[ntens - 1];
          ntens = 1;
        }
      }
    }
  }
}

}  // namespace

void CudaBackend::adam_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                            const AdamParams& p) {
  check_contiguous(param, "adam_step", "parameter");
  FloatPtr g = float_ptr(grad, "adam_step", "gradient");
  FloatPtr mp = float_ptr(m, "adam_step", "first moment"), vp = float_ptr(v, "adam_step", "second moment");
  int64_t n = param.numel();
  PE_CHECK(grad.numel() == n && m.numel() == n && v.numel() == n, "adam_step: ", grad.str(), ", ", m.str(), ", ",
           v.str(), " do not match ", param.str());
  if (n == 0) return;
  AdamConsts c = adam_consts(p);
  bool wide = param.dtype() == DType::F64 || m.dtype() == DType::F64 || v.dtype() == DType::F64;
  dispatch_float(param.dtype(), "adam_step", [&](auto tag) {
    using P = decltype(tag);
    if (wide)
      adam_step_kernel<P, double><<<grid_for(n, 256), 256, 0, stream()>>>(n, c, param.data<P>(), g, mp, vp);
    else
      adam_step_kernel<P, float><<<grid_for(n, 256), 256, 0, stream()>>>(n, c, param.data<P>(), g, mp, vp);
    PE_CUDA_LAUNCH_CHECK("adam_step");
  });
}

void CudaBackend::adam_multi_tensor(const std::vector<Tensor>& master, const std::vector<Tensor>& grad,
                                   const std::vector<Tensor>& m, const std::vector<Tensor>& v,
                                   const std::vector<Tensor>& working, const AdamParams& p) {
  size_t count = master.size();
  PE_CHECK(grad.size() == count && m.size() == count && v.size() == count && (working.empty() || working.size() == count),
           "adam_multi_tensor: list lengths differ (master ", count, ", grad ", grad.size(), ", m ", m.size(), ", v ",
           v.size(), ", working ", working.size(), ")");
  AdamConsts c = adam_consts(p);
  // Group the fused cases by (gradient dtype, working dtype); anything else takes adam_step.
  std::map<std::pair<int, int>, std::vector<size_t>> groups;
  for (size_t t = 0; t < count; ++t) {
    const Tensor& w = master[t];
    bool has_out = !working.empty() && working[t].defined();
    check_contiguous(w, "adam_multi_tensor", "master weight");
    for (const Tensor* o : {&grad[t], &m[t], &v[t], has_out ? &working[t] : nullptr}) {
      if (!o) continue;
      check_contiguous(*o, "adam_multi_tensor", "operand");
      PE_CHECK(o->numel() == w.numel() && is_floating(o->dtype()), "adam_multi_tensor: ", o->str(),
               " does not match master weight ", w.str());
    }
    PE_CHECK((w.dtype() == DType::F32 || w.dtype() == DType::F64) && m[t].dtype() == w.dtype() &&
                 v[t].dtype() == w.dtype(),
             "adam_multi_tensor: master ", w.str(), " and moments ", m[t].str(), ", ", v[t].str(),
             " must share dtype f32 or f64");
    if (w.numel() == 0) continue;
    bool fused = w.dtype() == DType::F32 && (grad[t].dtype() == DType::F32 || grad[t].dtype() == DType::BF16) &&
                 (!has_out || working[t].dtype() == DType::F32 || working[t].dtype() == DType::BF16);
    if (!fused) {
      adam_step(w, grad[t], m[t], v[t], p);
      if (has_out) copy_strided(w, working[t]);
      continue;
    }
    groups[{int(grad[t].dtype()), has_out ? int(working[t].dtype()) : -1}].push_back(t);
  }
  for (const auto& group : groups) {
    int out_dtype = group.first.second;
    const std::vector<size_t>& ids = group.second;
    auto with_out = [&](auto gtag) {
      using G = decltype(gtag);
      if (out_dtype < 0) run_multi<G, void>(ids, master, grad, m, v, working, c);
      else if (out_dtype == int(DType::BF16)) run_multi<G, bf16_t>(ids, master, grad, m, v, working, c);
      else run_multi<G, float>(ids, master, grad, m, v, working, c);
    };
    if (group.first.first == int(DType::BF16)) with_out(bf16_t{});
    else with_out(float{});
  }
}

}  // namespace pe::cuda
