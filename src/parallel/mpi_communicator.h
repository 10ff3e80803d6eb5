// The communicator over MPI (OpenMPI from Debian): CPU processes on one machine or several, one
// rank per process, launched by `mpirun -np N`. Errors come back as Status (the communicator's
// MPI error handler is MPI_ERRORS_RETURN), never as an abort inside MPI.
//
// open_mpi_communicator() initialises MPI (MPI_THREAD_SERIALIZED: the engine thread makes the
// calls of a serving step, the main thread those of loading and shutdown, never both at once) and
// finalises it when the communicator is destroyed. A build without MPI (TERN_HAVE_MPI unset) links
// the same function, which returns an error naming what is missing.
#pragma once

#include <memory>

#include "parallel/communicator.h"

namespace tern {

// True when this build has the MPI implementation.
bool mpi_available();
// MPI_COMM_WORLD of this process group (size 1 when started without mpirun).
Result<std::unique_ptr<Communicator>> open_mpi_communicator();

}  // namespace tern
