// Memory-bound elementwise and index kernels at model sizes (ESM-2 650M activations: 8192 tokens
// x 5120 FFN features). GB/s counts each input read once and each output written once.
#include <random>

#include "bench/bench_common.h"

using namespace pe;

namespace {

struct Ctx {
  bench::Card card;
  Backend& be = *cuda_backend();
  Device dev = Device::cuda(0);
};

// Rotated sets of `inputs` random tensors of shape s plus one output per set.
std::vector<std::vector<Tensor>> sets(const Ctx& c, const Shape& s, DType dt, int inputs, int outputs) {
  size_t bytes = size_t(shape_numel(s)) * dtype_size(dt) * size_t(inputs + outputs);
  int copies = bench::rotation_copies(bytes, c.card);
  std::vector<std::vector<Tensor>> r;
  for (int i = 0; i < copies; ++i) {
    std::vector<Tensor> set;
    for (int k = 0; k < inputs; ++k) set.push_back(bench::random_tensor(s, dt, 100 * uint64_t(i) + uint64_t(k)));
    for (int k = 0; k < outputs; ++k) set.push_back(Tensor::empty(s, dt, c.dev));
    r.push_back(set);
  }
  return r;
}

void unary_cases(Ctx& c, DType dt) {
  Shape s{8192, 5120};
  double n = double(shape_numel(s)), es = double(dtype_size(dt));
  auto io = sets(c, s, dt, 2, 1);  // x, gout | out
  size_t copies = io.size();
  bench::Timing f = bench::time_it([&](int i) {
    auto& t = io[size_t(i) % copies];
    c.be.unary(UnaryOp::Gelu, t[0], t[2], 0.0);
  });
  bench::row("elementwise", "gelu fwd", bench::shape_of(s), dtype_name(dt), "engine", f, 2 * n * es, false, c.card);
  bench::Timing b = bench::time_it([&](int i) {
    auto& t = io[size_t(i) % copies];
    c.be.unary_backward(UnaryOp::Gelu, t[0], Tensor(), t[1], t[2], 0.0);
  });
  bench::row("elementwise", "gelu bwd", bench::shape_of(s), dtype_name(dt), "engine", b, 3 * n * es, false, c.card);
  bench::Timing a = bench::time_it([&](int i) {
    auto& t = io[size_t(i) % copies];
    c.be.binary(BinaryOp::Add, t[0], t[1], t[2]);
  });
  bench::row("elementwise", "add", bench::shape_of(s), dtype_name(dt), "engine", a, 3 * n * es, false, c.card);
  Tensor bias = bench::random_tensor({s[1]}, dt, 999);
  bench::Timing bb = bench::time_it([&](int i) {
    auto& t = io[size_t(i) % copies];
    c.be.binary(BinaryOp::Add, t[0], bias.expand(s), t[2]);
  });
  bench::row("elementwise", "add bias (broadcast)", bench::shape_of(s), dtype_name(dt), "engine", bb, 2 * n * es,
             false, c.card);
}

void copy_cases(Ctx& c) {
  Shape s{8192, 1280};
  double n = double(shape_numel(s));
  auto io = sets(c, s, DType::BF16, 1, 1);
  size_t copies = io.size();
  bench::Timing tr = bench::time_it([&](int i) {
    auto& t = io[size_t(i) % copies];
    c.be.copy_strided(t[0].view({1280, 8192}).transpose(0, 1), t[1]);
  });
  bench::row("elementwise", "copy transpose", bench::shape_of(s), "bf16", "engine", tr, 2 * n * 2, false, c.card);
  auto src = sets(c, s, DType::F32, 1, 0);
  std::vector<Tensor> dst;
  for (size_t i = 0; i < src.size(); ++i) dst.push_back(Tensor::empty(s, DType::BF16, c.dev));
  bench::Timing cast = bench::time_it([&](int i) {
    size_t k = size_t(i) % src.size();
    c.be.copy_strided(src[k][0], dst[k]);
  });
  bench::row("elementwise", "cast f32->bf16", bench::shape_of(s), "f32->bf16", "engine", cast, n * 6, false, c.card);
}

void index_cases(Ctx& c, int64_t vocab) {
  int64_t tokens = 8192, d = 1280;
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int64_t> u(0, vocab - 1);
  std::vector<int64_t> ids(static_cast<size_t>(tokens));
  for (int64_t& x : ids) x = u(rng);
  Tensor idx = Tensor::from_vector(ids, {tokens}, c.dev);
  Tensor table = bench::random_tensor({1, vocab, d}, DType::BF16, 5);
  Tensor out = Tensor::empty({1, tokens, d}, DType::BF16, c.dev);
  std::string shape = std::to_string(tokens) + " of " + std::to_string(vocab) + "x" + std::to_string(d);
  bench::Timing sel = bench::time_it([&](int) { c.be.index_select(table, idx, out); });
  bench::row("index", "embedding index_select", shape, "bf16", "engine", sel, double(tokens * d) * 2 * 2, false,
             c.card);
  for (DType dt : {DType::F32, DType::BF16}) {
    Tensor grad = bench::random_tensor({1, tokens, d}, dt, 6);
    Tensor gtable = Tensor::zeros({1, vocab, d}, dt, c.dev);
    bench::Timing add = bench::time_it([&](int) { c.be.index_add(gtable, idx, grad); }, 20, 2);
    bench::row("index", "embedding index_add (deterministic)", shape, dtype_name(dt), "engine", add,
               double(tokens * d) * double(dtype_size(dt)) * 2, false, c.card);
  }
}

void nonfinite_case(Ctx& c) {
  std::vector<Tensor> grads;
  int64_t total = 0;
  for (int i = 0; i < 200; ++i) {
    int64_t n = i % 4 == 0 ? 1280 * 5120 : 1280;
    grads.push_back(bench::random_tensor({n}, DType::BF16, 77 + uint64_t(i)));
    total += n;
  }
  bench::Timing t = bench::time_it([&](int) { (void)c.be.any_nonfinite(grads); }, 20, 2);
  bench::row("elementwise", "any_nonfinite (incl. sync)", "200 tensors, " + std::to_string(total / 1000000) + "M",
             "bf16", "engine", t, double(total) * 2, false, c.card);
}

}  // namespace

int main() {
  if (!bench::require_gpu()) return 0;
  Ctx c{bench::card()};
  std::printf("bench_elementwise on %s (HBM limit %.0f GB/s measured)\n", c.card.name.c_str(), c.card.hbm_gbs);
  bench::header();
  unary_cases(c, DType::BF16);
  unary_cases(c, DType::F32);
  copy_cases(c);
  index_cases(c, 33);
  index_cases(c, 30522);
  nonfinite_case(c);
  return 0;
}
