// The NCCL communicator (dist/communicator.h): device tensors, one GPU per process (cuda:<local
// rank>), every collective enqueued on the engine's CUDA stream (the legacy default stream, see
// stream() in kernels/cuda/cuda_common.cuh), so it is ordered with the kernels around it and the
// host does not wait. The ncclUniqueId travels from rank 0 over the MPI communicator. Built only
// when CUDA, NCCL and MPI are all found (PE_NCCL AUTO/ON); otherwise comm_nccl_stub.cpp says so.
#include "dist/communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>

namespace pe::dist {

namespace {

// The engine's stream (kernels/cuda/cuda_common.cuh: all work is ordered on the legacy default stream).
cudaStream_t engine_stream() { return cudaStreamLegacy; }

ncclDataType_t nccl_type(DType d) {
  switch (d) {
    case DType::F32: return ncclFloat32;
    case DType::F64: return ncclFloat64;
    case DType::BF16: return ncclBfloat16;
    case DType::I32: return ncclInt32;
    case DType::I64: return ncclInt64;
    default: break;
  }
  PE_FAIL("nccl: no NCCL type for ", dtype_name(d));
}

char* bytes(const Tensor& t, int64_t element_offset = 0) {
  return static_cast<char*>(t.raw_data()) + element_offset * int64_t(dtype_size(t.dtype()));
}

// An all-reduce enqueued on the communication stream; `done` is recorded after it there. wait() makes
// the engine's stream wait for `done` (the host does not block): kernels enqueued after wait() read
// the reduced values. The tensor is held until then, so its memory cannot return to the allocator
// while NCCL may still write it.
class NcclWork final : public Work {
 public:
  NcclWork(Tensor t, cudaEvent_t done) : t_(std::move(t)), done_(done) {}
  // Dropped without wait() (an exception between launch and wait): the engine's stream still waits
  // for the collective, so the tensor's memory, returned to the stream-ordered allocator now, is not
  // handed to a kernel that could run while NCCL writes it.
  ~NcclWork() override {
    if (!done_) return;
    cudaStreamWaitEvent(engine_stream(), done_, 0);
    cudaEventDestroy(done_);
  }
  void wait() override {
    if (!done_) return;
    cudaError_t rc = cudaStreamWaitEvent(engine_stream(), done_, 0);
    cudaEventDestroy(done_);
    done_ = nullptr;
    PE_CHECK(rc == cudaSuccess, "cudaStreamWaitEvent (nccl all_reduce_async wait): ", cudaGetErrorString(rc));
  }

 private:
  Tensor t_;
  cudaEvent_t done_;
};

// ncclGroupStart .. ncclGroupEnd that closes the group when a call inside it throws, so that later
// collectives on this thread are not left queued in an open group.
class NcclGroup {
 public:
  NcclGroup() { started_ = ncclGroupStart(); }
  ncclResult_t started() const { return started_; }
  ncclResult_t end() {
    open_ = false;
    return ncclGroupEnd();
  }
  ~NcclGroup() {
    if (open_ && started_ == ncclSuccess) ncclGroupEnd();
  }
  NcclGroup(const NcclGroup&) = delete;
  NcclGroup& operator=(const NcclGroup&) = delete;

 private:
  ncclResult_t started_;
  bool open_ = true;
};

class NcclComm final : public Communicator {
 public:
  NcclComm() : mpi_(make_mpi_communicator()) {
    int ndev = 0;
    cuda_check(cudaGetDeviceCount(&ndev), "cudaGetDeviceCount");
    PE_CHECK(mpi_->local_rank() < ndev, "nccl on ", mpi_->describe(), ": local rank ", mpi_->local_rank(),
             " needs cuda:", mpi_->local_rank(), " but this machine shows ", ndev,
             " device(s) (one GPU per process; start at most that many processes per machine)");
    device_ = Device::cuda(mpi_->local_rank());
    cuda_check(cudaSetDevice(device_.index), "cudaSetDevice");
    ncclUniqueId id;
    static_assert(sizeof(ncclUniqueId) % 8 == 0, "ncclUniqueId is moved as i64 words");
    Tensor buf = Tensor::zeros({int64_t(sizeof(ncclUniqueId) / 8)}, DType::I64);
    if (mpi_->rank() == 0) {
      nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
      std::memcpy(buf.raw_data(), &id, sizeof id);
    }
    mpi_->broadcast(buf, 0);
    std::memcpy(&id, buf.raw_data(), sizeof id);
    nccl_check(ncclCommInitRank(&comm_, mpi_->world_size(), id, mpi_->rank()), "ncclCommInitRank");
    // The async all-reduces: a second communicator (NCCL operations on one communicator must not run
    // concurrently from two streams) on a non-blocking stream (one the legacy default stream does not
    // implicitly serialise with), so they overlap the kernels of the engine's stream.
    if (mpi_->rank() == 0) {
      nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId (async)");
      std::memcpy(buf.raw_data(), &id, sizeof id);
    }
    mpi_->broadcast(buf, 0);
    std::memcpy(&id, buf.raw_data(), sizeof id);
    nccl_check(ncclCommInitRank(&async_comm_, mpi_->world_size(), id, mpi_->rank()), "ncclCommInitRank (async)");
    cuda_check(cudaStreamCreateWithFlags(&comm_stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    cuda_check(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming), "cudaEventCreateWithFlags");
    scratch_ = Tensor::zeros({1}, DType::F32, device_);
  }
  ~NcclComm() override {
    if (async_comm_) ncclCommDestroy(async_comm_);
    if (comm_) ncclCommDestroy(comm_);
    if (ready_) cudaEventDestroy(ready_);
    if (comm_stream_) cudaStreamDestroy(comm_stream_);
  }
  CommKind kind() const override { return CommKind::Nccl; }
  int rank() const override { return mpi_->rank(); }
  int world_size() const override { return mpi_->world_size(); }
  int local_rank() const override { return mpi_->local_rank(); }
  int local_size() const override { return mpi_->local_size(); }
  Device device() const override { return device_; }

  void all_reduce(const Tensor& t, Reduction op) override {
    detail::check_reduce(*this, "all_reduce", t, op);
    nccl_check(ncclAllReduce(t.raw_data(), t.raw_data(), size_t(t.numel()), nccl_type(t.dtype()), red(op), comm_,
                             engine_stream()),
               "ncclAllReduce");
  }

  // The overlap path: t was written by kernels on the engine's stream; the communication stream waits
  // for them (event `ready_`), reduces, and records `done`, which Work::wait() makes the engine's
  // stream wait for. Not yet run on a GPU; CI runs it on the SIMT emulator over a stand-in NCCL
  // (tests/simt/fake_nccl.cpp), which checks the stream order (not real overlap).
  // Risk to check on GPUs: NCCL documents that operations of different communicators in flight at
  // the same time must be submitted in the same order on every rank (their kernels may otherwise wait
  // for each other). The gradient buckets are started at the same points of every rank's backward
  // sweep as long as the ranks' graphs have the same structure (ProtST's do: every rank runs the same
  // ops on its shard), so the order matches; if a job hangs there, --bucket-mb 0 avoids the second
  // communicator and the watchdog (--collective-timeout) ends the job meanwhile.
  std::unique_ptr<Work> all_reduce_async(const Tensor& t, Reduction op) override {
    detail::check_reduce(*this, "all_reduce_async", t, op);
    cuda_check(cudaEventRecord(ready_, engine_stream()), "cudaEventRecord (all_reduce_async)");
    cuda_check(cudaStreamWaitEvent(comm_stream_, ready_, 0), "cudaStreamWaitEvent (all_reduce_async)");
    nccl_check(ncclAllReduce(t.raw_data(), t.raw_data(), size_t(t.numel()), nccl_type(t.dtype()), red(op), async_comm_,
                             comm_stream_),
               "ncclAllReduce (async)");
    cudaEvent_t done = nullptr;
    cuda_check(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), "cudaEventCreateWithFlags");
    cuda_check(cudaEventRecord(done, comm_stream_), "cudaEventRecord (all_reduce_async done)");
    return std::make_unique<NcclWork>(t, done);
  }

  void all_gather(const Tensor& in, const Tensor& out, const std::vector<int64_t>& counts) override {
    const char* op = "all_gather";
    check_pair(op, in, out);
    std::vector<int64_t> c = detail::resolve_counts(*this, op, counts, in.numel());
    PE_CHECK(in.numel() == c[size_t(rank())], op, " on ", describe(), ": input ", in.str(), " holds ", in.numel(),
             " elements, counts say ", c[size_t(rank())]);
    PE_CHECK(out.numel() == shard_offset(c, world_size()), op, " on ", describe(), ": output ", out.str(),
             " is not the ", shard_offset(c, world_size()), " gathered elements");
    ncclDataType_t ty = nccl_type(in.dtype());
    if (equal(c)) {
      nccl_check(ncclAllGather(in.raw_data(), out.raw_data(), size_t(c[0]), ty, comm_, engine_stream()),
                 "ncclAllGather");
      return;
    }
    // Uneven: one broadcast per rank into its slice of out, grouped into one launch.
    NcclGroup group;
    nccl_check(group.started(), "ncclGroupStart");
    for (int r = 0; r < world_size(); ++r) {
      if (c[size_t(r)] == 0) continue;
      char* dst = bytes(out, shard_offset(c, r));
      nccl_check(ncclBroadcast(r == rank() ? in.raw_data() : dst, dst, size_t(c[size_t(r)]), ty, r, comm_,
                               engine_stream()),
                 "ncclBroadcast");
    }
    nccl_check(group.end(), "ncclGroupEnd");
  }

  void reduce_scatter(const Tensor& in, const Tensor& out, Reduction op, const std::vector<int64_t>& counts) override {
    const char* name = "reduce_scatter";
    detail::check_reduce(*this, name, in, op);
    check_pair(name, out, in);
    PE_CHECK(!counts.empty() || in.numel() % world_size() == 0, name, " on ", describe(), ": ", in.numel(),
             " elements do not split evenly over ", world_size(), " ranks (pass counts)");
    std::vector<int64_t> c = detail::resolve_counts(*this, name, counts, in.numel() / world_size());
    PE_CHECK(in.numel() == shard_offset(c, world_size()), name, " on ", describe(), ": input ", in.str(),
             " is not the ", shard_offset(c, world_size()), " elements the counts sum to");
    PE_CHECK(out.numel() == c[size_t(rank())], name, " on ", describe(), ": output ", out.str(),
             " is not this rank's ", c[size_t(rank())], " elements");
    ncclDataType_t ty = nccl_type(in.dtype());
    if (equal(c)) {
      nccl_check(ncclReduceScatter(in.raw_data(), out.raw_data(), size_t(c[0]), ty, red(op), comm_, engine_stream()),
                 "ncclReduceScatter");
      return;
    }
    // Uneven: one reduce per rank onto its owner, grouped into one launch.
    NcclGroup group;
    nccl_check(group.started(), "ncclGroupStart");
    for (int r = 0; r < world_size(); ++r) {
      if (c[size_t(r)] == 0) continue;
      char* src = bytes(in, shard_offset(c, r));
      nccl_check(ncclReduce(src, r == rank() ? out.raw_data() : src, size_t(c[size_t(r)]), ty, red(op), r, comm_,
                            engine_stream()),
                 "ncclReduce");
    }
    nccl_check(group.end(), "ncclGroupEnd");
  }

  void broadcast(const Tensor& t, int root) override {
    detail::check_tensor(*this, "broadcast", t);
    PE_CHECK(root >= 0 && root < world_size(), "broadcast on ", describe(), ": root ", root, " outside 0 .. ",
             world_size() - 1);
    nccl_check(ncclBroadcast(t.raw_data(), t.raw_data(), size_t(t.numel()), nccl_type(t.dtype()), root, comm_,
                             engine_stream()),
               "ncclBroadcast");
  }

  void barrier() override {
    nccl_check(ncclAllReduce(scratch_.raw_data(), scratch_.raw_data(), 1, ncclFloat32, ncclSum, comm_, engine_stream()),
               "ncclAllReduce (barrier)");
    cuda_check(cudaStreamSynchronize(engine_stream()), "cudaStreamSynchronize (barrier)");
  }

 private:
  static ncclRedOp_t red(Reduction op) { return op == Reduction::Avg ? ncclAvg : ncclSum; }
  static bool equal(const std::vector<int64_t>& c) {
    for (int64_t n : c)
      if (n != c[0]) return false;
    return true;
  }
  void check_pair(const char* op, const Tensor& a, const Tensor& b) const {
    detail::check_tensor(*this, op, a);
    detail::check_tensor(*this, op, b);
    PE_CHECK(a.dtype() == b.dtype(), op, " on ", describe(), ": dtypes differ, ", a.str(), " and ", b.str());
  }
  void nccl_check(ncclResult_t rc, const char* call) const {
    if (rc == ncclSuccess || rc == ncclInProgress) return;
    // NCCL's last error is per thread and ignores its argument (NULL allowed): also the reason a
    // ncclCommInitRank failed, before comm_ exists.
    const char* last = ncclGetLastError(comm_);
    PE_FAIL(call, " failed on rank ", mpi_->rank(), "/", mpi_->world_size(), " (nccl): ", ncclGetErrorString(rc),
            last && *last ? std::string(": ") + last : std::string());
  }
  void cuda_check(cudaError_t rc, const char* call) const {
    PE_CHECK(rc == cudaSuccess, call, " failed on rank ", mpi_->rank(), "/", mpi_->world_size(), " (nccl): ",
             cudaGetErrorString(rc));
  }

  std::unique_ptr<Communicator> mpi_;
  ncclComm_t comm_ = nullptr, async_comm_ = nullptr;
  cudaStream_t comm_stream_ = nullptr;
  cudaEvent_t ready_ = nullptr;
  Device device_;
  Tensor scratch_;
};

}  // namespace

bool nccl_built() { return true; }
std::unique_ptr<Communicator> make_nccl_communicator() { return std::make_unique<NcclComm>(); }

}  // namespace pe::dist
