// CPU caching allocator (see cpu_api.h). Blocks are keyed by size class; a freed block waits in its
// class's list until a request of the same class arrives, or until the cap forces it back to the
// system. Thread-safe (one mutex: tensors are allocated from the main thread, rarely from workers).
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/cpu_api.h"

namespace pe::cpu {

namespace {

// 64 bytes minimum, then 4 classes per power of two (waste below 1/4).
size_t size_class(size_t n) {
  if (n <= 64) return 64;
  int e = 63 - __builtin_clzll(uint64_t(n - 1));  // 2^e < n <= 2^(e+1), e >= 6
  size_t step = size_t(1) << (e - 2);
  return (n + step - 1) / step * step;
}

int64_t default_cache_limit() {
  if (const char* env = std::getenv("PE_CPU_CACHE_MB")) return int64_t(std::atoll(env)) << 20;
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return int64_t(1) << 30;
  return int64_t(pages) * int64_t(page) / 4;
}

class CachingAllocator {
 public:
  void* allocate(size_t nbytes) {
    size_t cls = size_class(nbytes);
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.num_allocs;
      add_allocated(cls);
      auto it = free_.find(cls);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        stats_.cached_bytes -= int64_t(cls);
        return p;
      }
      ++stats_.num_system_allocs;
    }
    void* p = std::aligned_alloc(64, cls);
    if (!p) {  // give the cache back and try once more
      empty_cache();
      p = std::aligned_alloc(64, cls);
    }
    if (!p) {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.allocated_bytes -= int64_t(cls);
      PE_FAIL("cpu allocate: out of memory for ", nbytes, " bytes (", stats_.allocated_bytes >> 20,
              " MiB held by live tensors)");
    }
    return p;
  }

  void deallocate(void* p, size_t nbytes) {
    if (!p) return;
    size_t cls = size_class(nbytes);
    {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.allocated_bytes -= int64_t(cls);
      if (stats_.cached_bytes + int64_t(cls) <= limit_) {
        free_[cls].push_back(p);
        stats_.cached_bytes += int64_t(cls);
        return;
      }
    }
    std::free(p);
  }

  void empty_cache() {
    std::unordered_map<size_t, std::vector<void*>> blocks;
    {
      std::lock_guard<std::mutex> lock(mu_);
      blocks.swap(free_);
      stats_.cached_bytes = 0;
    }
    for (auto& kv : blocks)
      for (void* p : kv.second) std::free(p);
  }

  int64_t set_limit(int64_t bytes) {
    int64_t old;
    {
      std::lock_guard<std::mutex> lock(mu_);
      old = limit_;
      limit_ = bytes < 0 ? 0 : bytes;
    }
    if (bytes < old) empty_cache();
    return old;
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
  void add_allocated(size_t cls) {
    stats_.allocated_bytes += int64_t(cls);
    if (stats_.allocated_bytes > stats_.peak_allocated_bytes) stats_.peak_allocated_bytes = stats_.allocated_bytes;
  }

  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  MemoryStats stats_;
  int64_t limit_ = default_cache_limit();
};

// Never destroyed: tensors held by static objects may be freed after main returns.
CachingAllocator& allocator() {
  static CachingAllocator* a = new CachingAllocator();
  return *a;
}

}  // namespace

// PE_CPU_POISON=1 fills every new block with 0xFF bytes (NaN in every float dtype), so code that
// reads memory it never wrote shows up in tests instead of depending on the allocator's history.
void* cpu_allocate(size_t nbytes) {
  if (!nbytes) return nullptr;
  static const bool poison = [] {
    const char* e = std::getenv("PE_CPU_POISON");
    return e && std::string(e) == "1";
  }();
  void* p = allocator().allocate(nbytes);
  if (poison) std::memset(p, 0xFF, nbytes);
  return p;
}
void cpu_deallocate(void* p, size_t nbytes) { allocator().deallocate(p, nbytes); }

MemoryStats memory_stats() { return allocator().stats(); }
void reset_peak_memory() { allocator().reset_peak(); }
void empty_cache() { allocator().empty_cache(); }
int64_t set_cache_limit(int64_t bytes) { return allocator().set_limit(bytes); }

}  // namespace pe::cpu
