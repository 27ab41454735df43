// Compiled for the baseline ISA (CMake sets -march=x86-64 on this file): the guard below must run
// on any x86-64 CPU, before code built for the native ISA executes.
#include "core/cpu_isa.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <unistd.h>

namespace pe {

namespace {

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// Whether the running CPU has the named feature; -1 for a name this table does not know.
int cpu_has(const std::string& f) {
  __builtin_cpu_init();
#define PE_FEATURE(name) \
  if (f == name) return __builtin_cpu_supports(name) ? 1 : 0;
  PE_FEATURE("avx512f") PE_FEATURE("avx512bw") PE_FEATURE("avx512vl") PE_FEATURE("avx512dq")
  PE_FEATURE("avx512cd") PE_FEATURE("avx512vnni") PE_FEATURE("avx512bf16") PE_FEATURE("avx512ifma")
  PE_FEATURE("avx512vbmi") PE_FEATURE("avx512vbmi2") PE_FEATURE("avx512bitalg") PE_FEATURE("avx512vpopcntdq")
  PE_FEATURE("avx2") PE_FEATURE("avx") PE_FEATURE("fma") PE_FEATURE("bmi2") PE_FEATURE("sse4.2")
#if !defined(__clang__) || __clang_major__ >= 16
  // Clang before 16 rejects "f16c" in __builtin_cpu_supports at compile time; there the name is
  // unknown (-1) and not checked (every CPU with AVX2 also has F16C).
  PE_FEATURE("f16c")
#endif
#undef PE_FEATURE
  return -1;
}

// Runs before every default-priority static initialiser of the program.
__attribute__((constructor(101))) void check_cpu_isa() {
  std::istringstream in(cpu_isa_built_features());
  std::string f, missing;
  while (in >> f)
    if (cpu_has(f) == 0) missing += " " + f;
  if (missing.empty()) return;
  std::string msg = "protst: this binary was compiled for the CPU it was built on (-DPE_NATIVE=ON) and uses" + missing +
                    ", which this CPU lacks. Rebuild here, or configure with -DPE_NATIVE=OFF for a portable binary.\n";
  ssize_t w = ::write(2, msg.data(), msg.size());
  (void)w;
  std::_Exit(3);
}
#endif

}  // namespace

std::string cpu_isa_summary() {
  std::string built = std::string(cpu_isa_built_features()) + " ";
  auto has = [&](const char* f) { return built.find(std::string(" ") + f + " ") != std::string::npos; };
#if defined(PE_NATIVE_BUILD)
  std::string kind = "native build, ";
#else
  std::string kind = "portable build, ";
#endif
  std::string isa = has("avx512f") ? "AVX-512" : has("avx2") ? "AVX2" : has("avx") ? "AVX" : has("neon") ? "NEON" : "SSE2";
  if (has("fma")) isa += " + FMA";
  int lanes = has("avx512f") ? 16 : has("avx") ? 8 : 4;
  return kind + isa + " (" + std::to_string(lanes) + " floats per vector)";
}

}  // namespace pe
