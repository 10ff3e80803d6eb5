#include "parallel/nccl_communicator.h"

#include <fmt/format.h>

#ifdef TERN_HAVE_NCCL
#include <cuda_runtime.h>
#include <nccl.h>
#endif

namespace tern {

#ifndef TERN_HAVE_NCCL

bool nccl_available() { return false; }

Result<std::unique_ptr<Communicator>> open_nccl_communicator(Communicator&, int) {
  return Status::error("tern was built without NCCL (a CUDA build finds it in /usr/local/cuda)");
}

#else

bool nccl_available() { return true; }

namespace {

Status nccl_status(ncclResult_t r, const char* what) {
  if (r == ncclSuccess) return Status::ok();
  return Status::error(fmt::format("NCCL {} failed: {}", what, ncclGetErrorString(r)));
}

Status cuda_status(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return Status::ok();
  return Status::error(fmt::format("CUDA {} failed: {}", what, cudaGetErrorString(e)));
}

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(ncclComm_t comm, cudaStream_t stream, float* scratch, int rank, int size)
      : comm_(comm), stream_(stream), scratch_(scratch), rank_(rank), size_(size) {}
  ~NcclCommunicator() override {
    ncclCommDestroy(comm_);
    cudaFree(scratch_);
    cudaStreamDestroy(stream_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "nccl"; }

 protected:
  Status do_all_reduce_sum(float* d, int64_t n) override {
    TERN_RETURN_IF_ERROR(nccl_status(ncclAllReduce(d, d, size_t(n), ncclFloat32, ncclSum, comm_, stream_), "all-reduce"));
    return sync();
  }
  Status do_all_reduce_sum_bf16(uint16_t* d, int64_t n) override {
    TERN_RETURN_IF_ERROR(
        nccl_status(ncclAllReduce(d, d, size_t(n), ncclBfloat16, ncclSum, comm_, stream_), "bf16 all-reduce"));
    return sync();
  }
  Status do_broadcast(void* d, int64_t bytes, int root) override {
    TERN_RETURN_IF_ERROR(nccl_status(ncclBroadcast(d, d, size_t(bytes), ncclUint8, root, comm_, stream_), "broadcast"));
    return sync();
  }
  Status do_send(const void* d, int64_t bytes, int peer, int) override {
    TERN_RETURN_IF_ERROR(nccl_status(ncclSend(d, size_t(bytes), ncclUint8, peer, comm_, stream_), "send"));
    return sync();
  }
  Status do_recv(void* d, int64_t bytes, int peer, int) override {
    TERN_RETURN_IF_ERROR(nccl_status(ncclRecv(d, size_t(bytes), ncclUint8, peer, comm_, stream_), "recv"));
    return sync();
  }
  Status do_all_gather(const void* s, int64_t bytes_each, void* r) override {
    TERN_RETURN_IF_ERROR(nccl_status(ncclAllGather(s, r, size_t(bytes_each), ncclUint8, comm_, stream_), "all-gather"));
    return sync();
  }
  Status do_gather(const void* s, int64_t bytes_each, void* r, int root) override {
    TERN_RETURN_IF_ERROR(nccl_status(ncclGroupStart(), "group"));
    if (rank_ == root) {
      for (int p = 0; p < size_; ++p) {
        char* dst = static_cast<char*>(r) + int64_t(p) * bytes_each;
        if (p == root) cudaMemcpyAsync(dst, s, size_t(bytes_each), cudaMemcpyDeviceToDevice, stream_);
        else ncclRecv(dst, size_t(bytes_each), ncclUint8, p, comm_, stream_);
      }
    } else {
      ncclSend(s, size_t(bytes_each), ncclUint8, root, comm_, stream_);
    }
    TERN_RETURN_IF_ERROR(nccl_status(ncclGroupEnd(), "gather"));
    return sync();
  }
  Status do_all_to_all(const void* s, int64_t bytes_each, void* r) override {
    TERN_RETURN_IF_ERROR(nccl_status(ncclGroupStart(), "group"));
    for (int p = 0; p < size_; ++p) {
      ncclSend(static_cast<const char*>(s) + int64_t(p) * bytes_each, size_t(bytes_each), ncclUint8, p, comm_, stream_);
      ncclRecv(static_cast<char*>(r) + int64_t(p) * bytes_each, size_t(bytes_each), ncclUint8, p, comm_, stream_);
    }
    TERN_RETURN_IF_ERROR(nccl_status(ncclGroupEnd(), "all-to-all"));
    return sync();
  }
  Status do_barrier() override {
    TERN_RETURN_IF_ERROR(nccl_status(ncclAllReduce(scratch_, scratch_, 1, ncclFloat32, ncclSum, comm_, stream_), "barrier"));
    return sync();
  }

 private:
  Status sync() { return cuda_status(cudaStreamSynchronize(stream_), "stream synchronize"); }
  ncclComm_t comm_;
  cudaStream_t stream_;
  float* scratch_;  // [1] on the device, the barrier's all-reduce
  int rank_, size_;
};

}  // namespace

Result<std::unique_ptr<Communicator>> open_nccl_communicator(Communicator& bootstrap, int device) {
  TERN_RETURN_IF_ERROR(cuda_status(cudaSetDevice(device), "set device"));
  ncclUniqueId id{};
  if (bootstrap.rank() == 0) TERN_RETURN_IF_ERROR(nccl_status(ncclGetUniqueId(&id), "get unique id"));
  TERN_RETURN_IF_ERROR(bootstrap.broadcast(&id, sizeof(id), 0));
  ncclComm_t comm;
  TERN_RETURN_IF_ERROR(nccl_status(ncclCommInitRank(&comm, bootstrap.size(), id, bootstrap.rank()), "init"));
  cudaStream_t stream;
  float* scratch = nullptr;
  if (Status s = cuda_status(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream create"); !s.is_ok()) {
    ncclCommDestroy(comm);
    return s;
  }
  if (Status s = cuda_status(cudaMalloc(&scratch, sizeof(float)), "malloc"); !s.is_ok()) {
    cudaStreamDestroy(stream);
    ncclCommDestroy(comm);
    return s;
  }
  return std::unique_ptr<Communicator>(new NcclCommunicator(comm, stream, scratch, bootstrap.rank(), bootstrap.size()));
}

#endif

}  // namespace tern
