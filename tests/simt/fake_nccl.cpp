// TEST STAND-IN for NCCL in the SIMT emulator, not a product: the subset of NCCL that
// dist/comm_nccl.cpp uses (tests/simt/include/nccl.h), over MPI, on the emulator's "device" memory
// (host memory), so that the NCCL communicator runs under mpirun without GPUs (CTest simt/dist-nccl-np*).
//
// What it keeps of NCCL (where a bug in the caller would show):
//  - communicators: ncclCommInitRank splits MPI_COMM_WORLD by the ncclUniqueId (every rank of the job
//    must call it, as comm_nccl.cpp does): ranks that passed different ids, a world size or rank that
//    does not match, or two ranks of one host on the same device (NCCL: "Duplicate GPU detected")
//    fail with ncclInvalidUsage. Each ncclComm_t has its own MPI communicator, so two never cross-talk.
//  - collectives: all-reduce, broadcast, reduce, all-gather and reduce-scatter with NCCL's layouts
//    (rank-major chunks of sendcount / recvcount) and in-place rules (all-gather in place:
//    sendbuff == recvbuff + rank * sendcount; reduce-scatter: recvbuff == sendbuff + rank * recvcount;
//    other overlaps are refused); f32, f64, bf16 (summed pairwise in float, rounded to bf16 after
//    every addition, as NCCL's ring does), i8/u8/i32/u32/i64/u64; Sum, and Avg as NCCL computes it
//    (floating types: every input pre-multiplied by 1/nranks rounded to the type, then summed;
//    integers: sum, then divided). Buffers must lie in device allocations (cudaMalloc). Every
//    collective's kind, count, type, op, root and sequence number are compared across the ranks, and
//    a mismatch (NCCL: a hang or garbage) ends the job with a message.
//  - stream order: a collective on a default stream completes before the call returns (as the
//    emulator's kernels do); one on a created stream is posted (MPI non-blocking collective on
//    snapshots of its inputs) and completes when the stream's work must be done (simt_cuda.h:
//    cudaStreamWaitEvent on an event recorded after it, stream or device synchronisation). Until then
//    its output is filled with 0xff bytes (NaN in every float type), so a read before the wait shows,
//    and at completion the job ends with a message when its output was written, its input changed
//    or either freed meanwhile. A collective touching a buffer that one in flight on another stream
//    still uses (no event between them) ends the job too. ncclGroupStart/End defer the group's
//    collectives to ncclGroupEnd, with their outputs poisoned until then.
// What it cannot show: real asynchronous progress and timing (MPI progresses only inside MPI calls,
// so overlap is not measured), GPU memory and its faults, NVLink/InfiniBand transports, NCCL's
// algorithms and their summation orders (tests comparing floating sums exactly need exact inputs),
// hangs from different communicators' operations submitted in different orders on different ranks
// (real NCCL kernels can deadlock there; MPI's non-blocking collectives do not).
#include <mpi.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "nccl.h"

struct ncclComm {
  MPI_Comm mpi = MPI_COMM_NULL;
  int rank = 0, nranks = 1, device = 0;
  uint64_t seq = 0;  // collectives started, to compare across ranks
  bool aborted = false;
  ncclResult_t async_error = ncclSuccess;
};

namespace {

const char kMagic[16] = "simt-fake-nccl";
thread_local std::string g_last_error;
thread_local int g_group_depth = 0;

ncclResult_t error(ncclResult_t rc, const std::string& why) {
  g_last_error = "fake nccl (simt): " + why;
  std::fprintf(stderr, "%s\n", g_last_error.c_str());
  return rc;
}

[[noreturn]] void die(const ncclComm* c, const std::string& why) {
  std::fprintf(stderr, "fake nccl (simt), rank %d/%d: %s\n", c ? c->rank : -1, c ? c->nranks : 0, why.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 3);
  std::abort();
}

bool mpi_ready() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}

size_t type_size(ncclDataType_t t) {
  switch (t) {
    case ncclInt8: case ncclUint8: return 1;
    case ncclBfloat16: return 2;
    case ncclInt32: case ncclUint32: case ncclFloat32: return 4;
    case ncclInt64: case ncclUint64: case ncclFloat64: return 8;
    default: return 0;  // f16 and fp8: not emulated
  }
}
bool is_float(ncclDataType_t t) { return t == ncclFloat32 || t == ncclFloat64 || t == ncclBfloat16; }
MPI_Datatype mpi_type(ncclDataType_t t) {
  switch (t) {
    case ncclInt8: return MPI_INT8_T;
    case ncclUint8: return MPI_UINT8_T;
    case ncclInt32: return MPI_INT32_T;
    case ncclUint32: return MPI_UINT32_T;
    case ncclInt64: return MPI_INT64_T;
    case ncclUint64: return MPI_UINT64_T;
    case ncclFloat32: return MPI_FLOAT;
    case ncclFloat64: return MPI_DOUBLE;
    default: return MPI_UINT16_T;  // bf16: bits, summed by bf16_sum_op()
  }
}

float bf16_to_float(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t float_to_bf16(float f) {  // round to nearest even; NaN stays NaN
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const uint16_t* a = static_cast<const uint16_t*>(in);
  uint16_t* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = float_to_bf16(bf16_to_float(a[i]) + bf16_to_float(b[i]));
}
MPI_Op bf16_sum_op() {
  static MPI_Op op = [] {
    MPI_Op o;
    MPI_Op_create(&bf16_sum, /*commute=*/1, &o);
    return o;
  }();
  return op;
}

// NCCL's Avg of floating types: each input times 1/nranks (rounded to the type) before the sum.
void premultiply(std::vector<char>& buf, ncclDataType_t t, int n) {
  size_t count = buf.size() / type_size(t);
  if (t == ncclFloat32) {
    float s = float(1.0 / n), *p = reinterpret_cast<float*>(buf.data());
    for (size_t i = 0; i < count; ++i) p[i] *= s;
  } else if (t == ncclFloat64) {
    double s = 1.0 / n, *p = reinterpret_cast<double*>(buf.data());
    for (size_t i = 0; i < count; ++i) p[i] *= s;
  } else {
    float s = bf16_to_float(float_to_bf16(float(1.0 / n)));
    uint16_t* p = reinterpret_cast<uint16_t*>(buf.data());
    for (size_t i = 0; i < count; ++i) p[i] = float_to_bf16(bf16_to_float(p[i]) * s);
  }
}
// Integers' Avg: the sum divided (NCCL's SumPostDiv).
void postdivide(std::vector<char>& buf, ncclDataType_t t, int n) {
  size_t count = buf.size() / type_size(t);
  auto div = [&](auto* p) {
    for (size_t i = 0; i < count; ++i) p[i] /= decltype(+p[i])(n);
  };
  switch (t) {
    case ncclInt8: div(reinterpret_cast<int8_t*>(buf.data())); break;
    case ncclUint8: div(reinterpret_cast<uint8_t*>(buf.data())); break;
    case ncclInt32: div(reinterpret_cast<int32_t*>(buf.data())); break;
    case ncclUint32: div(reinterpret_cast<uint32_t*>(buf.data())); break;
    case ncclInt64: div(reinterpret_cast<int64_t*>(buf.data())); break;
    default: div(reinterpret_cast<uint64_t*>(buf.data())); break;
  }
}

enum Kind : int64_t { kAllReduce = 1, kBroadcast, kReduce, kAllGather, kReduceScatter };
const char* kind_name(int64_t k) {
  static const char* names[] = {"?", "ncclAllReduce", "ncclBroadcast", "ncclReduce", "ncclAllGather", "ncclReduceScatter"};
  return k >= 1 && k <= 5 ? names[k] : "?";
}

struct Range {
  const char* p = nullptr;
  size_t n = 0;
  bool overlaps(const Range& o) const { return n && o.n && p < o.p + o.n && o.p < p + n; }
};

// One collective: its arguments, snapshots and MPI requests, from start to completion.
struct Op {
  ncclComm* comm = nullptr;
  Kind kind = kAllReduce;
  const char* send = nullptr;
  char* recv = nullptr;
  size_t count = 0;  // NCCL's count argument (sendcount of all-gather, recvcount of reduce-scatter)
  ncclDataType_t type = ncclFloat32;
  ncclRedOp_t red = ncclSum;
  int root = 0;
  cudaStream_t stream = nullptr;
  Range in, out;  // what it reads and writes in device memory (out empty on a reduce's non-root)
  std::vector<char> in_copy, work, result;  // the input as called, what MPI sends, what it receives
  int64_t sig[6] = {};
  std::vector<int64_t> sigs;
  MPI_Request req[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
  bool started = false;
  std::string name() const { return kind_name(kind); }
};

// Collectives posted on created streams and not completed yet (their buffers are in use).
std::vector<Op*>& in_flight() {
  static std::vector<Op*> v;
  return v;
}
std::vector<std::shared_ptr<Op>>& group_ops() {
  static std::vector<std::shared_ptr<Op>> v;
  return v;
}

void complete(const std::shared_ptr<Op>& op) {
  ncclComm* c = op->comm;
  auto& fl = in_flight();
  for (size_t i = 0; i < fl.size(); ++i)
    if (fl[i] == op.get()) {
      fl.erase(fl.begin() + long(i));
      break;
    }
  if (c->aborted) return;
  MPI_Wait(&op->req[0], MPI_STATUS_IGNORE);
  for (int r = 0; r < c->nranks; ++r) {
    const int64_t* s = &op->sigs[size_t(r) * 6];
    static const char* fields[] = {"collective", "count", "datatype", "reduction", "root", "sequence number"};
    for (int k = 0; k < 6; ++k)
      if (s[k] != op->sig[k])
        die(c, op->name() + " #" + std::to_string(op->sig[5]) + ": rank " + std::to_string(r) + " called " +
                   kind_name(s[0]) + " #" + std::to_string(s[5]) + " with another " + fields[k] + " (" +
                   std::to_string(s[k]) + " there, " + std::to_string(op->sig[k]) +
                   " here): every rank must call the same collectives in the same order with matching arguments");
  }
  int rc = MPI_Wait(&op->req[1], MPI_STATUS_IGNORE);
  if (rc != MPI_SUCCESS) die(c, op->name() + ": MPI error " + std::to_string(rc));
  // The buffers were not to be touched while the collective was in flight.
  if (op->out.n && !simt::is_device_range(op->out.p, op->out.n))
    die(c, op->name() + ": its output buffer was freed before the collective completed");
  if (op->in.n && !simt::is_device_range(op->in.p, op->in.n))
    die(c, op->name() + ": its input buffer was freed before the collective completed");
  for (size_t i = 0; i < op->out.n; ++i)
    if (static_cast<unsigned char>(op->out.p[i]) != 0xff)
      die(c, op->name() + ": its output buffer was written (byte " + std::to_string(i) + " of " +
                 std::to_string(op->out.n) + ") while the collective was in flight (no wait on its stream)");
  if (op->in.n && !op->in.overlaps(op->out) && std::memcmp(op->in.p, op->in_copy.data(), op->in.n) != 0)
    die(c, op->name() + ": its input buffer changed while the collective was in flight (no wait on its stream)");
  if (op->red == ncclAvg && !is_float(op->type)) postdivide(op->result, op->type, c->nranks);
  if (op->out.n) std::memcpy(op->recv, op->result.data(), op->out.n);
}

void post(const std::shared_ptr<Op>& op) {
  ncclComm* c = op->comm;
  const int n = c->nranks, count = int(op->count);
  MPI_Iallgather(op->sig, 6, MPI_INT64_T, op->sigs.data(), 6, MPI_INT64_T, c->mpi, &op->req[0]);
  const bool reduce = op->kind == kAllReduce || op->kind == kReduce || op->kind == kReduceScatter;
  op->work = op->in_copy;  // in_copy stays as it was, for the check at completion
  if (reduce && op->red == ncclAvg && is_float(op->type)) premultiply(op->work, op->type, n);
  MPI_Datatype ty = mpi_type(op->type);
  MPI_Op mop = op->type == ncclBfloat16 ? bf16_sum_op() : MPI_SUM;
  char* in = op->work.data();
  char* res = op->result.data();
  switch (op->kind) {
    case kAllReduce: MPI_Iallreduce(in, res, count, ty, mop, c->mpi, &op->req[1]); break;
    case kReduce: MPI_Ireduce(in, res, count, ty, mop, op->root, c->mpi, &op->req[1]); break;
    case kReduceScatter: MPI_Ireduce_scatter_block(in, res, count, ty, mop, c->mpi, &op->req[1]); break;
    case kAllGather: MPI_Iallgather(in, count, ty, res, count, ty, c->mpi, &op->req[1]); break;
    case kBroadcast:
      if (c->rank == op->root && count) std::memcpy(res, in, op->result.size());
      MPI_Ibcast(res, count, ty, op->root, c->mpi, &op->req[1]);
      break;
  }
  op->started = true;
  if (!simt::is_default_stream(op->stream)) in_flight().push_back(op.get());
  simt::stream_enqueue(op->stream, [op] { complete(op); });
}

ncclResult_t start(ncclComm* c, Kind kind, const void* send, void* recv, size_t count, ncclDataType_t type,
                   ncclRedOp_t red, int root, cudaStream_t stream) {
  auto op = std::make_shared<Op>();
  std::string name = kind_name(kind);
  if (!c) return error(ncclInvalidArgument, name + ": null communicator");
  if (c->aborted) return error(ncclInvalidUsage, name + ": the communicator was aborted");
  size_t es = type_size(type);
  if (!es) return error(ncclInvalidArgument, name + ": datatype " + std::to_string(int(type)) + " not emulated");
  const bool reduce = kind == kAllReduce || kind == kReduce || kind == kReduceScatter;
  if (reduce && red != ncclSum && red != ncclAvg)
    return error(ncclInvalidArgument, name + ": reduction " + std::to_string(int(red)) + " not emulated (sum, avg)");
  if ((kind == kBroadcast || kind == kReduce) && (root < 0 || root >= c->nranks))
    return error(ncclInvalidArgument, name + ": root " + std::to_string(root) + " outside 0 .. " +
                                          std::to_string(c->nranks - 1));
  if (!simt::stream_exists(stream)) return error(ncclInvalidArgument, name + ": unknown or destroyed stream");
  const size_t n = size_t(c->nranks), chunk = count * es;
  if (count * n > size_t(INT32_MAX)) return error(ncclInvalidArgument, name + ": count too large for the stand-in");
  op->comm = c;
  op->kind = kind;
  op->send = static_cast<const char*>(send);
  op->recv = static_cast<char*>(recv);
  op->count = count;
  op->type = type;
  op->red = reduce ? red : ncclSum;
  op->root = (kind == kBroadcast || kind == kReduce) ? root : 0;
  op->stream = stream;
  const bool is_root = c->rank == op->root;
  switch (kind) {
    case kAllReduce: op->in = {op->send, chunk}; op->out = {op->recv, chunk}; break;
    case kReduce: op->in = {op->send, chunk}; op->out = {op->recv, is_root ? chunk : 0}; break;
    case kBroadcast: op->in = {op->send, is_root ? chunk : 0}; op->out = {op->recv, chunk}; break;
    case kAllGather: op->in = {op->send, chunk}; op->out = {op->recv, chunk * n}; break;
    case kReduceScatter: op->in = {op->send, chunk * n}; op->out = {op->recv, chunk}; break;
  }
  // NCCL's buffers are device memory; overlapping input and output only as its in-place forms.
  for (const Range* r : {&op->in, &op->out})
    if (r->n && !simt::is_device_range(r->p, r->n))
      return error(ncclInvalidArgument, name + ": " + (r == &op->in ? "sendbuff" : "recvbuff") + " (" +
                                            std::to_string(r->n) + " bytes) is not inside a device allocation");
  if (op->in.overlaps(op->out)) {
    bool in_place = false;
    if (kind == kAllGather) in_place = op->send == op->recv + size_t(c->rank) * chunk;
    else if (kind == kReduceScatter) in_place = op->recv == op->send + size_t(c->rank) * chunk;
    else in_place = op->send == op->recv;
    if (!in_place)
      return error(ncclInvalidArgument, name + ": sendbuff and recvbuff overlap other than in NCCL's in-place form");
  }
  // A buffer still in use by a collective in flight on another stream: a missing event wait. On the
  // same stream the earlier one comes first (completes now).
  for (Op* f : std::vector<Op*>(in_flight())) {
    const bool clash = op->in.overlaps(f->out) || op->out.overlaps(f->out) || op->out.overlaps(f->in);
    if (!clash) continue;
    if (f->stream != stream)
      die(c, name + " on stream " + std::to_string(uintptr_t(stream)) + " uses a buffer that " + f->name() +
                 " still has in flight on stream " + std::to_string(uintptr_t(f->stream)) +
                 " (no event orders them)");
    simt::stream_before_work(stream);
    break;
  }
  op->in_copy.assign(op->in.p, op->in.p + op->in.n);
  op->result.assign(kind == kAllGather ? chunk * n : chunk, 0);
  if (op->out.n) std::memset(op->recv, 0xff, op->out.n);  // until it completes
  op->sig[0] = kind;
  op->sig[1] = int64_t(count);
  op->sig[2] = type;
  op->sig[3] = op->red;
  op->sig[4] = op->root;
  op->sig[5] = int64_t(++c->seq);
  op->sigs.assign(n * 6, 0);
  if (g_group_depth > 0) {
    group_ops().push_back(op);
    return ncclSuccess;
  }
  post(op);
  return ncclSuccess;
}

}  // namespace

extern "C" {

ncclResult_t ncclGetVersion(int* version) {
  *version = NCCL_VERSION_CODE;
  return ncclSuccess;
}

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
  if (!id) return error(ncclInvalidArgument, "ncclGetUniqueId: null pointer");
  std::memset(id->internal, 0, sizeof id->internal);
  std::memcpy(id->internal, kMagic, sizeof kMagic);
  static uint64_t counter = 0;
  std::random_device rd;
  uint64_t words[4] = {uint64_t(getpid()), ++counter, (uint64_t(rd()) << 32) | rd(), (uint64_t(rd()) << 32) | rd()};
  std::memcpy(id->internal + sizeof kMagic, words, sizeof words);
  return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* out, int nranks, ncclUniqueId id, int rank) {
  if (!out) return error(ncclInvalidArgument, "ncclCommInitRank: null pointer");
  *out = nullptr;
  if (!mpi_ready()) return error(ncclInvalidUsage, "ncclCommInitRank: the stand-in needs MPI initialised (not finalised)");
  if (std::memcmp(id.internal, kMagic, sizeof kMagic) != 0)
    return error(ncclInvalidArgument, "ncclCommInitRank: the id does not come from ncclGetUniqueId");
  if (nranks < 1 || rank < 0 || rank >= nranks)
    return error(ncclInvalidArgument, "ncclCommInitRank: rank " + std::to_string(rank) + " of " + std::to_string(nranks));
  // The ranks that passed the same id form the communicator (a collective over MPI_COMM_WORLD).
  uint32_t h = 2166136261u;
  for (char ch : id.internal) h = (h ^ uint8_t(ch)) * 16777619u;
  auto c = std::make_unique<ncclComm>();
  if (MPI_Comm_split(MPI_COMM_WORLD, int(h & 0x3fffffff), rank, &c->mpi) != MPI_SUCCESS)
    return error(ncclSystemError, "ncclCommInitRank: MPI_Comm_split failed");
  MPI_Comm_set_errhandler(c->mpi, MPI_ERRORS_RETURN);
  int size = 0, me = 0;
  MPI_Comm_size(c->mpi, &size);
  MPI_Comm_rank(c->mpi, &me);
  c->rank = rank;
  c->nranks = nranks;
  c->device = simt::current_device();
  // Every member's id, rank, host and device: the same id, ranks 0 .. nranks-1, no GPU used twice.
  struct Member {
    ncclUniqueId id;
    int rank, device;
    char host[64];
  } mine{};
  mine.id = id;
  mine.rank = rank;
  mine.device = c->device;
  gethostname(mine.host, sizeof mine.host - 1);
  std::vector<Member> all(static_cast<size_t>(size));
  MPI_Allgather(&mine, int(sizeof mine), MPI_BYTE, all.data(), int(sizeof mine), MPI_BYTE, c->mpi);
  std::string why;
  if (size != nranks)
    why = std::to_string(size) + " rank(s) passed this ncclUniqueId, nranks says " + std::to_string(nranks) +
          " (ranks given different ids?)";
  for (int r = 0; r < size && why.empty(); ++r) {
    if (std::memcmp(all[size_t(r)].id.internal, id.internal, sizeof id.internal) != 0) why = "ranks passed different ids";
    else if (all[size_t(r)].rank != r) why = "rank " + std::to_string(all[size_t(r)].rank) + " given twice or missing";
    for (int q = 0; q < r && why.empty(); ++q)
      if (std::strcmp(all[size_t(q)].host, all[size_t(r)].host) == 0 && all[size_t(q)].device == all[size_t(r)].device)
        why = "Duplicate GPU detected: ranks " + std::to_string(q) + " and " + std::to_string(r) + " both use device " +
              std::to_string(all[size_t(r)].device) + " of host " + all[size_t(r)].host;
  }
  if (!why.empty()) {
    MPI_Comm_free(&c->mpi);
    return error(ncclInvalidUsage, "ncclCommInitRank (rank " + std::to_string(rank) + "): " + why);
  }
  (void)me;
  *out = c.release();
  return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t c) {
  if (!c) return ncclSuccess;
  // NCCL finalises first: collectives in flight complete.
  simt::complete_all_streams();
  if (c->mpi != MPI_COMM_NULL && mpi_ready()) MPI_Comm_free(&c->mpi);
  delete c;
  return ncclSuccess;
}

ncclResult_t ncclCommAbort(ncclComm_t c) {
  if (!c) return ncclSuccess;
  c->aborted = true;  // collectives in flight are dropped; the object stays (their completions refer to it)
  return ncclSuccess;
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t c, ncclResult_t* e) {
  if (!c || !e) return error(ncclInvalidArgument, "ncclCommGetAsyncError: null pointer");
  *e = c->async_error;
  return ncclSuccess;
}
ncclResult_t ncclCommCount(const ncclComm_t c, int* count) {
  if (!c || !count) return error(ncclInvalidArgument, "ncclCommCount: null pointer");
  *count = c->nranks;
  return ncclSuccess;
}
ncclResult_t ncclCommUserRank(const ncclComm_t c, int* rank) {
  if (!c || !rank) return error(ncclInvalidArgument, "ncclCommUserRank: null pointer");
  *rank = c->rank;
  return ncclSuccess;
}

const char* ncclGetErrorString(ncclResult_t r) {
  switch (r) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
    case ncclSystemError: return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
    case ncclInternalError: return "internal error - please report this issue to the NCCL developers";
    case ncclInvalidArgument: return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    case ncclInvalidUsage: return "invalid usage (run with NCCL_DEBUG=WARN for details)";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
    default: return "unknown result code";
  }
}
const char* ncclGetLastError(ncclComm_t) { return g_last_error.c_str(); }

ncclResult_t ncclAllReduce(const void* s, void* r, size_t count, ncclDataType_t t, ncclRedOp_t op, ncclComm_t c,
                           cudaStream_t st) {
  return start(c, kAllReduce, s, r, count, t, op, 0, st);
}
ncclResult_t ncclBroadcast(const void* s, void* r, size_t count, ncclDataType_t t, int root, ncclComm_t c,
                           cudaStream_t st) {
  return start(c, kBroadcast, s, r, count, t, ncclSum, root, st);
}
ncclResult_t ncclReduce(const void* s, void* r, size_t count, ncclDataType_t t, ncclRedOp_t op, int root, ncclComm_t c,
                        cudaStream_t st) {
  return start(c, kReduce, s, r, count, t, op, root, st);
}
ncclResult_t ncclAllGather(const void* s, void* r, size_t sendcount, ncclDataType_t t, ncclComm_t c, cudaStream_t st) {
  return start(c, kAllGather, s, r, sendcount, t, ncclSum, 0, st);
}
ncclResult_t ncclReduceScatter(const void* s, void* r, size_t recvcount, ncclDataType_t t, ncclRedOp_t op,
                               ncclComm_t c, cudaStream_t st) {
  return start(c, kReduceScatter, s, r, recvcount, t, op, 0, st);
}

ncclResult_t ncclGroupStart() {
  ++g_group_depth;
  return ncclSuccess;
}
ncclResult_t ncclGroupEnd() {
  if (g_group_depth <= 0) return error(ncclInvalidUsage, "ncclGroupEnd without ncclGroupStart");
  if (--g_group_depth > 0) return ncclSuccess;
  std::vector<std::shared_ptr<Op>> ops;
  ops.swap(group_ops());
  for (auto& op : ops) post(op);
  return ncclSuccess;
}

}  // extern "C"
