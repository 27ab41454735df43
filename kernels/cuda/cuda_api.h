#pragma once
// CUDA-only controls that are not part of the Backend interface. Plain C++ (no CUDA headers), so
// any file may include it inside `#ifdef PE_WITH_CUDA`. Everything here acts on the current device.
#include <cstdint>

namespace pe::cuda {

// Caching allocator statistics, in bytes of the size classes handed out (a request is rounded up
// to its class: at most 1/8 more than asked, at least 512 bytes).
struct MemoryStats {
  int64_t allocated_bytes = 0;       // held by live tensors and scratch buffers now
  int64_t peak_allocated_bytes = 0;  // maximum of allocated_bytes since start or reset_peak_memory()
  int64_t reserved_bytes = 0;        // obtained from cudaMalloc and not yet returned
  int64_t cached_bytes = 0;          // reserved but free, waiting in the size-class lists
  int64_t num_allocs = 0;            // allocate() calls
  int64_t num_device_mallocs = 0;    // of which needed a cudaMalloc (the rest were served from the cache)
};
MemoryStats memory_stats();
void reset_peak_memory();
// Returns every cached block to the driver (synchronises the device first).
void empty_cache();

// f32 GEMMs may use TF32 tensor cores (10-bit mantissa inputs, fp32 accumulation; ~1e-3 relative
// error). Off by default; the environment variable PE_ALLOW_TF32=1 sets the initial value.
void set_allow_tf32(bool on);
bool allow_tf32();

}  // namespace pe::cuda
