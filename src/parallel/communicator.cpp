#include "parallel/communicator.h"

#include <fmt/format.h>

namespace tern {

Status Communicator::check_rank(const char* what, int r) const {
  if (r < 0 || r >= size()) return Status::error(fmt::format("{}: rank {} is outside 0..{}", what, r, size() - 1));
  return Status::ok();
}

Status Communicator::all_reduce_sum(float* data, int64_t n) {
  if (n < 0 || (n > 0 && !data)) return Status::error("all_reduce_sum: bad buffer");
  calls_++;
  all_reduce_bytes_ += n * int64_t(sizeof(float));
  return n == 0 ? Status::ok() : do_all_reduce_sum(data, n);
}

Status Communicator::all_reduce_sum_bf16(uint16_t* data, int64_t n) {
  if (n < 0 || (n > 0 && !data)) return Status::error("all_reduce_sum_bf16: bad buffer");
  calls_++;
  all_reduce_bytes_ += n * int64_t(sizeof(uint16_t));
  return n == 0 ? Status::ok() : do_all_reduce_sum_bf16(data, n);
}

Status Communicator::broadcast(void* data, int64_t bytes, int root) {
  TERN_RETURN_IF_ERROR(check_rank("broadcast", root));
  if (bytes < 0 || (bytes > 0 && !data)) return Status::error("broadcast: bad buffer");
  calls_++;
  if (rank() == root) broadcast_bytes_ += bytes * (size() - 1);
  return bytes == 0 ? Status::ok() : do_broadcast(data, bytes, root);
}

Status Communicator::send(const void* data, int64_t bytes, int peer, int tag) {
  TERN_RETURN_IF_ERROR(check_rank("send", peer));
  if (bytes < 0 || (bytes > 0 && !data) || tag < 0) return Status::error("send: bad buffer or tag");
  calls_++;
  p2p_bytes_ += bytes;
  return do_send(data, bytes, peer, tag);
}

Status Communicator::recv(void* data, int64_t bytes, int peer, int tag) {
  TERN_RETURN_IF_ERROR(check_rank("recv", peer));
  if (bytes < 0 || (bytes > 0 && !data) || tag < 0) return Status::error("recv: bad buffer or tag");
  calls_++;
  return do_recv(data, bytes, peer, tag);
}

Status Communicator::post_recv(void* data, int64_t bytes, int peer, int tag, PendingRecv* pending) {
  TERN_RETURN_IF_ERROR(check_rank("post_recv", peer));
  if (!pending || bytes < 0 || (bytes > 0 && !data) || tag < 0) return Status::error("post_recv: bad buffer or tag");
  calls_++;
  *pending = PendingRecv{data, bytes, peer, tag, nullptr};
  return do_post_recv(*pending);
}

Status Communicator::wait_recv(PendingRecv& pending) {
  if (!pending.active()) return Status::error("wait_recv: nothing was posted");
  const Status s = do_wait_recv(pending);
  pending = PendingRecv{};
  return s;
}

Status Communicator::all_gather(const void* send, int64_t bytes_each, void* recv) {
  if (bytes_each < 0 || (bytes_each > 0 && (!send || !recv))) return Status::error("all_gather: bad buffer");
  calls_++;
  gather_bytes_ += bytes_each * (size() - 1);
  return bytes_each == 0 ? Status::ok() : do_all_gather(send, bytes_each, recv);
}

Status Communicator::gather(const void* send, int64_t bytes_each, void* recv, int root) {
  TERN_RETURN_IF_ERROR(check_rank("gather", root));
  if (bytes_each < 0 || (bytes_each > 0 && (!send || (rank() == root && !recv)))) {
    return Status::error("gather: bad buffer");
  }
  calls_++;
  if (rank() != root) gather_bytes_ += bytes_each;
  return bytes_each == 0 ? Status::ok() : do_gather(send, bytes_each, recv, root);
}

Status Communicator::all_to_all(const void* send, int64_t bytes_each, void* recv) {
  if (bytes_each < 0 || (bytes_each > 0 && (!send || !recv))) return Status::error("all_to_all: bad buffer");
  calls_++;
  p2p_bytes_ += bytes_each * (size() - 1);
  return bytes_each == 0 ? Status::ok() : do_all_to_all(send, bytes_each, recv);
}

Status Communicator::barrier() {
  calls_++;
  return do_barrier();
}

}  // namespace tern
