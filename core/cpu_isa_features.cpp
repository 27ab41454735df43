// Compiled with the project's ISA flags: reports which features the compiler was allowed to use.
// Only returns a string literal, so calling it executes no instruction of those extensions.
#include "core/cpu_isa.h"

namespace pe {

const char* cpu_isa_built_features() {
  return ""
#if defined(__AVX512F__)
         " avx512f"
#endif
#if defined(__AVX512BW__)
         " avx512bw"
#endif
#if defined(__AVX512VL__)
         " avx512vl"
#endif
#if defined(__AVX512DQ__)
         " avx512dq"
#endif
#if defined(__AVX512CD__)
         " avx512cd"
#endif
#if defined(__AVX512VNNI__)
         " avx512vnni"
#endif
#if defined(__AVX512BF16__)
         " avx512bf16"
#endif
#if defined(__AVX512IFMA__)
         " avx512ifma"
#endif
#if defined(__AVX512VBMI__)
         " avx512vbmi"
#endif
#if defined(__AVX512VBMI2__)
         " avx512vbmi2"
#endif
#if defined(__AVX512BITALG__)
         " avx512bitalg"
#endif
#if defined(__AVX512VPOPCNTDQ__)
         " avx512vpopcntdq"
#endif
#if defined(__AVX2__)
         " avx2"
#endif
#if defined(__AVX__)
         " avx"
#endif
#if defined(__FMA__)
         " fma"
#endif
#if defined(__F16C__)
         " f16c"
#endif
#if defined(__BMI2__)
         " bmi2"
#endif
#if defined(__SSE4_2__)
         " sse4.2"
#endif
#if defined(__ARM_NEON)
         " neon"
#endif
      ;
}

}  // namespace pe
