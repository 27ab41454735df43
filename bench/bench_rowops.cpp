// Row kernels: layer norm forward/backward (and fused with the residual add), softmax forward/backward, row sums. Bytes counted are
// the minimum traffic (each input read once, each output written once); GB/s against HBM.
#include "bench/bench_common.h"

using namespace pe;

namespace {

void layer_norm_case(int64_t rows, int64_t n, DType dt, const bench::Card& card) {
  Device dev = Device::cuda(0);
  Backend& be = *cuda_backend();
  Shape s{rows, n};
  size_t es = dtype_size(dt);
  int copies = bench::rotation_copies(size_t(rows * n) * es * 3, card);
  std::vector<Tensor> xs, ys, gys, gxs;
  for (int i = 0; i < copies; ++i) {
    xs.push_back(bench::random_tensor(s, dt, 10 + uint64_t(i)));
    gys.push_back(bench::random_tensor(s, dt, 50 + uint64_t(i)));
    ys.push_back(Tensor::empty(s, dt, dev));
    gxs.push_back(Tensor::empty(s, dt, dev));
  }
  Tensor w = bench::random_tensor({n}, dt, 7), b = bench::random_tensor({n}, dt, 8);
  Tensor mean = Tensor::empty({rows}, DType::F32, dev), rstd = Tensor::empty({rows}, DType::F32, dev);
  Tensor gw = Tensor::empty({n}, dt, dev), gb = Tensor::empty({n}, dt, dev);
  std::string shape = bench::shape_of(s);
  double bytes_fwd = double(rows * n) * double(es) * 2;
  bench::Timing f = bench::time_it([&](int i) {
    int k = i % copies;
    be.layer_norm(xs[size_t(k)], w, b, 1e-5, ys[size_t(k)], mean, rstd);
  });
  bench::row("rowops", "layer_norm fwd", shape, dtype_name(dt), "engine", f, bytes_fwd, false, card);
  be.layer_norm(xs[0], w, b, 1e-5, ys[0], mean, rstd);
  bench::Timing g = bench::time_it([&](int i) {
    int k = i % copies;
    be.layer_norm_backward(xs[size_t(k)], w, mean, rstd, gys[size_t(k)], gxs[size_t(k)], gw, gb);
  });
  bench::row("rowops", "layer_norm bwd (+dw, db)", shape, dtype_name(dt), "engine", g, bytes_fwd * 1.5, false, card);
}

// Post-LN residual: s = x + r, y = LayerNorm(s). Fused (one kernel: read x, r; write s, y) against the
// two-kernel sequence it replaces (add, then layer norm); both counted at the fused minimum traffic.
void add_layer_norm_case(int64_t rows, int64_t n, DType dt, const bench::Card& card) {
  Device dev = Device::cuda(0);
  Backend& be = *cuda_backend();
  Shape s{rows, n};
  size_t es = dtype_size(dt);
  int copies = bench::rotation_copies(size_t(rows * n) * es * 4, card);
  std::vector<Tensor> xs, rs, ss, ys;
  for (int i = 0; i < copies; ++i) {
    xs.push_back(bench::random_tensor(s, dt, 70 + uint64_t(i)));
    rs.push_back(bench::random_tensor(s, dt, 90 + uint64_t(i)));
    ss.push_back(Tensor::empty(s, dt, dev));
    ys.push_back(Tensor::empty(s, dt, dev));
  }
  Tensor w = bench::random_tensor({n}, dt, 7), b = bench::random_tensor({n}, dt, 8);
  Tensor mean = Tensor::empty({rows}, DType::F32, dev), rstd = Tensor::empty({rows}, DType::F32, dev);
  std::string shape = bench::shape_of(s);
  double bytes = double(rows * n) * double(es) * 4;
  bench::Timing fused = bench::time_it([&](int i) {
    size_t k = size_t(i % copies);
    be.add_layer_norm(xs[k], rs[k], w, b, 1e-5, ss[k], ys[k], mean, rstd);
  });
  bench::row("rowops", "add + layer_norm fwd", shape, dtype_name(dt), "engine fused", fused, bytes, false, card);
  bench::Timing separate = bench::time_it([&](int i) {
    size_t k = size_t(i % copies);
    be.binary(BinaryOp::Add, xs[k], rs[k], ss[k]);
    be.layer_norm(ss[k], w, b, 1e-5, ys[k], mean, rstd);
  });
  bench::row("rowops", "add + layer_norm fwd", shape, dtype_name(dt), "engine add, then layer_norm", separate, bytes,
             false, card);
}

void softmax_case(int64_t rows, int64_t n, DType dt, bool log, const bench::Card& card) {
  Device dev = Device::cuda(0);
  Backend& be = *cuda_backend();
  Shape s{rows, n};
  size_t es = dtype_size(dt);
  int copies = bench::rotation_copies(size_t(rows * n) * es * 3, card);
  std::vector<Tensor> xs, ys, gs, gxs;
  for (int i = 0; i < copies; ++i) {
    xs.push_back(bench::random_tensor(s, dt, 20 + uint64_t(i)));
    gs.push_back(bench::random_tensor(s, dt, 60 + uint64_t(i)));
    ys.push_back(Tensor::empty(s, dt, dev));
    gxs.push_back(Tensor::empty(s, dt, dev));
  }
  for (int i = 0; i < copies; ++i) be.softmax(xs[size_t(i)], ys[size_t(i)], log);
  std::string shape = bench::shape_of(s), op = log ? "log_softmax" : "softmax";
  double bytes = double(rows * n) * double(es) * 2;
  bench::Timing f = bench::time_it([&](int i) {
    int k = i % copies;
    be.softmax(xs[size_t(k)], ys[size_t(k)], log);
  });
  bench::row("rowops", op + " fwd", shape, dtype_name(dt), "engine", f, bytes, false, card);
  bench::Timing g = bench::time_it([&](int i) {
    int k = i % copies;
    be.softmax_backward(ys[size_t(k)], gs[size_t(k)], gxs[size_t(k)], log);
  });
  bench::row("rowops", op + " bwd", shape, dtype_name(dt), "engine", g, bytes * 1.5, false, card);
}

void sum_case(int64_t rows, int64_t n, DType dt, const bench::Card& card) {
  Device dev = Device::cuda(0);
  Backend& be = *cuda_backend();
  Shape s{rows, n};
  int copies = bench::rotation_copies(size_t(rows * n) * dtype_size(dt), card);
  std::vector<Tensor> xs;
  for (int i = 0; i < copies; ++i) xs.push_back(bench::random_tensor(s, dt, 30 + uint64_t(i)));
  Tensor out = Tensor::empty({rows}, dt, dev);
  bench::Timing t = bench::time_it([&](int i) { be.reduce_rows(ReduceOp::Sum, xs[size_t(i % copies)], out); });
  bench::row("rowops", "reduce_rows sum", bench::shape_of(s), dtype_name(dt), "engine", t,
             double(rows * n) * double(dtype_size(dt)), false, card);
}

}  // namespace

int main() {
  if (!bench::require_gpu()) return 0;
  bench::Card card = bench::card();
  std::printf("bench_rowops on %s (HBM limit %.0f GB/s measured)\n", card.name.c_str(), card.hbm_gbs);
  bench::header();
  for (DType dt : {DType::BF16, DType::F32}) {
    layer_norm_case(8192, 1280, dt, card);   // ESM-2 650M, 16 x 512 tokens
    layer_norm_case(32768, 480, dt, card);   // ESM-2 35M, 64 x 512 tokens
    layer_norm_case(16384, 768, dt, card);   // BERT-base
    add_layer_norm_case(16384, 768, dt, card);  // BERT-base post-LN block
  }
  for (DType dt : {DType::BF16, DType::F32}) {
    softmax_case(320 * 512, 512, dt, false, card);  // attention probabilities, 16 x 20 heads x 512
    softmax_case(8192, 33, dt, true, card);         // ESM vocabulary
    softmax_case(2048, 30522, dt, true, card);      // BERT vocabulary
  }
  sum_case(8192, 1280, DType::BF16, card);
  sum_case(1280, 8192, DType::F32, card);
  return 0;
}
