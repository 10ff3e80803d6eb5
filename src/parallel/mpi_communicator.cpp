#include "parallel/mpi_communicator.h"

#include <fmt/format.h>

#ifdef TERN_HAVE_MPI
// The C API only: OpenMPI's mpi.h otherwise pulls in its deprecated C++ bindings (libmpi_cxx).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <climits>

#include "core/dtype.h"
#endif

namespace tern {

#ifndef TERN_HAVE_MPI

bool mpi_available() { return false; }

Result<std::unique_ptr<Communicator>> open_mpi_communicator() {
  return Status::error("tern was built without MPI (install libopenmpi-dev and rebuild: CMake finds it as TERN_MPI)");
}

#else

bool mpi_available() { return true; }

namespace {

// MPI_Op over MPI_UINT16_T holding bf16: inout[i] = bf16(f32(in[i]) + f32(inout[i])). With two
// ranks that is one rounding of the exact f32 sum.
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const uint16_t*>(in);
  auto* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = f32_to_bf16(bf16_to_f32(a[i]) + bf16_to_f32(b[i]));
}

Status mpi_status(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return Status::ok();
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  return Status::error(fmt::format("MPI {} failed: {}", what, std::string(text, size_t(len))));
}

// MPI counts are int: buffers beyond INT_MAX elements go in pieces.
constexpr int64_t kMaxCount = int64_t(1) << 30;

class MpiCommunicator : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, bool owns_init) : comm_(comm), owns_init_(owns_init) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    MPI_Op_create(&bf16_sum, /*commute=*/1, &bf16_op_);
  }
  ~MpiCommunicator() override {
    MPI_Op_free(&bf16_op_);
    MPI_Comm_free(&comm_);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owns_init_ && !finalized) MPI_Finalize();
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "mpi"; }

 protected:
  Status do_all_reduce_sum(float* data, int64_t n) override {
    for (int64_t i = 0; i < n; i += kMaxCount) {
      const int c = int(std::min(kMaxCount, n - i));
      TERN_RETURN_IF_ERROR(mpi_status(MPI_Allreduce(MPI_IN_PLACE, data + i, c, MPI_FLOAT, MPI_SUM, comm_), "all-reduce"));
    }
    return Status::ok();
  }
  Status do_all_reduce_sum_bf16(uint16_t* data, int64_t n) override {
    for (int64_t i = 0; i < n; i += kMaxCount) {
      const int c = int(std::min(kMaxCount, n - i));
      TERN_RETURN_IF_ERROR(
          mpi_status(MPI_Allreduce(MPI_IN_PLACE, data + i, c, MPI_UINT16_T, bf16_op_, comm_), "bf16 all-reduce"));
    }
    return Status::ok();
  }
  Status do_broadcast(void* data, int64_t bytes, int root) override {
    auto* p = static_cast<char*>(data);
    for (int64_t i = 0; i < bytes; i += kMaxCount) {
      const int c = int(std::min(kMaxCount, bytes - i));
      TERN_RETURN_IF_ERROR(mpi_status(MPI_Bcast(p + i, c, MPI_BYTE, root, comm_), "broadcast"));
    }
    return Status::ok();
  }
  Status do_send(const void* data, int64_t bytes, int peer, int tag) override {
    if (bytes > kMaxCount) return Status::error("send: message over 1 GiB");
    return mpi_status(MPI_Send(data, int(bytes), MPI_BYTE, peer, tag, comm_), "send");
  }
  Status do_recv(void* data, int64_t bytes, int peer, int tag) override {
    if (bytes > kMaxCount) return Status::error("recv: message over 1 GiB");
    MPI_Status st;
    TERN_RETURN_IF_ERROR(mpi_status(MPI_Recv(data, int(bytes), MPI_BYTE, peer, tag, comm_, &st), "recv"));
    int got = 0;
    MPI_Get_count(&st, MPI_BYTE, &got);
    if (got != bytes) return Status::error(fmt::format("recv: expected {} bytes from rank {}, got {}", bytes, peer, got));
    return Status::ok();
  }
  Status do_post_recv(PendingRecv& p) override {
    if (p.bytes > kMaxCount) return Status::error("recv: message over 1 GiB");
    auto req = std::make_shared<MPI_Request>(MPI_REQUEST_NULL);
    TERN_RETURN_IF_ERROR(mpi_status(MPI_Irecv(p.data, int(p.bytes), MPI_BYTE, p.peer, p.tag, comm_, req.get()), "irecv"));
    p.impl = req;
    return Status::ok();
  }
  Status do_wait_recv(PendingRecv& p) override {
    auto* req = static_cast<MPI_Request*>(p.impl.get());
    if (!req) return Status::error("recv: no request was posted");
    MPI_Status st;
    TERN_RETURN_IF_ERROR(mpi_status(MPI_Wait(req, &st), "wait"));
    int got = 0;
    MPI_Get_count(&st, MPI_BYTE, &got);
    if (got != p.bytes) return Status::error(fmt::format("recv: expected {} bytes from rank {}, got {}", p.bytes, p.peer, got));
    return Status::ok();
  }
  Status do_all_gather(const void* send, int64_t bytes_each, void* recv) override {
    if (bytes_each > kMaxCount) return Status::error("all_gather: block over 1 GiB");
    return mpi_status(MPI_Allgather(send, int(bytes_each), MPI_BYTE, recv, int(bytes_each), MPI_BYTE, comm_),
                      "all-gather");
  }
  Status do_gather(const void* send, int64_t bytes_each, void* recv, int root) override {
    if (bytes_each > kMaxCount) return Status::error("gather: block over 1 GiB");
    return mpi_status(MPI_Gather(send, int(bytes_each), MPI_BYTE, recv, int(bytes_each), MPI_BYTE, root, comm_),
                      "gather");
  }
  Status do_all_to_all(const void* send, int64_t bytes_each, void* recv) override {
    if (bytes_each > kMaxCount) return Status::error("all_to_all: block over 1 GiB");
    return mpi_status(MPI_Alltoall(send, int(bytes_each), MPI_BYTE, recv, int(bytes_each), MPI_BYTE, comm_),
                      "all-to-all");
  }
  Status do_barrier() override { return mpi_status(MPI_Barrier(comm_), "barrier"); }

 private:
  MPI_Comm comm_;
  bool owns_init_;
  int rank_ = 0, size_ = 1;
  MPI_Op bf16_op_;
};

}  // namespace

Result<std::unique_ptr<Communicator>> open_mpi_communicator() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  bool owns = false;
  if (!initialized) {
    int provided = 0;
    const int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
    if (rc != MPI_SUCCESS) return Status::error("MPI_Init_thread failed");
    if (provided < MPI_THREAD_SERIALIZED) {
      MPI_Finalize();
      return Status::error("this MPI library does not support MPI_THREAD_SERIALIZED");
    }
    owns = true;
  }
  MPI_Comm comm;
  // Our own communicator, so the error handler we set (return, never abort) is ours alone.
  TERN_RETURN_IF_ERROR(mpi_status(MPI_Comm_dup(MPI_COMM_WORLD, &comm), "Comm_dup"));
  MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  return std::unique_ptr<Communicator>(new MpiCommunicator(comm, owns));
}

#endif

}  // namespace tern
