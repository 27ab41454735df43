// The SIMT emulator's scheduler and its stand-in CUDA runtime (see simt_cuda.h for what it is and
// what it does not show).
#include <sys/mman.h>
#include <ucontext.h>

#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "simt_cuda.h"

// ------------------------------------------------------------------ context switches
// x86-64: a hand-written switch of the callee-saved registers (no signal-mask system call, unlike
// swapcontext: ~50x faster, which is what makes emulating whole test suites affordable).
// Elsewhere: ucontext.
#if defined(__x86_64__)
#define SIMT_FAST_SWITCH 1
extern "C" void simt_ctx_switch(void** save_sp, void* load_sp);
extern "C" void simt_fiber_start();
asm(R"(
  .text
  .globl simt_ctx_switch
  .type simt_ctx_switch,@function
simt_ctx_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size simt_ctx_switch,.-simt_ctx_switch
)");
#endif

// Bounds of the section holding every static __shared__ array (simt_cuda.h), set by the linker.
extern "C" {
extern unsigned char __start_simt_shared_mem[] __attribute__((weak));
extern unsigned char __stop_simt_shared_mem[] __attribute__((weak));
}

namespace simt {

Thread* g_thread = nullptr;
uint3 g_block_idx{0, 0, 0};
dim3 g_block_dim, g_grid_dim;

namespace {

enum class State { Ready, BlockWait, WarpWait, Done };

struct Fiber {
  ucontext_t ctx;
  void* sp = nullptr;  // saved stack pointer (fast switch)
  Thread t;
  State state = State::Ready;
  char* stack = nullptr;
};

struct Warp {
  unsigned arrived = 0;  // lanes waiting in the current collective
  unsigned mask = 0;     // the collective's member mask (agreed by every lane)
  unsigned gen = 0;      // collectives completed; deposits alternate between two buffers by gen
  unsigned first_lane = 0, lanes = 0;
  unsigned existing = 0;  // lanes that exist (a partial last warp has fewer than 32)
  unsigned done = 0;      // lanes that have exited
  uint64_t slot[2][32];
  uint32_t mma_a[2][32][4];
  uint32_t mma_b[2][32][2];
};

struct Block {
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  unsigned live = 0, at_barrier = 0;
  ucontext_t sched;
  void* sched_sp = nullptr;
  const std::function<void()>* body = nullptr;
  bool fault = false;
  std::string fault_msg;
};

constexpr size_t kStackBytes = size_t(256) << 10;
std::vector<char*>& stack_pool() {
  static std::vector<char*> pool;
  return pool;
}
char* stack_for(size_t i) {
  auto& pool = stack_pool();
  while (pool.size() <= i) {
    void* p = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      std::fprintf(stderr, "simt: cannot map a fiber stack\n");
      std::abort();
    }
    pool.push_back(static_cast<char*>(p));
  }
  return pool[i];
}

Block* g_block = nullptr;
Fiber* g_fiber = nullptr;
const char* g_kernel = "";

std::mutex& launch_mutex() {
  static std::mutex mu;
  return mu;
}

// Last error (returned and cleared by cudaGetLastError) and the pending execution error (returned
// by the next synchronisation, then cleared: the emulator does not poison the context).
cudaError_t g_last_error = cudaSuccess;
cudaError_t g_pending_error = cudaSuccess;
std::string g_error_text;

void set_launch_error(cudaError_t e, const std::string& why) {
  g_last_error = e;
  g_error_text = why;
  std::fprintf(stderr, "simt: %s\n", why.c_str());
}

void to_scheduler() {
#ifdef SIMT_FAST_SWITCH
  simt_ctx_switch(&g_fiber->sp, g_block->sched_sp);
#else
  swapcontext(&g_fiber->ctx, &g_block->sched);
#endif
}
void yield() { to_scheduler(); }

// A kernel bug found inside a fiber: record it and never resume this fiber.
[[noreturn]] void fault(const std::string& msg) {
  if (!g_block->fault) {
    g_block->fault = true;
    g_block->fault_msg = msg;
  }
  g_fiber->state = State::Done;
  to_scheduler();
  std::abort();  // never resumed
}

void release_block_barrier() {
  for (Fiber& f : g_block->fibers)
    if (f.state == State::BlockWait) f.state = State::Ready;
  g_block->at_barrier = 0;
}

void fiber_entry() {
  (*g_block->body)();
  g_fiber->state = State::Done;
  --g_block->live;
  // A waiting collective that needed this lane can never complete.
  Warp& w = g_block->warps[g_fiber->t.warp];
  w.done |= 1u << g_fiber->t.lane;
  if (w.arrived && (w.mask >> g_fiber->t.lane & 1u)) {
    g_block->fault = true;
    g_block->fault_msg = "lane " + std::to_string(g_fiber->t.lane) + " of warp " + std::to_string(g_fiber->t.warp) +
                         " exited while its warp waited for it in a warp collective";
  }
  if (g_block->at_barrier > 0 && g_block->at_barrier == g_block->live) release_block_barrier();
  // ucontext: returning resumes uc_link (the scheduler); fast switch: simt_fiber_start switches.
}

std::string describe_waits(const Block& b) {
  std::string s;
  int shown = 0;
  for (const Fiber& f : b.fibers) {
    if (f.state == State::Done || shown >= 6) continue;
    s += " thread " + std::to_string(f.t.linear) + (f.state == State::BlockWait ? " at __syncthreads;" : " in a warp collective;");
    ++shown;
  }
  return s;
}

uint64_t g_launch_count = 0;
bool shuffled_schedule() {
  static const bool on = [] {
    const char* v = std::getenv("SIMT_SCHEDULE");
    return !(v && std::string(v) == "inorder");
  }();
  return on;
}

// Runs one block to completion; returns false (with b.fault_msg) on a fault or a deadlock.
bool run_block(Block& b, unsigned nthreads) {
  b.fibers.assign(nthreads, Fiber{});
  unsigned nwarps = (nthreads + 31) / 32;
  b.warps.assign(nwarps, Warp{});
  for (unsigned w = 0; w < nwarps; ++w) {
    b.warps[w].first_lane = w * 32;
    b.warps[w].lanes = std::min(32u, nthreads - w * 32);
    b.warps[w].existing = b.warps[w].lanes == 32 ? 0xffffffffu : ((1u << b.warps[w].lanes) - 1u);
  }
  b.live = nthreads;
  b.at_barrier = 0;
  for (unsigned i = 0; i < nthreads; ++i) {
    Fiber& f = b.fibers[i];
    unsigned bx = g_block_dim.x, by = g_block_dim.y;
    f.t.tid = uint3{i % bx, (i / bx) % by, i / (bx * by)};
    f.t.linear = i;
    f.t.lane = i & 31;
    f.t.warp = i >> 5;
    f.stack = stack_for(i);
#ifdef SIMT_FAST_SWITCH
    // Initial frame popped by simt_ctx_switch: fp control words, r15..rbp, then the return address.
    uint64_t* top = reinterpret_cast<uint64_t*>(f.stack + kStackBytes);  // 16-byte aligned
    top[-1] = 0;                                                          // simt_fiber_start never returns
    top[-2] = reinterpret_cast<uint64_t>(&simt_fiber_start);
    for (int r = 3; r <= 8; ++r) top[-r] = 0;                             // rbp rbx r12 r13 r14 r15
    uint32_t ctl[2] = {0x1f80u, 0x037fu};                                 // default MXCSR, x87 control word
    std::memcpy(&top[-9], ctl, 8);
    f.sp = &top[-9];
#else
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack;
    f.ctx.uc_stack.ss_size = kStackBytes;
    f.ctx.uc_link = &b.sched;
    makecontext(&f.ctx, fiber_entry, 0);
#endif
  }
  // Threads run in a shuffled order (fixed per launch and block, so runs reproduce): a missing
  // barrier, where one thread reads what another writes, then shows as poisoned or stale data
  // whichever of the two has the lower index. SIMT_SCHEDULE=inorder runs threads 0, 1, 2, ...
  std::vector<unsigned> order(nthreads);
  for (unsigned i = 0; i < nthreads; ++i) order[i] = i;
  if (shuffled_schedule()) {
    uint64_t h = g_launch_count * 0x9e3779b97f4a7c15ull ^ (uint64_t(g_block_idx.x) << 32 | g_block_idx.y << 16 | g_block_idx.z);
    for (unsigned i = nthreads; i > 1; --i) {  // Fisher-Yates with a splitmix64 stream
      h += 0x9e3779b97f4a7c15ull;
      uint64_t z = h;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      z ^= z >> 31;
      std::swap(order[i - 1], order[size_t(z % i)]);
    }
  }
  while (b.live > 0) {
    bool ran = false;
    for (unsigned idx : order) {
      Fiber& f = b.fibers[idx];
      if (f.state != State::Ready) continue;
      ran = true;
      g_fiber = &f;
      g_thread = &f.t;
#ifdef SIMT_FAST_SWITCH
      simt_ctx_switch(&b.sched_sp, f.sp);
#else
      swapcontext(&b.sched, &f.ctx);
#endif
      if (b.fault) return false;
    }
    if (!ran) {
      b.fault_msg = "deadlock: not every live thread reaches the same barrier (divergent __syncthreads or warp "
                    "collective);" + describe_waits(b);
      return false;
    }
  }
  return true;
}

std::unordered_map<const void*, int>& smem_optin() {
  static std::unordered_map<const void*, int> m;
  return m;
}

constexpr int kDefaultSmem = 48 * 1024, kMaxSmemOptin = 227 * 1024;

int sm_count_setting() {
  const char* v = std::getenv("SIMT_SM_COUNT");
  int n = v ? std::atoi(v) : 4;
  return n > 0 ? n : 4;
}

std::vector<unsigned char> g_dyn_smem_storage;
unsigned char* g_dyn_smem = nullptr;

}  // namespace

unsigned char* dynamic_smem() { return g_dyn_smem; }

namespace {
// SIMT_KERNEL_LOG=file: appends the name of every kernel the first time it is launched (coverage).
void log_kernel(const char* name) {
  static const char* path = std::getenv("SIMT_KERNEL_LOG");
  if (!path || !*path) return;
  static std::unordered_map<std::string, int> seen;
  std::string base(name);
  base = base.substr(0, base.find('<'));
  if (seen[base]++) return;
  if (FILE* f = std::fopen(path, "a")) {
    std::fprintf(f, "%s\n", base.c_str());
    std::fclose(f);
  }
}
}  // namespace

void launch(const char* name, const void* func, const LaunchConfig& cfg, const std::function<void()>& body) {
  if (stream_exists(cfg.stream)) stream_before_work(cfg.stream);
  std::lock_guard<std::mutex> lock(launch_mutex());
  log_kernel(name);
  const dim3 &g = cfg.grid, &bl = cfg.block;
  uint64_t threads = uint64_t(bl.x) * bl.y * bl.z;
  std::string where = std::string("launch of ") + name;
  if (threads == 0 || threads > 1024 || bl.x > 1024 || bl.y > 1024 || bl.z > 64) {
    set_launch_error(cudaErrorInvalidConfiguration, where + ": block (" + std::to_string(bl.x) + ", " +
                                                        std::to_string(bl.y) + ", " + std::to_string(bl.z) +
                                                        ") is not a valid CUDA block");
    return;
  }
  if (g.x == 0 || g.y == 0 || g.z == 0 || g.x > 2147483647u || g.y > 65535 || g.z > 65535) {
    set_launch_error(cudaErrorInvalidConfiguration, where + ": grid (" + std::to_string(g.x) + ", " +
                                                        std::to_string(g.y) + ", " + std::to_string(g.z) +
                                                        ") is not a valid CUDA grid");
    return;
  }
  int limit = kDefaultSmem;
  if (func) {
    auto it = smem_optin().find(func);
    if (it != smem_optin().end()) limit = it->second;
  }
  if (cfg.smem > size_t(limit)) {
    set_launch_error(cudaErrorInvalidValue, where + ": " + std::to_string(cfg.smem) +
                                                " bytes of dynamic shared memory exceed the kernel's limit of " +
                                                std::to_string(limit) +
                                                " (raise it with cudaFuncSetAttribute before the launch)");
    return;
  }
  if (!stream_exists(cfg.stream)) {
    set_launch_error(cudaErrorInvalidValue, where + ": unknown stream");
    return;
  }
  g_grid_dim = g;
  g_block_dim = bl;
  g_kernel = name;
  ++g_launch_count;
  g_dyn_smem_storage.assign(cfg.smem + 256, 0);
  uintptr_t base = reinterpret_cast<uintptr_t>(g_dyn_smem_storage.data());
  g_dyn_smem = reinterpret_cast<unsigned char*>((base + 127) & ~uintptr_t(127));
  Block b;
  b.body = &body;
  for (unsigned z = 0; z < g.z; ++z)
    for (unsigned y = 0; y < g.y; ++y)
      for (unsigned x = 0; x < g.x; ++x) {
        g_block_idx = uint3{x, y, z};
        std::memset(g_dyn_smem, 0xff, cfg.smem);  // NaN bytes: a read before a write shows
        uintptr_t s0 = reinterpret_cast<uintptr_t>(__start_simt_shared_mem),
                  s1 = reinterpret_cast<uintptr_t>(__stop_simt_shared_mem);
        if (s0 && s1 > s0) std::memset(__start_simt_shared_mem, 0xff, s1 - s0);
        g_block = &b;
        b.fault = false;
        bool ok = run_block(b, unsigned(threads));
        g_block = nullptr;
        g_fiber = nullptr;
        g_thread = nullptr;
        if (!ok) {
          std::string msg = std::string("kernel ") + name + " block (" + std::to_string(x) + ", " +
                            std::to_string(y) + ", " + std::to_string(z) + "): " + b.fault_msg;
          std::fprintf(stderr, "simt: %s\n", msg.c_str());
          g_pending_error = cudaErrorLaunchFailure;
          g_error_text = msg;
          return;
        }
      }
}

namespace {
Warp& current_warp() { return g_block->warps[g_fiber->t.warp]; }

// Arrives at the warp collective with member mask `mask`; returns after every member arrived.
void warp_arrive(unsigned mask) {
  Warp& w = current_warp();
  unsigned lane = g_fiber->t.lane;
  if (!(mask >> lane & 1u)) fault("lane " + std::to_string(lane) + " calls a warp collective whose mask excludes it");
  if (mask & ~w.existing)
    fault("warp collective mask includes lanes beyond the block (" + std::to_string(w.lanes) + " lanes exist)");
  if (mask & w.done) fault("warp collective waits for lane " + std::to_string(__builtin_ctz(mask & w.done)) +
                           ", which has exited");
  if (w.arrived == 0) w.mask = mask;
  else if (w.mask != mask) fault("lanes of one warp call a collective with different masks");
  w.arrived |= 1u << lane;
  if (w.arrived == w.mask) {
    unsigned wake = w.arrived & ~(1u << lane);
    w.arrived = 0;
    ++w.gen;
    while (wake) {
      unsigned l = unsigned(__builtin_ctz(wake));
      wake &= wake - 1;
      g_block->fibers[w.first_lane + l].state = State::Ready;
    }
    return;
  }
  g_fiber->state = State::WarpWait;
  yield();
}
}  // namespace

uint64_t warp_exchange(unsigned mask, uint64_t value, int src_lane) {
  Warp& w = current_warp();
  unsigned buf = w.gen & 1u;
  w.slot[buf][g_fiber->t.lane] = value;
  warp_arrive(mask);
  if (src_lane < 0 || src_lane >= 32 || !(mask >> src_lane & 1u)) return value;
  return w.slot[buf][src_lane];
}

unsigned warp_ballot(unsigned mask, bool pred) {
  Warp& w = current_warp();
  unsigned buf = w.gen & 1u;
  w.slot[buf][g_fiber->t.lane] = pred ? 1 : 0;
  warp_arrive(mask);
  unsigned r = 0;
  for (unsigned l = 0; l < 32; ++l)
    if ((mask >> l & 1u) && w.slot[buf][l]) r |= 1u << l;
  return r;
}

void block_barrier() {
  Block& b = *g_block;
  ++b.at_barrier;
  if (b.at_barrier == b.live) {
    release_block_barrier();
    return;
  }
  g_fiber->state = State::BlockWait;
  yield();
}

namespace {
inline float bf_lo(uint32_t u) {
  uint32_t x = u << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}
inline float bf_hi(uint32_t u) {
  uint32_t x = u & 0xffff0000u;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}
inline float half_of(uint32_t u, int h) { return h ? bf_hi(u) : bf_lo(u); }
}  // namespace

void mma_m16n8k16_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  Warp& w = current_warp();
  unsigned buf = w.gen & 1u, lane = g_fiber->t.lane;
  for (int i = 0; i < 4; ++i) w.mma_a[buf][lane][i] = a[i];
  w.mma_b[buf][lane][0] = b0;
  w.mma_b[buf][lane][1] = b1;
  warp_arrive(0xffffffffu);
  // Fragments (PTX ISA, m16n8k16 .bf16), g = lane / 4, t = lane % 4:
  //   A(r, k): lane (r % 8) * 4 + (k % 8) / 2, register (r >= 8) + 2 (k >= 8), half k & 1
  //   B(k, n): lane n * 4 + (k % 8) / 2, register (k >= 8), half k & 1
  //   C: c0, c1 = (g, 2t), (g, 2t + 1); c2, c3 = (g + 8, 2t), (g + 8, 2t + 1)
  auto A = [&](int r, int k) {
    return half_of(w.mma_a[buf][(r % 8) * 4 + (k % 8) / 2][(r >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0)], k & 1);
  };
  auto B = [&](int k, int n) { return half_of(w.mma_b[buf][n * 4 + (k % 8) / 2][k >= 8 ? 1 : 0], k & 1); };
  int g = int(lane) / 4, t = int(lane) % 4;
  for (int i = 0; i < 4; ++i) {
    int row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
    float s = c[i];
    for (int k = 0; k < 16; ++k) s += A(row, k) * B(k, col);
    c[i] = s;
  }
}

}  // namespace simt

#ifdef SIMT_FAST_SWITCH
// Entry of a fiber started by the fast switch: runs the kernel body, then returns to the scheduler,
// which never resumes a finished fiber.
extern "C" void simt_fiber_start() {
  simt::fiber_entry();
  simt::to_scheduler();
  std::abort();
}
#endif

// ------------------------------------------------------------------ the stand-in CUDA runtime
namespace {
using namespace simt;

struct MemState {
  std::map<uintptr_t, size_t> device;  // live cudaMalloc blocks and their requested sizes
  std::map<uintptr_t, size_t> pinned;  // live cudaHostAlloc blocks
  size_t used = 0;
  size_t capacity = [] {
    const char* v = std::getenv("SIMT_DEVICE_MEMORY_MB");
    long long mb = v ? std::atoll(v) : 16384;
    return size_t(mb > 0 ? mb : 16384) << 20;
  }();
};
MemState& mem() {
  static MemState m;
  return m;
}
std::mutex& mem_mutex() {
  static std::mutex mu;
  return mu;
}
bool within(const std::map<uintptr_t, size_t>& blocks, const void* p, size_t n) {
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = blocks.upper_bound(a);
  if (it == blocks.begin()) return false;
  --it;
  return a >= it->first && a + n <= it->first + it->second;
}
bool is_device(const void* p, size_t n) {
  std::lock_guard<std::mutex> lock(mem_mutex());
  return within(mem().device, p, n) || within(mem().pinned, p, n);  // mapped pinned memory counts
}
cudaError_t fail(cudaError_t e, const std::string& why) {
  g_last_error = e;
  g_error_text = why;
  std::fprintf(stderr, "simt: %s\n", why.c_str());
  return e;
}
cudaError_t check_copy(void* dst, const void* src, size_t n, cudaMemcpyKind kind, const char* fn) {
  if (n == 0) return cudaSuccess;
  bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (dst_dev && !is_device(dst, n))
    return fail(cudaErrorInvalidValue, std::string(fn) + ": destination range is not inside a device allocation");
  if (src_dev && !is_device(src, n))
    return fail(cudaErrorInvalidValue, std::string(fn) + ": source range is not inside a device allocation");
  return cudaSuccess;
}
}  // namespace

namespace {
// SIMT_DEVICE_COUNT (default 1) emulated devices; SIMT_NO_DEVICE=1: none. Every one of them is this
// process's host memory: the count lets one process per device (mpirun, cuda:<local rank>) pick its
// own, as on a machine with that many GPUs, not isolate memory between devices of one process.
int device_count_setting() {
  static const int n = [] {
    const char* v = std::getenv("SIMT_NO_DEVICE");
    if (v && *v && *v != '0') return 0;
    const char* c = std::getenv("SIMT_DEVICE_COUNT");
    int k = c && *c ? std::atoi(c) : 1;
    return k > 0 ? k : 1;
  }();
  return n;
}
int g_device = 0;
}  // namespace

int simt::current_device() { return g_device; }
bool simt::is_device_range(const void* p, size_t n) { return is_device(p, n ? n : 1); }

cudaError_t cudaGetDeviceCount(int* n) {
  *n = device_count_setting();
  return *n ? cudaSuccess : cudaErrorNoDevice;
}
cudaError_t cudaGetDevice(int* d) {
  *d = g_device;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) {
  if (d < 0 || d >= device_count_setting())
    return fail(cudaErrorInvalidDevice, "cudaSetDevice(" + std::to_string(d) + "): the emulator has " +
                                            std::to_string(device_count_setting()) +
                                            " device(s) (SIMT_DEVICE_COUNT)");
  g_device = d;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device < 0 || device >= device_count_setting())
    return fail(cudaErrorInvalidDevice, "cudaDeviceGetAttribute: no such device");
  switch (attr) {
    case cudaDevAttrMultiProcessorCount: *value = sm_count_setting(); return cudaSuccess;
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = kDefaultSmem; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = kMaxSmemOptin; return cudaSuccess;
  }
  return fail(cudaErrorInvalidValue, "cudaDeviceGetAttribute: attribute not emulated");
}
cudaError_t cudaDeviceSynchronize() {
  complete_all_streams();
  return cudaStreamSynchronize(nullptr);
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (!stream_exists(s)) return fail(cudaErrorInvalidValue, "cudaStreamSynchronize: unknown or destroyed stream");
  stream_before_work(s);
  cudaError_t e = g_pending_error;
  g_pending_error = cudaSuccess;
  return e;
}
cudaError_t cudaGetLastError() {
  cudaError_t e = g_last_error != cudaSuccess ? g_last_error : g_pending_error;
  g_last_error = cudaSuccess;
  g_pending_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return g_last_error != cudaSuccess ? g_last_error : g_pending_error; }
const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
  }
  return "cudaError (unknown)";
}
const char* cudaGetErrorString(cudaError_t e) {
  static thread_local std::string s;
  s = std::string(cudaGetErrorName(e)) + " [simt: " + (g_error_text.empty() ? "-" : g_error_text) + "]";
  return s.c_str();
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  std::lock_guard<std::mutex> lock(mem_mutex());
  MemState& m = mem();
  size_t rounded = (bytes + 255) & ~size_t(255);
  if (rounded == 0) rounded = 256;
  if (m.used + rounded > m.capacity) {
    *p = nullptr;
    g_last_error = cudaErrorMemoryAllocation;
    return cudaErrorMemoryAllocation;
  }
  void* q = std::aligned_alloc(256, rounded);
  if (!q) return cudaErrorMemoryAllocation;
  std::memset(q, 0xa5, rounded);  // fresh device memory is not zero
  m.device[reinterpret_cast<uintptr_t>(q)] = bytes ? bytes : 1;  // copies are checked against what was asked
  m.used += rounded;
  *p = q;
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  std::lock_guard<std::mutex> lock(mem_mutex());
  auto it = mem().device.find(reinterpret_cast<uintptr_t>(p));
  if (it == mem().device.end()) return fail(cudaErrorInvalidValue, "cudaFree of a pointer cudaMalloc did not return");
  size_t rounded = (it->second + 255) & ~size_t(255);
  mem().used -= rounded;
  mem().device.erase(it);
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned) {
  std::lock_guard<std::mutex> lock(mem_mutex());
  size_t rounded = (bytes + 255) & ~size_t(255);
  void* q = std::aligned_alloc(256, rounded ? rounded : 256);
  if (!q) return cudaErrorMemoryAllocation;
  mem().pinned[reinterpret_cast<uintptr_t>(q)] = rounded ? rounded : 256;
  *p = q;
  return cudaSuccess;
}
cudaError_t cudaMallocHost(void** p, size_t bytes) { return cudaHostAlloc(p, bytes, 0); }
cudaError_t cudaFreeHost(void* p) {
  if (!p) return cudaSuccess;
  std::lock_guard<std::mutex> lock(mem_mutex());
  auto it = mem().pinned.find(reinterpret_cast<uintptr_t>(p));
  if (it == mem().pinned.end()) return fail(cudaErrorInvalidValue, "cudaFreeHost of a pointer not from cudaHostAlloc");
  mem().pinned.erase(it);
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaHostGetDevicePointer(void** d, void* h, unsigned) {
  std::lock_guard<std::mutex> lock(mem_mutex());
  if (!within(mem().pinned, h, 1)) return fail(cudaErrorInvalidValue, "cudaHostGetDevicePointer: not pinned memory");
  *d = h;
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
  stream_before_work(nullptr);
  cudaError_t e = check_copy(dst, src, n, kind, "cudaMemcpy");
  if (e != cudaSuccess) return e;
  if (n) std::memmove(dst, src, n);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind kind, cudaStream_t s) {
  if (!stream_exists(s)) return fail(cudaErrorInvalidValue, "cudaMemcpyAsync: unknown or destroyed stream");
  stream_before_work(s);
  cudaError_t e = check_copy(dst, src, n, kind, "cudaMemcpyAsync");
  if (e != cudaSuccess) return e;
  if (n) std::memmove(dst, src, n);
  return cudaSuccess;
}
cudaError_t cudaMemset(void* dst, int value, size_t n) {
  stream_before_work(nullptr);
  if (n && !is_device(dst, n)) return fail(cudaErrorInvalidValue, "cudaMemset: range is not inside a device allocation");
  if (n) std::memset(dst, value, n);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* dst, int value, size_t n, cudaStream_t s) {
  if (!stream_exists(s)) return fail(cudaErrorInvalidValue, "cudaMemsetAsync: unknown or destroyed stream");
  stream_before_work(s);
  if (n && !is_device(dst, n)) return fail(cudaErrorInvalidValue, "cudaMemsetAsync: range is not inside a device allocation");
  if (n) std::memset(dst, value, n);
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard<std::mutex> lock(mem_mutex());
  *total_bytes = mem().capacity;
  *free_bytes = mem().capacity - mem().used;
  return cudaSuccess;
}

// ------------------------------------------------------------------ streams and events
// See simt_cuda.h: a stream is a queue of completions left by stand-in libraries; an event remembers
// the stream and how much had been enqueued on it when it was recorded.
struct CUstream_st {
  bool non_blocking = false;
  uint64_t enqueued = 0;  // completions ever enqueued
  std::deque<std::pair<uint64_t, std::function<void()>>> pending;  // (sequence number, completion)
};
struct CUevent_st {
  int recorded = 0;
  std::shared_ptr<CUstream_st> stream;  // where it was recorded (null: a default stream, always complete)
  uint64_t upto = 0;                    // completions of `stream` it follows
};
namespace {
std::mutex& stream_mutex() {
  static std::mutex mu;
  return mu;
}
// Created streams, by handle; a destroyed one is removed (its handle then is an error, as in CUDA).
std::map<cudaStream_t, std::shared_ptr<CUstream_st>>& streams() {
  static std::map<cudaStream_t, std::shared_ptr<CUstream_st>> m;
  return m;
}
std::shared_ptr<CUstream_st> find_stream(cudaStream_t s) {
  std::lock_guard<std::mutex> lock(stream_mutex());
  auto it = streams().find(s);
  return it == streams().end() ? nullptr : it->second;
}
// Runs st's completions with sequence numbers <= upto, in order. A completion may enqueue more or
// complete other streams: nothing is locked while it runs.
void complete_upto(const std::shared_ptr<CUstream_st>& st, uint64_t upto) {
  for (;;) {
    std::function<void()> f;
    {
      std::lock_guard<std::mutex> lock(stream_mutex());
      if (st->pending.empty() || st->pending.front().first > upto) return;
      f = std::move(st->pending.front().second);
      st->pending.pop_front();
    }
    f();
  }
}
void complete_stream(const std::shared_ptr<CUstream_st>& st) { complete_upto(st, UINT64_MAX); }
}  // namespace

bool simt::is_default_stream(cudaStream_t s) {
  return s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread;
}
bool simt::stream_exists(cudaStream_t s) { return is_default_stream(s) || find_stream(s) != nullptr; }
void simt::stream_enqueue(cudaStream_t s, std::function<void()> complete) {
  std::shared_ptr<CUstream_st> st = is_default_stream(s) ? nullptr : find_stream(s);
  if (!st) {  // the default stream runs everything at once (an unknown stream: the caller checked)
    stream_before_work(s);
    complete();
    return;
  }
  std::lock_guard<std::mutex> lock(stream_mutex());
  st->pending.emplace_back(++st->enqueued, std::move(complete));
}
void simt::complete_all_streams() {
  std::vector<std::shared_ptr<CUstream_st>> all;
  {
    std::lock_guard<std::mutex> lock(stream_mutex());
    for (auto& [h, st] : streams()) all.push_back(st);
  }
  for (auto& st : all) complete_stream(st);
}
// Work about to run on stream s (synchronously): what s has in flight comes first; on the legacy
// default stream also what the blocking streams have (CUDA's implicit synchronisation).
// cudaStreamPerThread does not synchronise with other streams.
void simt::stream_before_work(cudaStream_t s) {
  if (s == cudaStreamPerThread) return;
  if (!is_default_stream(s)) {
    if (auto st = find_stream(s)) complete_stream(st);
    return;
  }
  std::vector<std::shared_ptr<CUstream_st>> blocking;
  {
    std::lock_guard<std::mutex> lock(stream_mutex());
    for (auto& [h, st] : streams())
      if (!st->non_blocking && !st->pending.empty()) blocking.push_back(st);
  }
  for (auto& st : blocking) complete_stream(st);
}

cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
  if (!s) return fail(cudaErrorInvalidValue, "cudaStreamCreateWithFlags: null pointer");
  if (flags & ~unsigned(cudaStreamNonBlocking))
    return fail(cudaErrorInvalidValue, "cudaStreamCreateWithFlags: unknown flags");
  auto st = std::make_shared<CUstream_st>();
  st->non_blocking = (flags & cudaStreamNonBlocking) != 0;
  std::lock_guard<std::mutex> lock(stream_mutex());
  *s = st.get();
  streams()[*s] = st;
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (is_default_stream(s)) return fail(cudaErrorInvalidValue, "cudaStreamDestroy of a default stream");
  std::shared_ptr<CUstream_st> st = find_stream(s);
  if (!st) return fail(cudaErrorInvalidValue, "cudaStreamDestroy: unknown or destroyed stream");
  complete_stream(st);  // CUDA: work in flight still completes, the stream's resources go afterwards
  std::lock_guard<std::mutex> lock(stream_mutex());
  streams().erase(s);
  return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags) {
  if (!e) return fail(cudaErrorInvalidValue, "cudaStreamWaitEvent: null event");
  if (!stream_exists(s)) return fail(cudaErrorInvalidValue, "cudaStreamWaitEvent: unknown or destroyed stream");
  if (flags) return fail(cudaErrorInvalidValue, "cudaStreamWaitEvent: flags must be 0");
  // Work enqueued on s after this runs at once on the host, so the awaited work completes now.
  if (e->stream) complete_upto(e->stream, e->upto);
  return cudaSuccess;
}
cudaError_t cudaStreamQuery(cudaStream_t s) {
  if (!stream_exists(s)) return fail(cudaErrorInvalidValue, "cudaStreamQuery: unknown or destroyed stream");
  return cudaSuccess;  // never cudaErrorNotReady: whoever asks may proceed; the completions run when needed
}
cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = new CUevent_st();
  return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) { return cudaEventCreate(e); }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  if (!e) return fail(cudaErrorInvalidValue, "cudaEventRecord: null event");
  if (!stream_exists(s)) return fail(cudaErrorInvalidValue, "cudaEventRecord: unknown or destroyed stream");
  e->recorded = 1;
  if (is_default_stream(s)) {
    // The legacy stream waits for the blocking streams: its event follows their work too.
    stream_before_work(s);
    e->stream = nullptr;
    e->upto = 0;
  } else {
    e->stream = find_stream(s);
    std::lock_guard<std::mutex> lock(stream_mutex());
    e->upto = e->stream->enqueued;
  }
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  if (!e) return fail(cudaErrorInvalidValue, "cudaEventSynchronize: null event");
  if (e->stream) complete_upto(e->stream, e->upto);
  return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t, cudaEvent_t) {
  *ms = 0.f;
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;  // work it follows still completes when its stream's does (as in CUDA)
  return cudaSuccess;
}
cudaError_t cudaFuncSetAttribute_impl(const void* func, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaSuccess;
  if (value < 0 || value > kMaxSmemOptin)
    return fail(cudaErrorInvalidValue, "cudaFuncSetAttribute: " + std::to_string(value) +
                                           " bytes of dynamic shared memory exceed the device's " +
                                           std::to_string(kMaxSmemOptin));
  std::lock_guard<std::mutex> lock(launch_mutex());
  smem_optin()[func] = value;
  return cudaSuccess;
}
