// The CPU caching allocator (kernels/cpu/cpu_api.h): freed blocks are handed out again, a
// repeated training step reaches a steady state without new system allocations, the cap is
// honoured, and everything is returned (ASan's leak check runs these in the sanitizer build).
#include <doctest/doctest.h>

#include "autograd/ops.h"
#include "kernels/cpu/cpu_api.h"

using namespace pe;

TEST_SUITE("unit") {
  TEST_CASE("CPU allocator: a freed block is reused for the next request of its size class") {
    cpu::empty_cache();
    cpu::MemoryStats s0 = cpu::memory_stats();
    const void* first = nullptr;
    {
      Tensor a = Tensor::empty({1000, 333}, DType::F32);
      first = a.raw_data();
    }
    cpu::MemoryStats s1 = cpu::memory_stats();
    CHECK(s1.num_system_allocs == s0.num_system_allocs + 1);
    CHECK(s1.allocated_bytes == s0.allocated_bytes);
    CHECK(s1.cached_bytes >= 1000 * 333 * 4);
    {
      Tensor b = Tensor::empty({333, 1000}, DType::F32);  // same bytes: same block
      CHECK(b.raw_data() == first);
      Tensor c = Tensor::empty({1000 * 333 + 7}, DType::F32);  // within 1/4 above: same class, but the block is taken
      CHECK(c.raw_data() != first);
    }
    cpu::MemoryStats s2 = cpu::memory_stats();
    CHECK(s2.num_system_allocs == s1.num_system_allocs + 1);
    CHECK(s2.peak_allocated_bytes >= 2 * 1000 * 333 * 4);
    cpu::empty_cache();
    CHECK(cpu::memory_stats().cached_bytes == 0);
  }

  TEST_CASE("CPU allocator: a repeated training step makes no new system allocations") {
    Generator gen(3);
    Tensor w = randn({64, 48}, gen).requires_grad_(true);
    Tensor x = randn({200, 48}, gen);
    auto step = [&] {
      Tensor loss = sum(gelu(linear(x, w)));
      loss.backward();
      w.zero_grad();
    };
    step();
    step();
    int64_t before = cpu::memory_stats().num_system_allocs;
    for (int i = 0; i < 5; ++i) step();
    CHECK(cpu::memory_stats().num_system_allocs == before);
  }

  TEST_CASE("CPU allocator: the cap bounds what is kept; 0 disables caching") {
    cpu::empty_cache();
    int64_t old = cpu::set_cache_limit(0);
    { Tensor a = Tensor::empty({4096}, DType::F64); }
    CHECK(cpu::memory_stats().cached_bytes == 0);
    cpu::set_cache_limit(1 << 20);
    { Tensor a = Tensor::empty({1 << 17}, DType::F64); }  // exactly 1 MiB: kept
    { Tensor b = Tensor::empty({1 << 10}, DType::F64); }  // would exceed the cap: returned
    CHECK(cpu::memory_stats().cached_bytes == (1 << 20));
    cpu::set_cache_limit(old);
    cpu::empty_cache();
    CHECK(cpu::memory_stats().cached_bytes == 0);
  }
}
