#pragma once
// Internal to dist/ (includes mpi.h): MPI initialisation and finalisation for the whole process, and
// the error check that turns an MPI failure into pe::Error naming the call and the rank.
// The C API only (Open MPI's and MPICH's C++ bindings are deprecated and warn).
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <string>

#include "core/error.h"

namespace pe::dist::mpi {

// MPI_Init_thread (MPI_THREAD_FUNNELED: only the main thread calls MPI) unless already initialised,
// and MPI_Finalize at exit when this process initialised it. Errors on MPI_COMM_WORLD then return
// instead of aborting, so they reach check().
void ensure_initialized();
bool finalized();

// Throws pe::Error "<call> failed on rank r/N: <MPI's message>" when rc != MPI_SUCCESS.
void check(int rc, const char* call, MPI_Comm comm);

}  // namespace pe::dist::mpi

#define PE_MPI(comm, call) ::pe::dist::mpi::check((call), #call, (comm))
