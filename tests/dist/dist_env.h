#pragma once
// The communicator test_dist runs under: single process when started alone, MPI under mpirun.
#include "dist/communicator.h"

pe::dist::Communicator& test_comm();
