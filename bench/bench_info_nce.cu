// Fused softmax-InfoNCE (Backend::info_nce_forward twice + info_nce_backward once, as
// fused_info_nce runs it) at ProtST's embedding width D = 512 and batch B = 256 .. 65536, bf16
// embeddings. FLOPs count the products a matmul + cross-entropy implementation does (logits 2 B^2 D,
// backward 4 B^2 D), so rows compare with bench/torch_fused_baselines.py; the engine executes 12 B^2 D
// (logits recomputed per pass) in exchange for O(B D) memory. Peak memory is what one loss + gradient
// allocates beyond its inputs (outputs included), from the caching allocator's statistics.
#include "bench/bench_common.h"
#include "kernels/cuda/cuda_api.h"

using namespace pe;

namespace {

void info_nce_case(int64_t B, int64_t D, const bench::Card& card) {
  Device dev = Device::cuda(0);
  Backend& be = *cuda_backend();
  int copies = bench::rotation_copies(size_t(2 * B * D) * 2, card);
  std::vector<Tensor> ps, ts;
  for (int i = 0; i < copies; ++i) {
    // Unnormalised random rows of norm ~sqrt(D) would saturate the softmax; scale to unit-ish norm.
    Tensor p = bench::random_tensor({B, D}, DType::F32, 300 + 2 * uint64_t(i));
    Tensor t = bench::random_tensor({B, D}, DType::F32, 301 + 2 * uint64_t(i));
    be.unary(UnaryOp::MulScalar, p, p, 1.0 / std::sqrt(double(D)));
    be.unary(UnaryOp::MulScalar, t, t, 1.0 / std::sqrt(double(D)));
    Tensor pb = Tensor::empty({B, D}, DType::BF16, dev), tb = Tensor::empty({B, D}, DType::BF16, dev);
    be.copy_strided(p, pb);
    be.copy_strided(t, tb);
    ps.push_back(pb);
    ts.push_back(tb);
  }
  InfoNceArgs args;
  args.logit_scale = Tensor::full({1}, std::log(1.0 / 0.07), DType::F32, dev);
  args.max_logit_scale = std::log(100.0);
  Tensor gloss = Tensor::full({1}, 1.0, DType::F32, dev);
  be.synchronize();
  cuda::reset_peak_memory();
  int64_t base = cuda::memory_stats().allocated_bytes;
  Tensor sr = Tensor::empty({B, 2}, DType::F32, dev), lr = Tensor::empty({B}, DType::F32, dev);
  Tensor sc = Tensor::empty({B, 2}, DType::F32, dev), lc = Tensor::empty({B}, DType::F32, dev);
  Tensor gp = Tensor::empty({B, D}, DType::BF16, dev), gt = Tensor::empty({B, D}, DType::BF16, dev);
  Tensor glog = Tensor::empty({B}, DType::F32, dev);
  auto fwd = [&](int i) {
    size_t c = size_t(i % copies);
    be.info_nce_forward(ps[c], ts[c], args, sr, lr);
    be.info_nce_forward(ts[c], ps[c], args, sc, lc);
  };
  auto fwd_bwd = [&](int i) {
    fwd(i);
    size_t c = size_t(i % copies);
    be.info_nce_backward(ps[c], ts[c], args, sr, sc, gloss, 1.0 / double(B), 1.0 / double(B), gp, gt, glog);
  };
  fwd_bwd(0);
  be.synchronize();
  double peak_mb = double(cuda::memory_stats().peak_allocated_bytes - base) / 1e6;
  int samples = B >= 16384 ? 10 : 50, warmup = B >= 16384 ? 1 : 5;
  std::string shape = std::to_string(B) + "x" + std::to_string(D);
  double b2d = double(B) * double(B) * double(D);
  bench::Timing f = bench::time_it(fwd, samples, warmup);
  bench::row("info_nce", "loss fwd", shape, "bf16", "engine", f, 2.0 * b2d, true, card);
  bench::Timing fb = bench::time_it(fwd_bwd, samples, warmup);
  bench::row("info_nce", "loss fwd+bwd", shape, "bf16", "engine", fb, 6.0 * b2d, true, card);
  std::printf("| info_nce | loss fwd+bwd peak memory | %s | bf16 | engine | %.1f MB | | | |\n", shape.c_str(), peak_mb);
}

}  // namespace

int main() {
  if (!bench::require_gpu()) return 0;
  bench::Card card = bench::card();
  std::printf(
      "bench_info_nce on %s (bf16 limit %.0f TFLOP/s; FLOPs of matmul + cross-entropy: fwd 2B^2D, fwd+bwd "
      "6B^2D)\n",
      card.name.c_str(), card.bf16_tflops);
  bench::header();
  for (int64_t B : {256, 1024, 4096, 16384, 65536}) info_nce_case(B, 512, card);
  return 0;
}
