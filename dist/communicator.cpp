// The parts of dist/communicator.h common to every implementation: argument checks, the split policy,
// launcher detection, the factory, and the single-process communicator.
#include "dist/communicator.h"

#include <cstdlib>

#include "kernels/backend.h"

namespace pe::dist {

const char* comm_kind_name(CommKind k) {
  switch (k) {
    case CommKind::Auto: return "auto";
    case CommKind::Single: return "single";
    case CommKind::Mpi: return "mpi";
    case CommKind::Nccl: return "nccl";
  }
  return "?";
}

CommKind parse_comm_kind(const std::string& s) {
  for (CommKind k : {CommKind::Auto, CommKind::Single, CommKind::Mpi, CommKind::Nccl})
    if (s == comm_kind_name(k)) return k;
  PE_FAIL("communicator: unknown kind '", s, "' (expected auto, single, mpi or nccl)");
}

std::string Communicator::describe() const {
  return "rank " + std::to_string(rank()) + "/" + std::to_string(world_size()) + " (" + comm_kind_name(kind()) + ")";
}

namespace {
struct DoneWork final : Work {
  void wait() override {}
};
}  // namespace

std::unique_ptr<Work> Communicator::all_reduce_async(const Tensor& t, Reduction op) {
  all_reduce(t, op);
  return std::make_unique<DoneWork>();
}

std::vector<int64_t> balanced_counts(int64_t n, int world) {
  PE_CHECK(world > 0 && n >= 0, "balanced_counts: cannot split ", n, " over ", world, " ranks");
  std::vector<int64_t> c(size_t(world), n / world);
  for (int64_t r = 0; r < n % world; ++r) ++c[size_t(r)];
  return c;
}

int64_t shard_offset(const std::vector<int64_t>& counts, int r) {
  PE_CHECK(r >= 0 && size_t(r) <= counts.size(), "shard_offset: rank ", r, " outside 0 .. ", counts.size());
  int64_t off = 0;
  for (int i = 0; i < r; ++i) off += counts[size_t(i)];
  return off;
}

bool launched_by_mpi(std::string* why) {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS", "MV2_COMM_WORLD_SIZE"}) {
    if (const char* s = std::getenv(v)) {
      if (why) *why = std::string(v) + "=" + s;
      return true;
    }
  }
  return false;
}

namespace detail {

void check_tensor(const Communicator& c, const char* op, const Tensor& t) {
  PE_CHECK(t.defined(), op, " on ", c.describe(), ": undefined tensor");
  DType d = t.dtype();
  PE_CHECK(d == DType::F32 || d == DType::F64 || d == DType::BF16 || d == DType::I32 || d == DType::I64, op, " on ",
           c.describe(), ": dtype ", dtype_name(d), " is not supported (f32, f64, bf16, i32, i64)");
  PE_CHECK(t.is_contiguous(), op, " on ", c.describe(), ": tensor ", t.str(), " is not contiguous");
  PE_CHECK(t.device() == c.device(), op, " on ", c.describe(), ": tensor ", t.str(), " is not on the communicator's device ",
           c.device().str());
}

void check_reduce(const Communicator& c, const char* op, const Tensor& t, Reduction rop) {
  check_tensor(c, op, t);
  PE_CHECK(rop != Reduction::Avg || is_floating(t.dtype()), op, " on ", c.describe(), ": avg of integer dtype ",
           dtype_name(t.dtype()), " is not supported (use sum)");
}

std::vector<int64_t> resolve_counts(const Communicator& c, const char* op, const std::vector<int64_t>& counts,
                                    int64_t each) {
  if (counts.empty()) return std::vector<int64_t>(size_t(c.world_size()), each);
  PE_CHECK(counts.size() == size_t(c.world_size()), op, " on ", c.describe(), ": ", counts.size(),
           " counts for a world of ", c.world_size());
  for (int64_t n : counts) PE_CHECK(n >= 0, op, " on ", c.describe(), ": negative count ", n);
  return counts;
}

}  // namespace detail

// ------------------------------------------------------------------ single process
namespace {

void copy_flat(const Tensor& in, const Tensor& out) {
  if (in.raw_data() == out.raw_data() || in.numel() == 0) return;
  backend_for(out.device()).copy_strided(in.view({in.numel()}), out.view({out.numel()}));
}

class SingleComm final : public Communicator {
 public:
  explicit SingleComm(Device d) : device_(d) {}
  CommKind kind() const override { return CommKind::Single; }
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  Device device() const override { return device_; }

  void all_reduce(const Tensor& t, Reduction op) override { detail::check_reduce(*this, "all_reduce", t, op); }
  void all_gather(const Tensor& in, const Tensor& out, const std::vector<int64_t>& counts) override {
    gather_like("all_gather", in, out, counts);
  }
  void reduce_scatter(const Tensor& in, const Tensor& out, Reduction op, const std::vector<int64_t>& counts) override {
    detail::check_reduce(*this, "reduce_scatter", in, op);
    gather_like("reduce_scatter", out, in, counts);
  }
  void broadcast(const Tensor& t, int root) override {
    detail::check_tensor(*this, "broadcast", t);
    PE_CHECK(root == 0, "broadcast on ", describe(), ": root ", root, " outside the world");
  }
  void barrier() override {}

 private:
  // One rank: `part` (this rank's share) and `whole` (the gathered / reduced elements) are the same.
  void gather_like(const char* op, const Tensor& part, const Tensor& whole, const std::vector<int64_t>& counts) {
    detail::check_tensor(*this, op, part);
    detail::check_tensor(*this, op, whole);
    PE_CHECK(part.dtype() == whole.dtype(), op, " on ", describe(), ": dtypes differ, ", part.str(), " and ", whole.str());
    bool gather = std::string(op) == "all_gather";
    std::vector<int64_t> c = detail::resolve_counts(*this, op, counts, gather ? part.numel() : whole.numel());
    if (gather) {
      PE_CHECK(part.numel() == c[0], op, " on ", describe(), ": input ", part.str(), " holds ", part.numel(),
               " elements, counts say ", c[0]);
      PE_CHECK(whole.numel() == c[0], op, " on ", describe(), ": output ", whole.str(), " is not the ", c[0],
               " gathered elements");
      copy_flat(part, whole);
    } else {
      PE_CHECK(whole.numel() == c[0], op, " on ", describe(), ": input ", whole.str(), " is not the ", c[0],
               " elements the counts sum to");
      PE_CHECK(part.numel() == c[0], op, " on ", describe(), ": output ", part.str(), " is not this rank's ", c[0],
               " elements");
      copy_flat(whole, part);
    }
  }
  Device device_;
};

}  // namespace

std::unique_ptr<Communicator> make_single_communicator(Device device) { return std::make_unique<SingleComm>(device); }

std::unique_ptr<Communicator> make_communicator(CommKind kind, Device device) {
  std::string why;
  bool launched = launched_by_mpi(&why);
  if (kind == CommKind::Auto) {
    if (!launched) return make_single_communicator(device);
    PE_CHECK(mpi_built(), "communicator: started by an MPI launcher (", why,
             ") but this build has no MPI support (configure with MPI found, e.g. apt-get install libopenmpi-dev, "
             "-DPE_MPI=ON)");
    kind = device.is_cuda() && nccl_built() ? CommKind::Nccl : CommKind::Mpi;
    PE_CHECK(!device.is_cuda() || kind == CommKind::Nccl, "communicator: device ", device.str(),
             " needs NCCL, which this build lacks (configure with CUDA and NCCL found)");
  }
  switch (kind) {
    case CommKind::Single: return make_single_communicator(device);
    case CommKind::Mpi:
      PE_CHECK(device.is_cpu(), "communicator: the MPI communicator takes host tensors, not ", device.str(),
               " (use nccl)");
      return make_mpi_communicator();
    case CommKind::Nccl: return make_nccl_communicator();  // on cuda:<local rank>, whatever index was asked
    case CommKind::Auto: break;
  }
  PE_FAIL("communicator: unreachable kind");
}

}  // namespace pe::dist
