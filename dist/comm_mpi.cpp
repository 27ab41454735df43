// The MPI communicator (dist/communicator.h): host tensors, one process per rank. Built when CMake
// finds MPI (PE_MPI AUTO/ON); otherwise make_mpi_communicator() says the build lacks it.
#include "dist/communicator.h"

#ifdef PE_WITH_MPI
#include <climits>
#include <cstdlib>
#include <vector>

#include "dist/mpi_runtime.h"

namespace pe::dist {

namespace mpi {

namespace {
bool g_we_initialized = false;
void finalize_at_exit() {
  int fin = 0;
  MPI_Finalized(&fin);
  if (!fin) MPI_Finalize();
}
}  // namespace

void ensure_initialized() {
  int init = 0;
  MPI_Initialized(&init);
  if (init) return;
  PE_CHECK(!finalized(), "MPI: already finalised; no communicator can be created after MPI_Finalize");
  int provided = 0;
  int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  PE_CHECK(rc == MPI_SUCCESS, "MPI_Init_thread failed (code ", rc, ")");
  g_we_initialized = true;
  std::atexit(finalize_at_exit);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

bool finalized() {
  int fin = 0;
  MPI_Finalized(&fin);
  return fin != 0;
}

void check(int rc, const char* call, MPI_Comm comm) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) len = 0;
  int rank = -1, size = -1;
  if (comm != MPI_COMM_NULL) {
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
  }
  PE_FAIL(call, " failed on rank ", rank, "/", size, " (mpi): ", std::string(msg, size_t(len > 0 ? len : 0)),
          " (MPI error ", rc, ")");
}

}  // namespace mpi

namespace {

MPI_Datatype mpi_type(DType d) {
  switch (d) {
    case DType::F32: return MPI_FLOAT;
    case DType::F64: return MPI_DOUBLE;
    case DType::BF16: return MPI_UINT16_T;  // moved as bits; reductions widen to f32
    case DType::I32: return MPI_INT32_T;
    case DType::I64: return MPI_INT64_T;
    default: break;
  }
  PE_FAIL("mpi: no MPI type for ", dtype_name(d));
}

std::vector<float> widen(const Tensor& t) {
  const bf16* p = t.data<bf16>();
  std::vector<float> v(size_t(t.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(p[i]);
  return v;
}
void narrow_into(const std::vector<float>& v, const Tensor& t) {
  bf16* p = t.data<bf16>();
  for (size_t i = 0; i < v.size(); ++i) p[i] = bf16(v[i]);
}

template <typename T>
void divide(T* p, int64_t n, int world) {
  for (int64_t i = 0; i < n; ++i) p[i] = p[i] / T(world);
}
void divide(const Tensor& t, int world) {
  if (t.dtype() == DType::F32) divide(t.data<float>(), t.numel(), world);
  if (t.dtype() == DType::F64) divide(t.data<double>(), t.numel(), world);
}

// An MPI_Iallreduce in flight. bf16 travels widened to f32 (as the blocking all_reduce) and is narrowed
// back into the caller's tensor by wait().
class MpiWork final : public Work {
 public:
  MpiWork(MPI_Comm comm, Tensor t, Reduction op, int world) : comm_(comm), t_(std::move(t)), op_(op), world_(world) {}
  // Dropped without wait() (an exception between start and wait): complete the request first, so MPI
  // never writes into the tensor or the widened buffer after they are freed.
  ~MpiWork() override {
    if (!done_ && req_ != MPI_REQUEST_NULL) MPI_Wait(&req_, MPI_STATUS_IGNORE);
  }
  MPI_Request* request() { return &req_; }
  std::vector<float>& widened() { return wide_; }
  void wait() override {
    if (done_) return;
    done_ = true;
    PE_MPI(comm_, MPI_Wait(&req_, MPI_STATUS_IGNORE));
    if (t_.dtype() == DType::BF16) {
      if (op_ == Reduction::Avg) divide(wide_.data(), int64_t(wide_.size()), world_);
      narrow_into(wide_, t_);
    } else if (op_ == Reduction::Avg) {
      divide(t_, world_);
    }
  }

 private:
  MPI_Comm comm_;
  Tensor t_;  // held until the reduction has landed
  Reduction op_;
  int world_;
  std::vector<float> wide_;
  MPI_Request req_ = MPI_REQUEST_NULL;
  bool done_ = false;
};

class MpiComm final : public Communicator {
 public:
  MpiComm() {
    mpi::ensure_initialized();
    PE_MPI(MPI_COMM_WORLD, MPI_Comm_dup(MPI_COMM_WORLD, &comm_));
    PE_MPI(comm_, MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
    // The async all-reduces' own communicator: they are matched among themselves, whatever blocking
    // collectives a rank calls while they are in flight.
    PE_MPI(comm_, MPI_Comm_dup(comm_, &async_comm_));
    PE_MPI(async_comm_, MPI_Comm_set_errhandler(async_comm_, MPI_ERRORS_RETURN));
    PE_MPI(comm_, MPI_Comm_rank(comm_, &rank_));
    PE_MPI(comm_, MPI_Comm_size(comm_, &size_));
    MPI_Comm local = MPI_COMM_NULL;
    PE_MPI(comm_, MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local));
    PE_MPI(comm_, MPI_Comm_rank(local, &local_rank_));
    PE_MPI(comm_, MPI_Comm_size(local, &local_size_));
    MPI_Comm_free(&local);
  }
  ~MpiComm() override {
    if (comm_ != MPI_COMM_NULL && !mpi::finalized()) MPI_Comm_free(&comm_);
    if (async_comm_ != MPI_COMM_NULL && !mpi::finalized()) MPI_Comm_free(&async_comm_);
  }
  CommKind kind() const override { return CommKind::Mpi; }
  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  Device device() const override { return Device::cpu(); }

  void all_reduce(const Tensor& t, Reduction op) override {
    detail::check_reduce(*this, "all_reduce", t, op);
    int n = count("all_reduce", t.numel());
    if (t.dtype() == DType::BF16) {
      std::vector<float> v = widen(t);
      PE_MPI(comm_, MPI_Allreduce(MPI_IN_PLACE, v.data(), n, MPI_FLOAT, MPI_SUM, comm_));
      if (op == Reduction::Avg) divide(v.data(), int64_t(v.size()), size_);
      narrow_into(v, t);
      return;
    }
    PE_MPI(comm_, MPI_Allreduce(MPI_IN_PLACE, t.raw_data(), n, mpi_type(t.dtype()), MPI_SUM, comm_));
    if (op == Reduction::Avg) divide(t, size_);
  }

  // Only the main thread calls MPI (MPI_THREAD_FUNNELED is enough): Open MPI progresses the request
  // inside later MPI calls and in MPI_Wait, so the result is right without a progress thread; how much
  // of it overlaps the backward on the CPU depends on those calls.
  std::unique_ptr<Work> all_reduce_async(const Tensor& t, Reduction op) override {
    detail::check_reduce(*this, "all_reduce_async", t, op);
    int n = count("all_reduce_async", t.numel());
    auto w = std::make_unique<MpiWork>(async_comm_, t, op, size_);
    if (t.dtype() == DType::BF16) {
      w->widened() = widen(t);
      PE_MPI(async_comm_, MPI_Iallreduce(MPI_IN_PLACE, w->widened().data(), n, MPI_FLOAT, MPI_SUM, async_comm_,
                                         w->request()));
    } else {
      PE_MPI(async_comm_, MPI_Iallreduce(MPI_IN_PLACE, t.raw_data(), n, mpi_type(t.dtype()), MPI_SUM, async_comm_,
                                         w->request()));
    }
    return w;
  }

  void all_gather(const Tensor& in, const Tensor& out, const std::vector<int64_t>& counts) override {
    const char* op = "all_gather";
    check_pair(op, in, out);
    std::vector<int64_t> c = detail::resolve_counts(*this, op, counts, in.numel());
    PE_CHECK(in.numel() == c[size_t(rank_)], op, " on ", describe(), ": input ", in.str(), " holds ", in.numel(),
             " elements, counts say ", c[size_t(rank_)]);
    std::vector<int> ic, displs;
    int64_t total = layout(op, c, ic, displs);
    PE_CHECK(out.numel() == total, op, " on ", describe(), ": output ", out.str(), " is not the ", total,
             " gathered elements");
    MPI_Datatype ty = mpi_type(in.dtype());
    PE_MPI(comm_, MPI_Allgatherv(in.raw_data(), ic[size_t(rank_)], ty, out.raw_data(), ic.data(), displs.data(), ty,
                                 comm_));
  }

  void reduce_scatter(const Tensor& in, const Tensor& out, Reduction op, const std::vector<int64_t>& counts) override {
    const char* name = "reduce_scatter";
    detail::check_reduce(*this, name, in, op);
    check_pair(name, out, in);
    PE_CHECK(!counts.empty() || in.numel() % size_ == 0, name, " on ", describe(), ": ", in.numel(),
             " elements do not split evenly over ", size_, " ranks (pass counts)");
    std::vector<int64_t> c = detail::resolve_counts(*this, name, counts, in.numel() / size_);
    std::vector<int> ic, displs;
    int64_t total = layout(name, c, ic, displs);
    PE_CHECK(in.numel() == total, name, " on ", describe(), ": input ", in.str(), " is not the ", total,
             " elements the counts sum to");
    PE_CHECK(out.numel() == c[size_t(rank_)], name, " on ", describe(), ": output ", out.str(), " is not this rank's ",
             c[size_t(rank_)], " elements");
    if (in.dtype() == DType::BF16) {
      std::vector<float> vin = widen(in), vout(size_t(out.numel()) + 1);  // +1: never a null buffer
      PE_MPI(comm_, MPI_Reduce_scatter(vin.data(), vout.data(), ic.data(), MPI_FLOAT, MPI_SUM, comm_));
      vout.resize(size_t(out.numel()));
      if (op == Reduction::Avg) divide(vout.data(), int64_t(vout.size()), size_);
      narrow_into(vout, out);
      return;
    }
    PE_MPI(comm_, MPI_Reduce_scatter(in.raw_data(), out.raw_data(), ic.data(), mpi_type(in.dtype()), MPI_SUM, comm_));
    if (op == Reduction::Avg) divide(out, size_);
  }

  void broadcast(const Tensor& t, int root) override {
    detail::check_tensor(*this, "broadcast", t);
    PE_CHECK(root >= 0 && root < size_, "broadcast on ", describe(), ": root ", root, " outside 0 .. ", size_ - 1);
    PE_MPI(comm_, MPI_Bcast(t.raw_data(), count("broadcast", t.numel()), mpi_type(t.dtype()), root, comm_));
  }

  void barrier() override { PE_MPI(comm_, MPI_Barrier(comm_)); }

 private:
  int count(const char* op, int64_t n) const {
    PE_CHECK(n <= INT_MAX, op, " on ", describe(), ": ", n, " elements exceed MPI's per-call count of ", INT_MAX);
    return int(n);
  }
  void check_pair(const char* op, const Tensor& a, const Tensor& b) const {
    detail::check_tensor(*this, op, a);
    detail::check_tensor(*this, op, b);
    PE_CHECK(a.dtype() == b.dtype(), op, " on ", describe(), ": dtypes differ, ", a.str(), " and ", b.str());
  }
  int64_t layout(const char* op, const std::vector<int64_t>& c, std::vector<int>& ic, std::vector<int>& displs) const {
    int64_t total = 0;
    for (int64_t n : c) {
      ic.push_back(count(op, n));
      displs.push_back(count(op, total));
      total += n;
    }
    count(op, total);
    return total;
  }

  MPI_Comm comm_ = MPI_COMM_NULL, async_comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
};

}  // namespace

bool mpi_built() { return true; }

std::pair<int, int> job_rank_and_size() {
  int init = 0;
  MPI_Initialized(&init);
  if (!init || mpi::finalized()) return {0, 1};
  int rank = 0, size = 1;
  if (MPI_Comm_rank(MPI_COMM_WORLD, &rank) != MPI_SUCCESS || MPI_Comm_size(MPI_COMM_WORLD, &size) != MPI_SUCCESS)
    return {0, 1};
  return {rank, size};
}

void abort_job(int code) {
  if (job_rank_and_size().second > 1) MPI_Abort(MPI_COMM_WORLD, code);
}
std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiComm>(); }

}  // namespace pe::dist

#else  // no MPI in this build

namespace pe::dist {
bool mpi_built() { return false; }
std::pair<int, int> job_rank_and_size() { return {0, 1}; }
void abort_job(int) {}
std::unique_ptr<Communicator> make_mpi_communicator() {
  PE_FAIL("communicator: this build has no MPI support (MPI was not found at configure time; "
          "apt-get install libopenmpi-dev openmpi-bin, then configure with -DPE_MPI=ON)");
}
}  // namespace pe::dist

#endif
