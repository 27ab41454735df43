// Built instead of dist/comm_nccl.cpp when NCCL is not (no CUDA, no NCCL or no MPI at configure time),
// and in the SIMT emulator build.
#include "dist/communicator.h"

namespace pe::dist {
bool nccl_built() { return false; }
std::unique_ptr<Communicator> make_nccl_communicator() {
  PE_FAIL("communicator: this build has no NCCL support (it needs CUDA, NCCL (nccl.h, libnccl) and MPI at "
          "configure time; CMake prints which communicators are built)");
}
}  // namespace pe::dist
