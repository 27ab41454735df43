#pragma once
// Collective communication between the processes of one data-parallel job (issue #11). One small
// interface, three implementations:
//   single  one process (world size 1): every collective is the identity (a copy where in != out);
//   mpi     host (CPU) tensors through MPI; the launcher (mpirun, srun) starts the processes;
//   nccl    device tensors through NCCL, one GPU per process (cuda:<local rank>), enqueued on the
//           engine's CUDA stream (stream-ordered, no host synchronisation); the ncclUniqueId is
//           broadcast over MPI. Built only when CUDA, NCCL and MPI are found (CMake says which).
// Every collective must be called by every rank of the communicator in the same order with matching
// arguments (dtype, counts, root), as in MPI and NCCL; a mismatch is undefined (usually a hang).
//
// Tensors: contiguous, on device(); dtypes f32, f64, bf16, i32, i64 (others are refused). Reductions
// of bf16 accumulate in f32 on MPI (inputs widened, one rounding at the end) and natively on NCCL.
// Avg is Sum divided by the world size, for floating dtypes only (integer avg is refused); NCCL's
// (ncclAvg) multiplies every rank's input by 1/W rounded to the dtype before summing, so where 1/W is
// not a power of two it differs from the once-rounded Sum / W in the last bits.
//
// Uneven shards: all_gather and reduce_scatter take per-rank element counts. Without counts every
// rank contributes (all_gather) or receives (reduce_scatter) the same number of elements. The
// policy for splitting n elements (or rows) over W ranks is balanced_counts(): contiguous shards in
// rank order, the first n mod W ranks one element larger.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace pe::dist {

enum class Reduction : uint8_t { Sum, Avg };

// A collective started by an *_async call. wait() returns when its result may be used: on MPI the
// host has it; on NCCL the engine's CUDA stream waits for it (the host does not). Call wait() once;
// until then the tensor given to the call must be neither read nor written.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
};
enum class CommKind : uint8_t { Auto, Single, Mpi, Nccl };
const char* comm_kind_name(CommKind k);
CommKind parse_comm_kind(const std::string& s);  // "auto", "single", "mpi", "nccl"

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual CommKind kind() const = 0;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual int local_rank() const = 0;  // rank among the processes of this machine
  virtual int local_size() const = 0;
  // Where its tensors live: cpu for single and mpi, cuda:<local rank> for nccl.
  virtual Device device() const = 0;

  // In place: t = op over ranks of t (same shape on every rank).
  virtual void all_reduce(const Tensor& t, Reduction op) = 0;
  // Starts the all_reduce of t and returns at once (overlap with computation: the gradient buckets of
  // dist/grad_buckets.h). Async all-reduces are matched across ranks in the order they are started,
  // independently of the blocking collectives, which may be called while some are in flight (MPI: a
  // duplicate communicator, MPI_Iallreduce; NCCL: a second ncclComm on a communication stream of its
  // own, ordered after the engine's stream by an event). Default (single process): the blocking
  // all_reduce, complete on return.
  virtual std::unique_ptr<Work> all_reduce_async(const Tensor& t, Reduction op);
  // out (sum of counts elements, the same on every rank) = concatenation in rank order of every
  // rank's `in` (flattened). counts[r]: the element count of rank r's in; empty: all equal in.numel().
  virtual void all_gather(const Tensor& in, const Tensor& out, const std::vector<int64_t>& counts = {}) = 0;
  // in (sum of counts elements on every rank) is reduced elementwise over ranks; rank r receives
  // elements offset_r .. offset_r + counts[r] - 1 (offset_r = counts[0] + ... + counts[r-1]) in out.
  // counts empty: equal shards of in.numel() / world_size() (which must divide).
  virtual void reduce_scatter(const Tensor& in, const Tensor& out, Reduction op,
                              const std::vector<int64_t>& counts = {}) = 0;
  // In place: t = root's t.
  virtual void broadcast(const Tensor& t, int root) = 0;
  // Returns when every rank has called it (NCCL: after the device has finished the work enqueued before).
  virtual void barrier() = 0;

  // "rank 1/3 (mpi)" for messages.
  std::string describe() const;
};

// The balanced split policy: n over `world` ranks, the first n mod world shards one larger.
std::vector<int64_t> balanced_counts(int64_t n, int world);
// Start of rank r's shard: counts[0] + ... + counts[r-1].
int64_t shard_offset(const std::vector<int64_t>& counts, int r);

// True when this process was started by an MPI launcher (mpirun/mpiexec of Open MPI, MPICH or
// MVAPICH, srun with PMI/PMIx): one of OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_RANK,
// MPI_LOCALNRANKS, MV2_COMM_WORLD_SIZE is set. `why` receives the variable found.
bool launched_by_mpi(std::string* why = nullptr);

// This process's rank and the job's size (MPI_COMM_WORLD) once the MPI runtime is initialised and not
// yet finalised; {0, 1} otherwise (one process, or MPI not started).
std::pair<int, int> job_rank_and_size();
// Ends every process of the job with exit status `code` (MPI_Abort on MPI_COMM_WORLD; the launcher
// stops the other ranks, wherever they wait) when MPI runs with more than one process; otherwise
// returns without doing anything. For the top-level error handler: a failing rank must not leave the
// others waiting in a collective.
void abort_job(int code);

// Which implementations this build has.
bool mpi_built();
bool nccl_built();

// The communicator of this job. Auto: under an MPI launcher NCCL when `device` is a CUDA device (and
// NCCL is built), else MPI; NCCL uses cuda:<local rank> whatever the index of `device` (callers take
// the communicator's device()); without a launcher the single-process one (the binary then runs exactly
// as without this subsystem). Asking for an implementation this build lacks, or running under a
// launcher without MPI support, is an error that says so. The MPI runtime is initialised on the
// first MPI/NCCL communicator and finalised at exit.
std::unique_ptr<Communicator> make_communicator(CommKind kind = CommKind::Auto, Device device = Device::cpu());

// The implementations (dist/comm_*.cpp); make_communicator picks one.
std::unique_ptr<Communicator> make_single_communicator(Device device = Device::cpu());
std::unique_ptr<Communicator> make_mpi_communicator();   // throws when MPI is not built
std::unique_ptr<Communicator> make_nccl_communicator();  // throws when NCCL is not built

namespace detail {
// Shared argument checks; `op` names the collective in the message.
void check_tensor(const Communicator& c, const char* op, const Tensor& t);
void check_reduce(const Communicator& c, const char* op, const Tensor& t, Reduction rop);
// Validates counts (one per rank, non-negative) or expands empty counts to `each` per rank.
std::vector<int64_t> resolve_counts(const Communicator& c, const char* op, const std::vector<int64_t>& counts,
                                    int64_t each);
}  // namespace detail

}  // namespace pe::dist
