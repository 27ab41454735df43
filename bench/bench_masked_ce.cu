// Fused masked cross-entropy (Backend::masked_ce_forward + masked_ce_backward, as
// fused_masked_cross_entropy runs it): the 15% masked rows of 64k tokens (M = 9830) through a
// d = 512 head into the ESM-2 vocabulary (V = 33) and a BERT vocabulary (V = 30522), bf16. FLOPs
// count the products of linear + cross-entropy (logits 2 M V d, backward 4 M V d) so rows compare with
// bench/torch_fused_baselines.py (which also times the row gather); the engine recomputes the logits in
// each backward pass instead of storing [M, V]. Peak memory is what one loss + gradient allocates
// beyond its inputs (outputs included).
#include "bench/bench_common.h"
#include "kernels/cuda/cuda_api.h"

using namespace pe;

namespace {

void masked_ce_case(int64_t M, int64_t d, int64_t V, const bench::Card& card) {
  Device dev = Device::cuda(0);
  Backend& be = *cuda_backend();
  int copies = bench::rotation_copies(size_t(M * d + V * d) * 2, card);
  std::vector<Tensor> hs, ws, bs, tgs;
  for (int i = 0; i < copies; ++i) {
    Tensor h = bench::random_tensor({M, d}, DType::F32, 500 + 4 * uint64_t(i));
    Tensor w = bench::random_tensor({V, d}, DType::F32, 501 + 4 * uint64_t(i));
    be.unary(UnaryOp::MulScalar, w, w, 1.0 / std::sqrt(double(d)));
    Tensor hb = Tensor::empty({M, d}, DType::BF16, dev), wb = Tensor::empty({V, d}, DType::BF16, dev);
    be.copy_strided(h, hb);
    be.copy_strided(w, wb);
    hs.push_back(hb);
    ws.push_back(wb);
    bs.push_back(bench::random_tensor({V}, DType::BF16, 502 + 4 * uint64_t(i)));
    Tensor u = Tensor::empty({M}, DType::F32, dev);
    be.random(u, RandomKind::Uniform, 0.0, double(V) - 1e-3, 503 + 4 * uint64_t(i), 0);
    Tensor t = Tensor::empty({M}, DType::I64, dev);
    be.copy_strided(u, t);  // truncation: uniform integers in [0, V)
    tgs.push_back(t);
  }
  Tensor gloss = Tensor::full({1}, 1.0, DType::F32, dev);
  be.synchronize();
  cuda::reset_peak_memory();
  int64_t base = cuda::memory_stats().allocated_bytes;
  Tensor st = Tensor::empty({M, 2}, DType::F32, dev), ls = Tensor::empty({M}, DType::F32, dev);
  Tensor gh = Tensor::empty({M, d}, DType::BF16, dev), gw = Tensor::empty({V, d}, DType::BF16, dev);
  Tensor gb = Tensor::empty({V}, DType::BF16, dev);
  auto fwd = [&](int i) {
    size_t c = size_t(i % copies);
    be.masked_ce_forward(hs[c], ws[c], bs[c], tgs[c], st, ls);
  };
  auto fwd_bwd = [&](int i) {
    fwd(i);
    size_t c = size_t(i % copies);
    be.masked_ce_backward(hs[c], ws[c], bs[c], tgs[c], st, gloss, 1.0 / double(M), gh, gw, gb);
  };
  fwd_bwd(0);
  be.synchronize();
  double peak_mb = double(cuda::memory_stats().peak_allocated_bytes - base) / 1e6;
  std::string shape = std::to_string(M) + "x" + std::to_string(d) + " V" + std::to_string(V);
  double mvd = double(M) * double(V) * double(d);
  bench::Timing f = bench::time_it(fwd);
  bench::row("masked_ce", "loss fwd", shape, "bf16", "engine", f, 2.0 * mvd, true, card);
  bench::Timing fb = bench::time_it(fwd_bwd);
  bench::row("masked_ce", "loss fwd+bwd", shape, "bf16", "engine", fb, 6.0 * mvd, true, card);
  std::printf("| masked_ce | loss fwd+bwd peak memory | %s | bf16 | engine | %.1f MB | | | |\n", shape.c_str(),
              peak_mb);
}

}  // namespace

int main() {
  if (!bench::require_gpu()) return 0;
  bench::Card card = bench::card();
  std::printf(
      "bench_masked_ce on %s (bf16 limit %.0f TFLOP/s; FLOPs of linear + cross-entropy: fwd 2MVd, "
      "fwd+bwd 6MVd)\n",
      card.name.c_str(), card.bf16_tflops);
  bench::header();
  const int64_t M = (65536 * 15 + 50) / 100;  // 15% of 64k tokens
  for (int64_t V : {33, 30522}) masked_ce_case(M, 512, V, card);
  return 0;
}
