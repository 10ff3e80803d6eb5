#include "parallel/local_communicator.h"

#include <fmt/format.h>

#include <cstring>

namespace tern {

Status LocalCommunicator::do_send(const void* data, int64_t bytes, int, int tag) {
  const auto* p = static_cast<const uint8_t*>(data);
  std::lock_guard<std::mutex> lock(mu_);
  queued_[tag].emplace_back(p, p + bytes);
  return Status::ok();
}

Status LocalCommunicator::do_recv(void* data, int64_t bytes, int, int tag) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = queued_.find(tag);
  // One process cannot wait for itself: a receive with nothing sent would block forever.
  if (it == queued_.end() || it->second.empty()) {
    return Status::error(fmt::format("recv: nothing was sent to this rank with tag {}", tag));
  }
  const std::vector<uint8_t>& m = it->second.front();
  if (int64_t(m.size()) != bytes) {
    return Status::error(fmt::format("recv: the message with tag {} has {} bytes, the buffer {}", tag, m.size(), bytes));
  }
  if (bytes > 0) std::memcpy(data, m.data(), size_t(bytes));
  it->second.pop_front();
  return Status::ok();
}

Status LocalCommunicator::do_all_gather(const void* send, int64_t bytes_each, void* recv) {
  if (send != recv) std::memmove(recv, send, size_t(bytes_each));
  return Status::ok();
}

Status LocalCommunicator::do_gather(const void* send, int64_t bytes_each, void* recv, int) {
  return do_all_gather(send, bytes_each, recv);
}

Status LocalCommunicator::do_all_to_all(const void* send, int64_t bytes_each, void* recv) {
  return do_all_gather(send, bytes_each, recv);
}

}  // namespace tern
