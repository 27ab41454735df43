// Caching device allocator. cudaMalloc/cudaFree synchronise the device and cost tens of
// microseconds, so freed blocks are kept in per-size-class free lists and handed out again.
// All kernels run on one stream (cuda_common.cuh: stream()), so a block freed by one op can be
// reused by the next op at once: the GPU runs the new user after every earlier one.
#include <cstdio>
#include <map>
#include <string>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/cuda_api.h"
#include "kernels/cuda/cuda_common.cuh"

namespace pe::cuda {

namespace {

// Size classes: 512 bytes minimum, then 8 classes per power of two (waste below 1/8).
size_t size_class(size_t n) {
  if (n <= 512) return 512;
  int e = 63 - __builtin_clzll(uint64_t(n - 1));  // 2^e < n <= 2^(e+1)
  size_t step = size_t(1) << (e - 3);  // n > 512, so e >= 9
  step = step < 512 ? 512 : step;
  return (n + step - 1) / step * step;
}

std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / double(size_t(1) << 30));
  return buf;
}

class CachingAllocator {
 public:
  void* allocate(size_t nbytes) {
    size_t cls = size_class(nbytes);
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.num_allocs;
    void* p = nullptr;
    auto it = free_.find(cls);
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      stats_.cached_bytes -= int64_t(cls);
    } else {
      p = device_malloc(cls, nbytes);
    }
    live_[p] = cls;
    stats_.allocated_bytes += int64_t(cls);
    if (stats_.allocated_bytes > stats_.peak_allocated_bytes) stats_.peak_allocated_bytes = stats_.allocated_bytes;
    return p;
  }

  void free(void* p) {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(p);
    PE_CHECK(it != live_.end(), "cuda deallocate: pointer ", p, " was not allocated by the CUDA caching allocator");
    size_t cls = it->second;
    live_.erase(it);
    free_[cls].push_back(p);
    stats_.allocated_bytes -= int64_t(cls);
    stats_.cached_bytes += int64_t(cls);
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    release_cached_locked();
  }

  MemoryStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }
  void reset_peak() {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.peak_allocated_bytes = stats_.allocated_bytes;
  }

 private:
  void* device_malloc(size_t cls, size_t requested) {
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, cls);
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();  // clear, then retry with the cache returned to the driver
      release_cached_locked();
      e = cudaMalloc(&p, cls);
    }
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      bool info = cudaMemGetInfo(&free_b, &total_b) == cudaSuccess;
      if (!info) (void)cudaGetLastError();
      PE_FAIL("cuda allocate: out of device memory requesting ", requested, " bytes (", gib(double(requested)),
              "); this process holds ", gib(double(stats_.allocated_bytes)), " in tensors (peak ",
              gib(double(stats_.peak_allocated_bytes)), ")",
              info ? std::string("; the device has ") + gib(double(free_b)) + " free of " + gib(double(total_b))
                   : std::string(),
              ". Reduce --batch-size or the sequence lengths, or use --precision bf16");
    }
    PE_CUDA_CHECK(e, "cuda allocate");
    ++stats_.num_device_mallocs;
    stats_.reserved_bytes += int64_t(cls);
    return p;
  }

  void release_cached_locked() {
    if (stats_.cached_bytes == 0) return;
    // Blocks in the free lists may still be read by queued kernels of their last user.
    PE_CUDA_CHECK(cudaDeviceSynchronize(), "cuda empty_cache");
    for (auto& [cls, blocks] : free_) {
      for (void* p : blocks) PE_CUDA_CHECK(cudaFree(p), "cuda empty_cache");
      stats_.reserved_bytes -= int64_t(cls * blocks.size());
      blocks.clear();
    }
    stats_.cached_bytes = 0;
  }

  std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;
  std::unordered_map<void*, size_t> live_;
  MemoryStats stats_;
};

// Never destroyed: tensors with static lifetime may be freed after main returns, and the CUDA
// runtime may already be gone then; the driver reclaims everything at process exit.
CachingAllocator& allocator() {
  static CachingAllocator* a = new CachingAllocator();
  return *a;
}

}  // namespace

void* device_alloc(size_t nbytes) { return allocator().allocate(nbytes); }
void device_free(void* p) { allocator().free(p); }

MemoryStats memory_stats() { return allocator().stats(); }
void reset_peak_memory() { allocator().reset_peak(); }
void empty_cache() { allocator().empty_cache(); }

}  // namespace pe::cuda
