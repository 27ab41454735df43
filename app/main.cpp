// protst: train, evaluate and use ProtST-style protein–text models.
#include <cstdlib>
#include <unistd.h>

#include "app/cli.h"

namespace {
// OpenMP worker threads (libgomp) busy-wait about 300,000 spins at every barrier before they sleep.
// On a machine that other work keeps busy, that spinning took 2-thread runs to 2.4x the CPU time of
// 1-thread runs and made them slower in wall time too. libgomp reads its settings before main(), so
// when the user has set neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT, protst re-executes itself once
// with GOMP_SPINCOUNT=0: a thread that waits sleeps at once. Against 10,000 spins, the quick-start
// training step at 2 threads took 14.1-14.4 CPU-s instead of 15.0-17.1 for 40 steps, at the same wall
// time (8.1-8.3 s against 7.7-8.9 s; three interleaved runs each).
void bound_openmp_spinning(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;
  if (setenv("GOMP_SPINCOUNT", "0", 1) != 0) return;
  execv("/proc/self/exe", argv);  // returns only on failure: run on with the default spinning
}
}  // namespace

int main(int argc, char** argv) {
  bound_openmp_spinning(argv);
  return pe::protst_main(argc, argv);
}
