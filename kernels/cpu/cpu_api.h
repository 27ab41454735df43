#pragma once
// CPU-only controls that are not part of the Backend interface.
#include <cstdint>

#include "kernels/backend.h"

namespace pe::cpu {

// The CPU caching allocator (kernels/cpu/allocator.cpp). A training step allocates and frees the
// same activation sizes every step; through malloc, each large block is mmap-ed, page-faulted and
// zeroed by the kernel, then unmapped again. Freed blocks are instead kept in size-class free lists
// (at most 1/4 more than asked, 64-byte aligned) and handed out again, up to a cap on the bytes kept
// (PE_CPU_CACHE_MB, default a quarter of physical memory; 0 disables caching).
struct MemoryStats {
  int64_t allocated_bytes = 0;       // held by live tensors now (size classes)
  int64_t peak_allocated_bytes = 0;  // maximum of allocated_bytes since start or reset_peak_memory()
  int64_t cached_bytes = 0;          // free blocks kept for reuse
  int64_t num_allocs = 0;            // allocate() calls
  int64_t num_system_allocs = 0;     // of which went to the system allocator (the rest were reused)
};
MemoryStats memory_stats();
void reset_peak_memory();
// Returns every cached block to the system.
void empty_cache();
// Bytes of free blocks kept at most (0: none, every free goes to the system). Returns the old cap.
int64_t set_cache_limit(int64_t bytes);

// Column reduction of a contiguous x viewed as [rows, cols] into out [cols] (contiguous, x's dtype):
// what a reduction over leading dims is (the bias and broadcast gradients), without the transposed
// copy that reduce_rows needs. Sum and mean accumulate in double, like reduce_rows.
void reduce_leading(ReduceOp op, const Tensor& x, int64_t rows, int64_t cols, const Tensor& out);

// Attention on the CPU runs blocked Eigen products by default; true selects the plain per-row loops
// (the reference the CUDA kernels were written against; also PE_FUSED_SIMPLE=1). Returns the old value.
bool set_simple_attention(bool on);

// f32 attention at head dims 16 / 24 / 32 computes its two products with the register kernels of
// kernels/cpu/attn_small.h (on AVX2 + FMA builds); false sends them to the GEMM library as for other
// head dims (also PE_ATTN_SMALL=0): for comparing the two side by side. Returns the old value.
bool set_small_head_attention(bool on);

// Which library computes f32 GEMMs (matmul, matmul_bias) on the CPU. oneDNN's sgemm (Debian
// libdnnl, the library PyTorch's CPU path also uses) is 1.5-1.7x Eigen's at the training step's
// shapes (K = 64..512); Eigen stays the fallback, computes every other dtype (f64 is the reference),
// and is selected by PE_CPU_GEMM=eigen. Builds without oneDNN (cmake -DPE_ONEDNN=OFF) use Eigen.
enum class GemmLibrary : uint8_t { Eigen, OneDnn };
bool gemm_library_available(GemmLibrary lib);
// Returns the old choice; asking for an unavailable library throws.
GemmLibrary set_gemm_library(GemmLibrary lib);
GemmLibrary gemm_library();
const char* gemm_library_name(GemmLibrary lib);

}  // namespace pe::cpu
