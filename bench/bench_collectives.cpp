// Collective bandwidth of the job's communicator (issue #11), as nccl-tests reports it:
//   algbw = bytes / time;  busbw = algbw x factor, factor 2(n-1)/n for all-reduce and (n-1)/n for
//   all-gather and reduce-scatter (bytes = the full, gathered / reduced, buffer), so that busbw is
//   comparable to the link's bandwidth whatever the rank count.
// Run under a launcher, e.g.
//   mpirun --allow-run-as-root --oversubscribe -np 2 build/bench/bench_collectives
// MPI on host tensors (CPU rows), or NCCL on cuda:<local rank> with --device cuda. Rank 0 prints a
// markdown table; time = the slowest rank's mean over the timed iterations after warm-up.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "dist/communicator.h"

using namespace pe;
using namespace pe::dist;

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Mean seconds per call of f over iters calls, the slowest rank's (all-reduce of the max via f64 sums).
double time_collective(Communicator& c, int warmup, int iters, const std::function<void()>& f) {
  for (int i = 0; i < warmup; ++i) f();
  c.barrier();
  double t0 = now_s();
  for (int i = 0; i < iters; ++i) f();
  c.barrier();
  double dt = (now_s() - t0) / iters;
  // Slowest rank: gather every rank's time and take the max.
  Tensor mine = Tensor::from_vector(std::vector<double>{dt}, {1});
  Tensor all = Tensor::zeros({c.world_size()}, DType::F64);
  c.all_gather(mine, all);
  std::vector<double> v = all.to_double_vector();
  return *std::max_element(v.begin(), v.end());
}

}  // namespace

int main(int argc, char** argv) {
  std::string device = "cpu";
  int64_t max_bytes = int64_t(64) << 20;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--device") && i + 1 < argc) device = argv[++i];
    else if (!std::strcmp(argv[i], "--max-bytes") && i + 1 < argc) max_bytes = std::atoll(argv[++i]);
    else {
      std::fprintf(stderr, "usage: bench_collectives [--device cpu|cuda] [--max-bytes N]\n");
      return 2;
    }
  }
  try {
    auto comm = make_communicator(CommKind::Auto, device == "cpu" ? Device::cpu() : Device::cuda(0));
    Communicator& c = *comm;
    const int n = c.world_size();
    if (c.rank() == 0) {
      std::printf("collectives on %s: %d ranks, f32, time = slowest rank's mean\n\n", c.describe().c_str(), n);
      std::printf("| collective | bytes | time us | algbw GB/s | busbw GB/s |\n|---|---|---|---|---|\n");
    }
    for (int64_t bytes = 1024; bytes <= max_bytes; bytes *= 8) {
      const int64_t count = bytes / 4;
      const int iters = bytes <= (int64_t(1) << 20) ? 50 : 10;
      Tensor buf = Tensor::ones({count}, DType::F32, c.device());
      double ar = time_collective(c, 3, iters, [&] { c.all_reduce(buf, Reduction::Sum); });
      // all-gather / reduce-scatter: the full buffer is `bytes`; each rank's shard bytes / n (balanced).
      std::vector<int64_t> counts = balanced_counts(count, n);
      Tensor shard = Tensor::ones({counts[size_t(c.rank())]}, DType::F32, c.device());
      Tensor full = Tensor::zeros({count}, DType::F32, c.device());
      double ag = time_collective(c, 3, iters, [&] { c.all_gather(shard, full, counts); });
      double rs = time_collective(c, 3, iters, [&] { c.reduce_scatter(full, shard, Reduction::Sum, counts); });
      if (c.rank() == 0) {
        const double gb = double(bytes) / 1e9;
        struct Row { const char* name; double t, factor; } rows[] = {
            {"all_reduce", ar, 2.0 * (n - 1) / n}, {"all_gather", ag, double(n - 1) / n}, {"reduce_scatter", rs, double(n - 1) / n}};
        for (const Row& r : rows)
          std::printf("| %s | %lld | %.1f | %.3f | %.3f |\n", r.name, (long long)bytes, r.t * 1e6, gb / r.t, gb / r.t * r.factor);
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_collectives: error: %s\n", e.what());
    return 1;
  }
}
