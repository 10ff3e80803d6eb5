#include "parallel/timed_communicator.h"

#include <algorithm>
#include <chrono>

namespace tern {

namespace {

using Clock = std::chrono::steady_clock;

// Runs `call`, adds its wall seconds to *total (and returns them through *seconds).
template <typename F>
Status timed(double* total, F&& call, double* seconds = nullptr) {
  const auto t0 = Clock::now();
  Status s = call();
  const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
  *total += dt;
  if (seconds) *seconds = dt;
  return s;
}

}  // namespace

Status TimedCommunicator::do_all_reduce_sum(float* data, int64_t n) {
  double dt = 0;
  Status s = timed(&times_.all_reduce_s, [&] { return inner_.all_reduce_sum(data, n); }, &dt);
  durations_.push_back(float(dt));
  return s;
}

Status TimedCommunicator::do_all_reduce_sum_bf16(uint16_t* data, int64_t n) {
  double dt = 0;
  Status s = timed(&times_.all_reduce_s, [&] { return inner_.all_reduce_sum_bf16(data, n); }, &dt);
  durations_.push_back(float(dt));
  return s;
}

Status TimedCommunicator::do_broadcast(void* data, int64_t bytes, int root) {
  return timed(&times_.broadcast_s, [&] { return inner_.broadcast(data, bytes, root); });
}

Status TimedCommunicator::do_send(const void* data, int64_t bytes, int peer, int tag) {
  return timed(&times_.p2p_s, [&] { return inner_.send(data, bytes, peer, tag); });
}

Status TimedCommunicator::do_recv(void* data, int64_t bytes, int peer, int tag) {
  return timed(&times_.p2p_s, [&] { return inner_.recv(data, bytes, peer, tag); });
}

Status TimedCommunicator::do_post_recv(PendingRecv& p) {
  auto inner = std::make_shared<PendingRecv>();
  TERN_RETURN_IF_ERROR(timed(&times_.p2p_s, [&] { return inner_.post_recv(p.data, p.bytes, p.peer, p.tag, inner.get()); }));
  p.impl = inner;
  return Status::ok();
}

Status TimedCommunicator::do_wait_recv(PendingRecv& p) {
  return timed(&times_.p2p_s, [&] { return inner_.wait_recv(*static_cast<PendingRecv*>(p.impl.get())); });
}

Status TimedCommunicator::do_all_gather(const void* send, int64_t bytes_each, void* recv) {
  return timed(&times_.gather_s, [&] { return inner_.all_gather(send, bytes_each, recv); });
}

Status TimedCommunicator::do_gather(const void* send, int64_t bytes_each, void* recv, int root) {
  return timed(&times_.gather_s, [&] { return inner_.gather(send, bytes_each, recv, root); });
}

Status TimedCommunicator::do_all_to_all(const void* send, int64_t bytes_each, void* recv) {
  return timed(&times_.p2p_s, [&] { return inner_.all_to_all(send, bytes_each, recv); });
}

Status TimedCommunicator::do_barrier() {
  return timed(&times_.barrier_s, [&] { return inner_.barrier(); });
}

double sum_of_min_durations(const std::vector<std::vector<float>>& per_rank, size_t first, size_t end) {
  double sum = 0;
  for (size_t i = first; i < end; ++i) {
    float m = -1;
    for (const auto& rank : per_rank) {
      if (i >= rank.size()) return sum;  // a rank made fewer calls: only the common prefix counts
      m = m < 0 ? rank[i] : std::min(m, rank[i]);
    }
    if (m > 0) sum += m;
  }
  return sum;
}

}  // namespace tern
