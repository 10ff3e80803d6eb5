// The communicator over NCCL: one rank per GPU, buffers in device memory (the CUDA runner's
// activations). Compiled only in CUDA builds where nccl.h and libnccl were found (TERN_HAVE_NCCL,
// cmake/mpi.cmake); elsewhere open_nccl_communicator() says so. NCCL needs a bootstrap to share its
// unique id: another communicator over the same ranks (MPI), passed in. Every call enqueues on the
// communicator's stream and waits for it, so a returned Status covers the transfer.
// gather and all_to_all are grouped ncclSend / ncclRecv (NCCL has no gather collective).
#pragma once

#include <memory>

#include "parallel/communicator.h"

namespace tern {

bool nccl_available();
// device: the CUDA device this rank drives. bootstrap: the same ranks (rank 0 broadcasts NCCL's id).
Result<std::unique_ptr<Communicator>> open_nccl_communicator(Communicator& bootstrap, int device);

}  // namespace tern
