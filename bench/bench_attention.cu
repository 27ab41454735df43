// Fused attention (Backend::attention_forward / attention_backward; bf16 tensor-core kernels) at the
// head dims of the models (ESM-2 35M: 24, 150M: 32, 650M and fusion: 64) and sequence lengths
// 128..2048, batch x heads chosen so every launch holds 2^18 query rows (many waves on the card).
// FLOPs use the FlashAttention accounting: forward 4 B H Lq Lk D, forward + backward 3.5x that (the
// engine's deterministic backward does 7 products instead of 5, counted as 5). A packed
// variable-length row (lengths uniform in [L/4, L]) reports real tokens per second as well.
// bench/torch_fused_baselines.py times PyTorch scaled_dot_product_attention (flash backend) on the
// same shapes. Causal rows count half the FLOPs of the full product (the FlashAttention convention).
// Decode rows: one new token per row against a KV cache (attention_decode, split across CTAs),
// judged by the cache bytes read against the card's bandwidth.
#include <random>

#include "bench/bench_common.h"

using namespace pe;

namespace {

struct Set {
  std::vector<Tensor> q, k, v, out, lse, go, gq, gk, gv;
};

Set make_set(const Shape& qs, const Shape& ks, int copies) {
  Device dev = Device::cuda(0);
  Set s;
  Shape ls(qs.begin(), qs.end() - 1);
  for (int i = 0; i < copies; ++i) {
    uint64_t seed = 1000 + 10 * uint64_t(i);
    s.q.push_back(bench::random_tensor(qs, DType::BF16, seed));
    s.k.push_back(bench::random_tensor(ks, DType::BF16, seed + 2));
    s.v.push_back(bench::random_tensor(ks, DType::BF16, seed + 4));
    s.go.push_back(bench::random_tensor(qs, DType::BF16, seed + 6));
    s.out.push_back(Tensor::empty(qs, DType::BF16, dev));
    s.lse.push_back(Tensor::empty(ls, DType::F32, dev));
    s.gq.push_back(Tensor::empty(qs, DType::BF16, dev));
    s.gk.push_back(Tensor::empty(ks, DType::BF16, dev));
    s.gv.push_back(Tensor::empty(ks, DType::BF16, dev));
  }
  return s;
}

void time_layout(const std::string& op, const std::string& shape, const Shape& qs, const Shape& ks,
                 const AttentionLayout& L, double flops_fwd, const bench::Card& card, double real_tokens) {
  Backend& be = *cuda_backend();
  size_t bytes = size_t(shape_numel(qs) * 3 + shape_numel(ks) * 4) * 2;
  int copies = bench::rotation_copies(bytes, card);
  Set s = make_set(qs, ks, copies);
  auto fwd = [&](int i) {
    size_t c = size_t(i % copies);
    be.attention_forward(s.q[c], s.k[c], s.v[c], L, s.out[c], s.lse[c]);
  };
  bench::Timing f = bench::time_it(fwd);
  bench::row("attention", op + " fwd", shape, "bf16", "engine", f, flops_fwd, true, card);
  bench::Timing fb = bench::time_it([&](int i) {
    fwd(i);
    size_t c = size_t(i % copies);
    be.attention_backward(s.q[c], s.k[c], s.v[c], s.out[c], s.lse[c], s.go[c], L, s.gq[c], s.gk[c], s.gv[c]);
  });
  bench::row("attention", op + " fwd+bwd", shape, "bf16", "engine", fb, 3.5 * flops_fwd, true, card);
  if (real_tokens > 0)
    std::printf("| attention | %s fwd+bwd | %s | bf16 | engine | real tokens/s %.3g | | | |\n", op.c_str(),
                shape.c_str(), real_tokens / (fb.median_us * 1e-6));
}

void padded_case(int64_t L, int64_t D, const bench::Card& card, bool causal = false) {
  const int64_t rows = int64_t(1) << 18, H = 16, B = std::max<int64_t>(1, rows / (L * H));
  Shape qs{B, L, H, D};
  AttentionLayout lay;
  lay.scale = 1.0 / std::sqrt(double(D));
  lay.causal = causal;
  double flops = 4.0 * double(B * H) * double(L) * double(L) * double(D) * (causal ? 0.5 : 1.0);
  time_layout(causal ? "padded causal" : "padded", bench::shape_of(qs), qs, qs, lay, flops, card, 0);
}

void decode_case(int64_t B, int64_t Lcache, int64_t H, int64_t D, const bench::Card& card) {
  Device dev = Device::cuda(0);
  Tensor q = bench::random_tensor({B, 1, H, D}, DType::BF16, 2000);
  Tensor k = bench::random_tensor({B, Lcache, H, D}, DType::BF16, 2002);
  Tensor v = bench::random_tensor({B, Lcache, H, D}, DType::BF16, 2004);
  Tensor len = Tensor::full({B}, double(Lcache), DType::I32, dev);
  Tensor out = Tensor::empty({B, 1, H, D}, DType::BF16, dev);
  Backend& be = *cuda_backend();
  bench::Timing t = bench::time_it([&](int) { be.attention_decode(q, k, v, len, 0.125, out); });
  double bytes = 2.0 * double(B * Lcache * H * D) * 2;
  bench::row("attention", "decode step", bench::shape_of({B, Lcache, H, D}), "bf16", "engine", t, bytes, false, card);
}

void varlen_case(int64_t L, int64_t D, const bench::Card& card) {
  const int64_t H = 16, B = std::max<int64_t>(1, (int64_t(1) << 18) / (L * H));
  std::mt19937 rng(7);
  std::uniform_int_distribution<int64_t> len(L / 4, L);
  std::vector<int32_t> cu{0};
  double flops = 0;
  int64_t longest = 0;
  for (int64_t b = 0; b < B; ++b) {
    int64_t n = len(rng);
    cu.push_back(cu.back() + int32_t(n));
    flops += 4.0 * double(H) * double(n) * double(n) * double(D);
    longest = std::max(longest, n);
  }
  Device dev = Device::cuda(0);
  AttentionLayout lay;
  lay.scale = 1.0 / std::sqrt(double(D));
  lay.cu_q = lay.cu_k = Tensor::from_vector(cu, {B + 1}).to(dev);
  lay.max_q = lay.max_k = longest;
  Shape qs{cu.back(), H, D};
  std::string shape = std::to_string(B) + " seqs in [" + std::to_string(L / 4) + "," + std::to_string(L) + "]x" +
                      std::to_string(H) + "x" + std::to_string(D);
  time_layout("varlen", shape, qs, qs, lay, flops, card, double(cu.back()));
}

}  // namespace

int main() {
  if (!bench::require_gpu()) return 0;
  bench::Card card = bench::card();
  std::printf("bench_attention on %s (bf16 limit %.0f TFLOP/s; flash accounting, fwd+bwd = 3.5x fwd)\n",
              card.name.c_str(), card.bf16_tflops);
  bench::header();
  for (int64_t D : {24, 32, 64})
    for (int64_t L : {128, 256, 512, 1024, 2048}) padded_case(L, D, card);
  for (int64_t D : {32, 64}) varlen_case(1024, D, card);
  for (int64_t L : {512, 1024, 2048}) padded_case(L, 64, card, true);
  decode_case(16, 4096, 16, 64, card);
  decode_case(1, 32768, 16, 128, card);
  return 0;
}
