// Optimizer step over the parameter lists of two model sizes: a loop of per-tensor adam_step
// against the fused multi-tensor Adam (fp32 master and moments; f32 or bf16 gradients; bf16
// working copy). Bytes: every array read once and written once (28 bytes per parameter).
#include "bench/bench_common.h"

using namespace pe;

namespace {

// Parameter sizes of pre-LN transformer layers (q, k, v, o, FFN, two LayerNorms) plus an embedding.
std::vector<int64_t> model_params(int layers, int64_t d, int64_t ffn, int64_t vocab) {
  std::vector<int64_t> sizes = {vocab * d};
  for (int l = 0; l < layers; ++l) {
    for (int i = 0; i < 4; ++i) {
      sizes.push_back(d * d);
      sizes.push_back(d);
    }
    sizes.push_back(ffn * d);
    sizes.push_back(ffn);
    sizes.push_back(d * ffn);
    sizes.push_back(d);
    for (int i = 0; i < 4; ++i) sizes.push_back(d);
  }
  return sizes;
}

void run(const char* name, const std::vector<int64_t>& sizes, const bench::Card& card) {
  Device dev = Device::cuda(0);
  Backend& be = *cuda_backend();
  int64_t total = 0;
  std::vector<Tensor> w, g32, g16, m, v, work;
  for (size_t i = 0; i < sizes.size(); ++i) {
    Shape s{sizes[i]};
    total += sizes[i];
    w.push_back(bench::random_tensor(s, DType::F32, 1000 + i));
    g32.push_back(bench::random_tensor(s, DType::F32, 5000 + i));
    g16.push_back(g32.back().to(DType::BF16));
    m.push_back(Tensor::zeros(s, DType::F32, dev));
    v.push_back(Tensor::zeros(s, DType::F32, dev));
    work.push_back(Tensor::empty(s, DType::BF16, dev));
  }
  AdamParams p;
  p.lr = 1e-5;
  p.weight_decay = 0.01;
  std::string shape = std::to_string(sizes.size()) + " tensors, " + std::to_string(total / 1000000) + "M";
  double bytes = 28.0 * double(total);
  bench::Timing loop = bench::time_it(
      [&](int) {
        for (size_t i = 0; i < w.size(); ++i) be.adam_step(w[i], g32[i], m[i], v[i], p);
      },
      20, 2);
  bench::row("adam", name, shape, "f32", "adam_step loop", loop, bytes, false, card);
  bench::Timing fused = bench::time_it([&](int) { be.adam_multi_tensor(w, g32, m, v, {}, p); }, 20, 2);
  bench::row("adam", name, shape, "f32", "multi-tensor", fused, bytes, false, card);
  bench::Timing mixed = bench::time_it([&](int) { be.adam_multi_tensor(w, g16, m, v, work, p); }, 20, 2);
  bench::row("adam", name, shape, "f32 master, bf16 grad+copy", "multi-tensor", mixed, bytes, false, card);
}

}  // namespace

int main() {
  if (!bench::require_gpu()) return 0;
  bench::Card card = bench::card();
  std::printf("bench_adam on %s (HBM limit %.0f GB/s measured)\n", card.name.c_str(), card.hbm_gbs);
  bench::header();
  // ESM-2 35M-like (12 x 480) + 4-layer BERT-style text (768, vocab 30522): ~87M.
  std::vector<int64_t> small = model_params(12, 480, 1920, 33);
  std::vector<int64_t> text = model_params(4, 768, 3072, 30522);
  small.insert(small.end(), text.begin(), text.end());
  run("esm35+text4", small, card);
  run("esm650", model_params(33, 1280, 5120, 33), card);
  return 0;
}
