// Every collective of the communicator against a reference each rank computes locally from the
// deterministic inputs of all ranks: f32, f64, bf16, i32, i64; odd and zero element counts; uneven
// shards (balanced policy, explicit counts, a rank with none). Runs on the single-process
// communicator (alone) and the MPI one (mpirun -np 2 and 3); the NCCL suite repeats it on GPUs.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "dist/autograd_collectives.h"
#include "kernels/backend.h"
#include "tests/dist/dist_env.h"
#ifdef PE_WITH_MPI
#include "dist/mpi_runtime.h"
#endif

using namespace pe;
using namespace pe::dist;

namespace {

const DType kDtypes[] = {DType::F32, DType::F64, DType::BF16, DType::I32, DType::I64};

// Element i of rank r's input. Floats: multiples of 1/8 in [-8, 8.375], so sums over a few ranks
// are exact even in bf16; i64: beyond 2^40, so a path through f32/f64 would show.
double fvalue(int r, int64_t i) { return double((r * 31 + i * 7) % 17 - 8) + 0.125 * double((r + i) % 4); }
int64_t ivalue(int r, int64_t i, DType d) {
  int64_t k = (r * 31 + i * 7) % 17 - 8;
  return d == DType::I64 ? k * (int64_t(1) << 40) + i : k * 1000 + i % 1000;
}

Tensor host_tensor(const std::vector<double>& f, const std::vector<int64_t>& n, DType d) {
  int64_t len = int64_t(is_floating(d) ? f.size() : n.size());
  if (len == 0) return Tensor::empty({0}, d);
  if (is_floating(d)) return Tensor::from_vector(f, {len}).to(d);
  return Tensor::from_vector(n, {len}).to(d);
}

// Rank r's elements start .. start+len-1, as dtype d on `dev`.
Tensor input(int r, int64_t start, int64_t len, DType d, Device dev) {
  std::vector<double> f;
  std::vector<int64_t> n;
  for (int64_t i = start; i < start + len; ++i) {
    if (is_floating(d)) f.push_back(fvalue(r, i));
    else n.push_back(ivalue(r, i, d));
  }
  return host_tensor(f, n, d).to(dev);
}

// Elementwise sum (or avg) over all W ranks of elements start .. start+len-1, rounded once to d.
Tensor reduced(int W, int64_t start, int64_t len, DType d, Reduction op) {
  std::vector<double> f;
  std::vector<int64_t> n;
  for (int64_t i = start; i < start + len; ++i) {
    double fs = 0;
    int64_t is = 0;
    for (int r = 0; r < W; ++r) {
      fs += fvalue(r, i);
      is += ivalue(r, i, d);
    }
    if (is_floating(d)) f.push_back(op == Reduction::Avg ? fs / W : fs);
    else n.push_back(is);
  }
  return host_tensor(f, n, d);
}

// got (any device) equals ref: exactly, or within rel_tol of the largest reference magnitude.
void check_same(const Tensor& got, const Tensor& ref, const std::string& what, double rel_tol = 0) {
  INFO(what);
  REQUIRE(got.numel() == ref.numel());
  CHECK(got.dtype() == ref.dtype());
  if (is_floating(ref.dtype())) {
    std::vector<double> g = got.to_double_vector(), r = ref.to_double_vector();
    double mag = 1e-300;
    for (double v : r) mag = std::max(mag, std::abs(v));
    size_t bad = 0;
    for (size_t i = 0; i < r.size(); ++i) bad += std::abs(g[i] - r[i]) > rel_tol * mag;
    CHECK_MESSAGE(bad == 0, bad, " of ", r.size(), " elements differ");
  } else {
    CHECK(got.to_int_vector() == ref.to_int_vector());
  }
}

std::string tag(const Communicator& c, const char* op, DType d, int64_t n) {
  return std::string(op) + " " + dtype_name(d) + " n=" + std::to_string(n) + " on " + c.describe();
}

// All collectives of `c` on its device. bf16_avg_tol: the tolerance of a bf16 avg (0 where the
// reduction widens to f32 and rounds once; NCCL rounds in bf16). avg_ulps: that of an f32 or f64 avg,
// in units of the dtype's epsilon (0 where avg is the sum divided once; NCCL multiplies every input
// by 1/W, rounded, before summing: a few roundings when 1/W is not a power of two).
void run_collectives(Communicator& c, double bf16_avg_tol, double avg_ulps = 0) {
  auto avg_tol = [&](DType d) {
    if (d == DType::BF16) return bf16_avg_tol;
    return avg_ulps * (d == DType::F64 ? 0x1p-52 : d == DType::F32 ? 0x1p-23 : 0.0);
  };
  const int W = c.world_size(), me = c.rank();
  const Device dev = c.device();
  for (DType d : kDtypes) {
    // all_reduce: sum, and avg for floating dtypes; odd and zero counts.
    for (int64_t n : {int64_t(0), int64_t(1), int64_t(7), int64_t(1001)}) {
      for (Reduction op : {Reduction::Sum, Reduction::Avg}) {
        if (op == Reduction::Avg && !is_floating(d)) continue;
        Tensor t = input(me, 0, n, d, dev);
        c.all_reduce(t, op);
        double tol = op == Reduction::Avg ? avg_tol(d) : 0;
        check_same(t, reduced(W, 0, n, d, op), tag(c, op == Reduction::Sum ? "all_reduce sum" : "all_reduce avg", d, n),
                   tol);
      }
    }
    // all_reduce_async: several in flight at once, with a blocking collective started before them on
    // even ranks and between them on odd ranks (async ones are matched among themselves only).
    {
      std::vector<std::pair<Tensor, std::unique_ptr<Work>>> flying;
      std::vector<std::pair<int64_t, Reduction>> cases = {{7, Reduction::Sum}, {0, Reduction::Sum}, {1001, Reduction::Sum}};
      if (is_floating(d)) cases.push_back({1001, Reduction::Avg});
      Tensor blocking = input(me, 0, 5, d, dev);
      for (size_t k = 0; k < cases.size(); ++k) {
        if (k == size_t(me % 2) * 2) c.all_reduce(blocking, Reduction::Sum);
        Tensor t = input(me, 0, cases[k].first, d, dev);
        flying.push_back({t, c.all_reduce_async(t, cases[k].second)});
      }
      for (size_t k = 0; k < cases.size(); ++k) {
        flying[k].second->wait();
        const auto [n, op] = cases[k];
        double tol = op == Reduction::Avg ? avg_tol(d) : 0;
        check_same(flying[k].first, reduced(W, 0, n, d, op), tag(c, "all_reduce_async", d, n), tol);
      }
      check_same(blocking, reduced(W, 0, 5, d, Reduction::Sum), tag(c, "all_reduce between async ones", d, 5));
    }
    // all_gather: equal counts (none given), the balanced split of an odd count, rank r holding 2r+1.
    std::vector<std::vector<int64_t>> gather_counts = {{}, balanced_counts(1001, W), {}};
    for (int r = 0; r < W; ++r) gather_counts[2].push_back(2 * r + 1);
    for (const auto& counts : gather_counts) {
      std::vector<int64_t> c_eff = counts.empty() ? std::vector<int64_t>(size_t(W), 5) : counts;
      Tensor in = input(me, 0, c_eff[size_t(me)], d, dev);
      Tensor out = Tensor::empty({shard_offset(c_eff, W)}, d, dev);
      c.all_gather(in, out, counts);
      std::vector<Tensor> parts;
      for (int r = 0; r < W; ++r)
        if (c_eff[size_t(r)]) parts.push_back(input(r, 0, c_eff[size_t(r)], d, Device::cpu()));
      Tensor ref = parts.empty() ? Tensor::empty({0}, d) : concat(parts, 0);
      check_same(out, ref, tag(c, counts.empty() ? "all_gather equal" : "all_gather uneven", d, out.numel()));
    }
    // reduce_scatter: equal shards, balanced split of an odd count, 2r+1, and rank 0 receiving none.
    std::vector<std::vector<int64_t>> scatter_counts = {{}, balanced_counts(1001, W), {}, {}};
    for (int r = 0; r < W; ++r) {
      scatter_counts[2].push_back(2 * r + 1);
      scatter_counts[3].push_back(r == 0 ? 0 : 3 + r);
    }
    for (const auto& counts : scatter_counts) {
      for (Reduction op : {Reduction::Sum, Reduction::Avg}) {
        if (op == Reduction::Avg && !is_floating(d)) continue;
        std::vector<int64_t> c_eff = counts.empty() ? std::vector<int64_t>(size_t(W), 3) : counts;
        int64_t total = shard_offset(c_eff, W), off = shard_offset(c_eff, me);
        Tensor in = input(me, 0, total, d, dev);
        Tensor out = Tensor::empty({c_eff[size_t(me)]}, d, dev);
        c.reduce_scatter(in, out, op, counts);
        double tol = op == Reduction::Avg ? avg_tol(d) : 0;
        check_same(out, reduced(W, off, c_eff[size_t(me)], d, op), tag(c, "reduce_scatter", d, total), tol);
      }
    }
    // broadcast from every root.
    for (int root = 0; root < W; ++root) {
      Tensor t = input(me, 0, 9, d, dev);
      c.broadcast(t, root);
      check_same(t, input(root, 0, 9, d, Device::cpu()), tag(c, "broadcast", d, 9) + " root " + std::to_string(root));
    }
  }
  c.barrier();
}

}  // namespace

TEST_SUITE("dist") {

TEST_CASE("balanced_counts: contiguous shards, the first n mod W one larger") {
  CHECK(balanced_counts(7, 3) == std::vector<int64_t>{3, 2, 2});
  CHECK(balanced_counts(8, 3) == std::vector<int64_t>{3, 3, 2});
  CHECK(balanced_counts(2, 3) == std::vector<int64_t>{1, 1, 0});
  CHECK(balanced_counts(0, 2) == std::vector<int64_t>{0, 0});
  CHECK(shard_offset({3, 2, 2}, 2) == 5);
  CHECK(shard_offset({3, 2, 2}, 3) == 7);
  CHECK_THROWS_AS(balanced_counts(5, 0), Error);
}

TEST_CASE("the factory picks MPI under a launcher, the single-process communicator without one") {
  std::string why;
  bool launched = launched_by_mpi(&why);
  Communicator& c = test_comm();
  if (launched) {
    CHECK(c.kind() == CommKind::Mpi);
    if (const char* s = std::getenv("OMPI_COMM_WORLD_SIZE")) CHECK(c.world_size() == std::atoi(s));
    if (const char* s = std::getenv("OMPI_COMM_WORLD_RANK")) CHECK(c.rank() == std::atoi(s));
    if (const char* s = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK")) CHECK(c.local_rank() == std::atoi(s));
  } else {
    CHECK(c.kind() == CommKind::Single);
    CHECK(c.world_size() == 1);
    CHECK(c.rank() == 0);
  }
  CHECK(c.device() == Device::cpu());
  CHECK(c.local_rank() < c.local_size());
  CHECK(parse_comm_kind("nccl") == CommKind::Nccl);
  CHECK_THROWS_WITH_AS(parse_comm_kind("gloo"), doctest::Contains("unknown kind 'gloo'"), Error);
  if (!nccl_built()) CHECK_THROWS_WITH_AS(make_nccl_communicator(), doctest::Contains("no NCCL support"), Error);
  // A CUDA device without NCCL is refused rather than run on host MPI.
  if (launched && !nccl_built())
    CHECK_THROWS_WITH_AS(make_communicator(CommKind::Auto, Device::cuda(0)), doctest::Contains("needs NCCL"), Error);
}

TEST_CASE("collectives of the job's communicator equal the local reference") {
  run_collectives(test_comm(), 0.0);
}

TEST_CASE("the single-process communicator: every collective is the identity") {
  auto s = make_single_communicator();
  CHECK(s->world_size() == 1);
  CHECK(s->kind() == CommKind::Single);
  run_collectives(*s, 0.0);
  // In place where in and out are the same tensor.
  Tensor t = input(0, 0, 5, DType::F32, Device::cpu());
  s->all_gather(t, t);
  check_same(t, input(0, 0, 5, DType::F32, Device::cpu()), "all_gather in place");
}

TEST_CASE("collectives refuse bad arguments with errors naming the rank") {
  Communicator& c = test_comm();
  const int W = c.world_size();
  std::string who = c.describe();
  Tensor i64 = Tensor::zeros({4}, DType::I64);
  CHECK_THROWS_WITH_AS(c.all_reduce(i64, Reduction::Avg), doctest::Contains((who + ": avg of integer dtype i64").c_str()), Error);
  CHECK_THROWS_WITH_AS(c.all_reduce(Tensor::zeros({3}, DType::U8), Reduction::Sum),
                       doctest::Contains("dtype u8 is not supported"), Error);
  CHECK_THROWS_WITH_AS(c.all_reduce(Tensor::zeros({3, 4}).transpose(0, 1), Reduction::Sum),
                       doctest::Contains("not contiguous"), Error);
  Tensor in = Tensor::zeros({3}), out = Tensor::zeros({3 * W + 1});
  CHECK_THROWS_WITH_AS(c.all_gather(in, out), doctest::Contains("gathered elements"), Error);
  CHECK_THROWS_WITH_AS(c.all_gather(in, Tensor::zeros({3 * W}, DType::F64)), doctest::Contains("dtypes differ"), Error);
  CHECK_THROWS_WITH_AS(c.all_gather(in, out, std::vector<int64_t>(size_t(W + 1), 1)),
                       doctest::Contains((std::to_string(W + 1) + " counts for a world of").c_str()), Error);
  CHECK_THROWS_WITH_AS(c.broadcast(in, W), doctest::Contains(("root " + std::to_string(W) + " outside").c_str()), Error);
  if (W > 1) {
    CHECK_THROWS_WITH_AS(c.reduce_scatter(Tensor::zeros({W * 2 + 1}), Tensor::zeros({2}), Reduction::Sum),
                         doctest::Contains("do not split evenly"), Error);
  }
  // Nothing above reached the wire: the ranks are still in step.
  Tensor one = Tensor::ones({1});
  c.all_reduce(one, Reduction::Sum);
  CHECK(one.item() == W);
}

#ifdef PE_WITH_MPI
TEST_CASE("an MPI error comes back as pe::Error with the rank") {
  Communicator& c = test_comm();
  if (c.kind() != CommKind::Mpi) {
    std::printf("[skipped] MPI error handler: not running under mpirun\n");
    return;
  }
  // A negative count fails MPI's argument check on every rank alike (errors return, they do not abort).
  int buf = 0;
  std::string expect = "failed on rank " + std::to_string(c.rank()) + "/" + std::to_string(c.world_size()) + " (mpi)";
  CHECK_THROWS_WITH_AS(PE_MPI(MPI_COMM_WORLD, MPI_Bcast(&buf, -1, MPI_INT, 0, MPI_COMM_WORLD)),
                       doctest::Contains(expect.c_str()), Error);
  c.barrier();
}
#endif

TEST_CASE("all_gather_rows: uneven rows forward, gradients reduce-scattered to their owners") {
  Communicator& c = test_comm();
  const int W = c.world_size(), me = c.rank();
  const int64_t D = 3;
  // Rank r holds r+1 rows (one rank of a single process holds 1); its loss weighs the gathered rows
  // by its own weights, so row j's gradient is the sum over ranks of their weights for row j.
  auto rows_of = [&](int r) { return int64_t(r + 1); };
  auto x_of = [&](int r) {
    std::vector<double> v;
    for (int64_t i = 0; i < rows_of(r) * D; ++i) v.push_back(fvalue(r, i));
    return Tensor::from_vector(v, {rows_of(r), D});
  };
  std::vector<int64_t> rows = all_gather_counts(c, rows_of(me));
  for (int r = 0; r < W; ++r) CHECK(rows[size_t(r)] == rows_of(r));
  int64_t total = shard_offset(rows, W);
  auto weights_of = [&](int r) {
    std::vector<double> v;
    for (int64_t i = 0; i < total * D; ++i) v.push_back(double((r + 2 * i) % 5) - 1.5);
    return Tensor::from_vector(v, {total, D});
  };
  Tensor x = x_of(me);
  x.requires_grad_();
  Tensor all = all_gather_rows(c, x, rows);
  std::vector<Tensor> parts;
  for (int r = 0; r < W; ++r) parts.push_back(x_of(r));
  check_same(all.detach(), concat(parts, 0), "gathered rows");
  sum(mul(all, weights_of(me))).backward();
  Tensor ref = Tensor::zeros({total, D}, DType::F64);
  {
    NoGradGuard ng;
    for (int r = 0; r < W; ++r) ref = add(ref, weights_of(r));
  }
  REQUIRE(x.grad().defined());
  check_same(x.grad(), ref.narrow(0, shard_offset(rows, me), rows_of(me)).contiguous(), "gradient of own rows");
}

}  // TEST_SUITE("dist")

TEST_SUITE("nccl") {

TEST_CASE("NCCL collectives equal the local reference (one GPU per rank)") {
  Communicator& job = test_comm();
  int ndev = cuda_device_count();
  if (!nccl_built() || ndev < job.local_size()) {
    std::printf("[cuda-skipped] NCCL: %s\n", !nccl_built() ? "not built" : "fewer GPUs than ranks on this machine");
    return;
  }
  auto c = make_communicator(CommKind::Nccl, Device::cuda(job.local_rank()));
  CHECK(c->kind() == CommKind::Nccl);
  CHECK(c->rank() == job.rank());
  CHECK(c->device() == Device::cuda(job.local_rank()));
  // NCCL's avg (ncclAvg) of floating types pre-multiplies every rank's input by 1/W rounded to the
  // dtype, then sums (its PreMulSum): bf16 rounds in bf16, and on W = 3 even f32 and f64 differ from
  // the once-rounded sum / W in the last bits (the stand-in NCCL of tests/simt does the same).
  run_collectives(*c, 1.0 / 64, 8);
  // Device tensors only.
  CHECK_THROWS_WITH_AS(c->all_reduce(Tensor::zeros({2}), Reduction::Sum), doctest::Contains("not on the communicator"),
                       Error);
}

}  // TEST_SUITE("nccl")
