// CudaBackend: registration, device memory, host copies through pinned staging buffers, errors.
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "kernels/cuda/cuda_backend.cuh"

namespace pe {

int cuda_device_count() {
  static const int count = [] {
    int n = 0;
    // No driver or no device is an answer, not an error: CPU-only machines run the same binary.
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    return n;
  }();
  return count;
}

bool cuda_available() { return cuda_device_count() > 0; }

Backend* cuda_backend() {
  static cuda::CudaBackend backend;  // constructing it touches no device
  return &backend;
}

namespace cuda {

// ------------------------------------------------------------------ errors
void throw_cuda_error(int code, const char* code_name, const char* what, const char* op, const char* file, int line) {
  detail::throw_error(file, line, op, ": CUDA error ", code, " (", code_name, ") in ", what);
}

namespace {
bool sync_checks() {
  static const bool on = [] {
    const char* v = std::getenv("PE_CUDA_SYNC");
    return v && *v && std::strcmp(v, "0") != 0;
  }();
  return on;
}

// Pinned host memory that kernels write through its mapped device address: the answer of
// has_nonfinite and the first in-kernel range error, read by the host after a synchronisation.
struct MappedFlags {
  DeviceErrorRecord error;
  int nonfinite;
};
MappedFlags* mapped_host() {
  static MappedFlags* host = [] {
    void* p = nullptr;
    PE_CUDA_CHECK(cudaHostAlloc(&p, sizeof(MappedFlags), cudaHostAllocMapped), "cuda init");
    std::memset(p, 0, sizeof(MappedFlags));
    return static_cast<MappedFlags*>(p);
  }();
  return host;
}
MappedFlags* mapped_device() {
  static MappedFlags* dev = [] {
    void* d = nullptr;
    PE_CUDA_CHECK(cudaHostGetDevicePointer(&d, mapped_host(), 0), "cuda init");
    return static_cast<MappedFlags*>(d);
  }();
  return dev;
}

const char* device_error_op_name(int op) {
  switch (DeviceErrorOp(op)) {
    case DeviceErrorOp::IndexSelect: return "index_select";
    case DeviceErrorOp::IndexAdd: return "index_add";
    case DeviceErrorOp::Gather: return "gather";
    case DeviceErrorOp::ScatterAdd: return "scatter_add";
    default: return "cuda kernel";
  }
}
}  // namespace

void check_launch(const char* op, const char* file, int line) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw_cuda_error(int(e), cudaGetErrorString(e), "kernel launch", op, file, line);
  if (sync_checks()) {
    e = cudaStreamSynchronize(stream());
    if (e != cudaSuccess) throw_cuda_error(int(e), cudaGetErrorString(e), "kernel execution", op, file, line);
    raise_device_errors();
  }
}

namespace {
int* error_claim() {
  static int* claim = [] {
    void* p = nullptr;
    PE_CUDA_CHECK(cudaMalloc(&p, sizeof(int)), "cuda init");
    PE_CUDA_CHECK(cudaMemset(p, 0, sizeof(int)), "cuda init");
    return static_cast<int*>(p);
  }();
  return claim;
}
}  // namespace

ErrorSink error_sink() { return ErrorSink{error_claim(), &mapped_device()->error}; }

void raise_device_errors() {
  volatile DeviceErrorRecord* rec = &mapped_host()->error;
  int op = rec->op;
  if (op == 0) return;
  long long value = rec->value, bound = rec->bound, where = rec->where;
  rec->value = rec->bound = rec->where = 0;
  rec->op = 0;
  PE_CUDA_CHECK(cudaMemsetAsync(error_claim(), 0, sizeof(int), stream()), "cuda error report");
  PE_FAIL(device_error_op_name(op), ": index ", value, " out of range [0, ", bound, ") at element ", where,
          " (found on the GPU; raised at the next synchronisation)");
}

int* nonfinite_flag_host() { return &mapped_host()->nonfinite; }
int* nonfinite_flag_device() { return &mapped_device()->nonfinite; }

int sm_count() {
  static const int n = [] {
    int dev = 0, count = 0;
    PE_CUDA_CHECK(cudaGetDevice(&dev), "cuda init");
    PE_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, dev), "cuda init");
    return count;
  }();
  return n;
}

void check_cuda_tensor(const Tensor& t, const char* op, const char* what) {
  PE_CHECK(t.defined(), op, ": ", what, " is undefined");
  PE_CHECK(t.device().is_cuda(), op, ": ", what, " ", t.str(), " is not on a CUDA device");
}
void check_contiguous(const Tensor& t, const char* op, const char* what) {
  check_cuda_tensor(t, op, what);
  PE_CHECK(t.is_contiguous(), op, ": ", what, " ", t.str(), " must be contiguous");
}
FloatPtr float_ptr(const Tensor& t, const char* op, const char* what) {
  check_contiguous(t, op, what);
  PE_CHECK(is_floating(t.dtype()), op, ": ", what, " ", t.str(), " must be floating point");
  return FloatPtr{t.raw_data(), t.dtype()};
}

// ------------------------------------------------------------------ memory
void* CudaBackend::allocate(size_t nbytes) {
  if (nbytes == 0) return nullptr;
  PE_CHECK(cuda_available(), "cuda allocate: no CUDA device is visible (cuda_available() is false)");
  return device_alloc(nbytes);
}

void CudaBackend::deallocate(void* p, size_t) { device_free(p); }

// Host copies go through two pinned staging buffers, so that copying chunk k into one overlaps the
// DMA of chunk k-1 from the other; each buffer's event says when its last DMA finished.
namespace {
constexpr size_t kStagingBytes = size_t(4) << 20;
struct Staging {
  std::mutex mu;
  void* buf[2] = {nullptr, nullptr};
  cudaEvent_t done[2] = {};
  void init() {
    if (buf[0]) return;
    for (int i = 0; i < 2; ++i) {
      PE_CUDA_CHECK(cudaHostAlloc(&buf[i], kStagingBytes, cudaHostAllocDefault), "cuda staging");
      PE_CUDA_CHECK(cudaEventCreateWithFlags(&done[i], cudaEventDisableTiming), "cuda staging");
    }
  }
};
Staging& staging() {
  static Staging* s = new Staging();  // never destroyed, like the allocator
  return *s;
}
}  // namespace

void CudaBackend::copy_from_host(void* dst, const void* src, size_t nbytes) {
  if (nbytes == 0) return;
  Staging& st = staging();
  std::lock_guard<std::mutex> lock(st.mu);
  st.init();
  const char* s = static_cast<const char*>(src);
  char* d = static_cast<char*>(dst);
  size_t k = 0;
  for (size_t off = 0; off < nbytes; off += kStagingBytes, ++k) {
    size_t len = nbytes - off < kStagingBytes ? nbytes - off : kStagingBytes;
    int b = int(k & 1);
    PE_CUDA_CHECK(cudaEventSynchronize(st.done[b]), "copy_from_host");
    std::memcpy(st.buf[b], s + off, len);
    PE_CUDA_CHECK(cudaMemcpyAsync(d + off, st.buf[b], len, cudaMemcpyHostToDevice, stream()), "copy_from_host");
    PE_CUDA_CHECK(cudaEventRecord(st.done[b], stream()), "copy_from_host");
  }
  // The source is fully read on return; the last DMA runs on in stream order before any later kernel.
}

void CudaBackend::copy_to_host(void* dst, const void* src, size_t nbytes) {
  if (nbytes == 0) return;
  Staging& st = staging();
  std::lock_guard<std::mutex> lock(st.mu);
  st.init();
  const char* s = static_cast<const char*>(src);
  char* d = static_cast<char*>(dst);
  size_t chunks = (nbytes + kStagingBytes - 1) / kStagingBytes;
  auto chunk_len = [&](size_t k) { return k + 1 < chunks ? kStagingBytes : nbytes - k * kStagingBytes; };
  auto issue = [&](size_t k) {
    int b = int(k & 1);
    PE_CUDA_CHECK(cudaEventSynchronize(st.done[b]), "copy_to_host");  // an earlier upload may still read it
    PE_CUDA_CHECK(cudaMemcpyAsync(st.buf[b], s + k * kStagingBytes, chunk_len(k), cudaMemcpyDeviceToHost, stream()),
                  "copy_to_host");
    PE_CUDA_CHECK(cudaEventRecord(st.done[b], stream()), "copy_to_host");
  };
  issue(0);
  for (size_t k = 0; k < chunks; ++k) {
    if (k + 1 < chunks) issue(k + 1);
    int b = int(k & 1);
    PE_CUDA_CHECK(cudaEventSynchronize(st.done[b]), "copy_to_host");
    std::memcpy(d + k * kStagingBytes, st.buf[b], chunk_len(k));
  }
  raise_device_errors();
}

void CudaBackend::synchronize() {
  PE_CUDA_CHECK(cudaStreamSynchronize(stream()), "synchronize");
  raise_device_errors();
}

// ------------------------------------------------------------------ NaN / Inf detection
namespace {
std::mutex& nonfinite_mutex() {
  static std::mutex mu;
  return mu;
}
}  // namespace

bool CudaBackend::any_nonfinite(const std::vector<Tensor>& xs) {
  std::lock_guard<std::mutex> lock(nonfinite_mutex());
  volatile int* flag = nonfinite_flag_host();
  *flag = 0;  // no kernel that writes it is in flight: every call ends with a synchronisation
  for (const Tensor& x : xs) {
    check_cuda_tensor(x, "has_nonfinite", "input");
    if (is_floating(x.dtype()) && x.numel() > 0) launch_nonfinite_scan(x, nonfinite_flag_device());
  }
  PE_CUDA_CHECK(cudaStreamSynchronize(stream()), "has_nonfinite");
  raise_device_errors();
  return *flag != 0;
}

bool CudaBackend::has_nonfinite(const Tensor& x) { return any_nonfinite(std::vector<Tensor>{x}); }

}  // namespace cuda
}  // namespace pe
