// test_dist's main: makes the communicator (make_communicator picks MPI under mpirun), runs the
// doctest cases on every rank, and fails on every rank when any rank failed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "tests/dist/dist_env.h"

namespace {
pe::dist::Communicator* g_comm = nullptr;
}

pe::dist::Communicator& test_comm() { return *g_comm; }

int main(int argc, char** argv) {
  std::unique_ptr<pe::dist::Communicator> comm;
  try {
    comm = pe::dist::make_communicator();
  } catch (const pe::Error& e) {
    std::fprintf(stderr, "test_dist: no communicator: %s\n", e.what());
    return 1;
  }
  g_comm = comm.get();
  std::printf("test_dist: %s, local rank %d/%d\n", comm->describe().c_str(), comm->local_rank(), comm->local_size());
  std::fflush(stdout);
  doctest::Context ctx(argc, argv);
  int rc = ctx.run();
  if (ctx.shouldExit()) return rc;
  pe::Tensor failed = pe::Tensor::from_vector(std::vector<int64_t>{rc != 0 ? 1 : 0}, {1});
  comm->all_reduce(failed, pe::dist::Reduction::Sum);
  int64_t n = failed.to_int_vector()[0];
  if (n && comm->rank() == 0) std::printf("test_dist: %lld of %d rank(s) failed\n", (long long)n, comm->world_size());
  return n ? 1 : 0;
}
