#include <omp.h>
#if defined(__x86_64__) || defined(__i386__)
#include <pmmintrin.h>
#include <xmmintrin.h>
#endif

#include "kernels/backend.h"

namespace pe {

// Sets flush-to-zero / denormals-are-zero on the calling thread and on every OpenMP worker.
// Subnormal floats (tiny gradients, Adam second moments, far softmax tails) are up to ~100x slower
// on x86; training loses nothing by flushing them. Tests keep IEEE behaviour (never called there).
bool set_flush_denormals(bool on) {
#if defined(__x86_64__) || defined(__i386__)
  auto apply = [on] {
    _MM_SET_FLUSH_ZERO_MODE(on ? _MM_FLUSH_ZERO_ON : _MM_FLUSH_ZERO_OFF);
    _MM_SET_DENORMALS_ZERO_MODE(on ? _MM_DENORMALS_ZERO_ON : _MM_DENORMALS_ZERO_OFF);
  };
  apply();
#pragma omp parallel
  apply();
  return true;
#else
  (void)on;
  return false;
#endif
}

}  // namespace pe
