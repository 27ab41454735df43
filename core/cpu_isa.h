#pragma once
// Which instruction set this binary was compiled for, and a guard against running it on a CPU
// that lacks it. A native build (-DPE_NATIVE=ON, the default; llama.cpp's convention) compiles for
// the building machine (-march=native: AVX-512/AVX2 and FMA where present); -DPE_NATIVE=OFF gives a
// portable x86-64 binary. On x86-64, a check that runs before any other static initialiser
// compares the features the compiler was allowed to use with what the CPU reports and exits with a
// message naming the missing ones (never SIGILL). The check lives in the object file that defines
// cpu_isa_summary(), so a program that prints the summary is guarded.
#include <string>

namespace pe {

// E.g. "native build, AVX-512 + FMA (16 floats per vector)".
std::string cpu_isa_summary();
// The space-separated feature names the compiler could use (from the predefined macros).
const char* cpu_isa_built_features();

}  // namespace pe
