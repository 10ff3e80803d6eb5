#include "parallel/timed_communicator.h"

#include <algorithm>
#include <chrono>

namespace tern {

namespace {

using Clock = std::chrono::steady_clock;

double now_s() { return std::chrono::duration<double>(Clock::now().time_since_epoch()).count(); }

}  // namespace

const char* comm_kind_name(CommKind k) {
  switch (k) {
    case CommKind::AllReduce: return "all_reduce";
    case CommKind::AllGather: return "all_gather";
    case CommKind::Gather: return "gather";
    case CommKind::Broadcast: return "broadcast";
    case CommKind::Barrier: return "barrier";
    case CommKind::AllToAll: return "all_to_all";
    case CommKind::P2p: return "p2p";
  }
  return "?";
}

// Runs `call`, adds its wall seconds to *total and records it.
template <typename F>
Status TimedCommunicator::timed(CommKind kind, double* total, F&& call) {
  const double t0 = now_s();
  Status s = call();
  const double dt = now_s() - t0;
  *total += dt;
  calls_.push_back({kind, t0, float(dt)});
  return s;
}

std::vector<float> TimedCommunicator::all_reduce_durations() const {
  std::vector<float> d;
  for (const TimedCall& c : calls_) {
    if (c.kind == CommKind::AllReduce) d.push_back(c.seconds);
  }
  return d;
}

Status TimedCommunicator::do_all_reduce_sum(float* data, int64_t n) {
  return timed(CommKind::AllReduce, &times_.all_reduce_s, [&] { return inner_.all_reduce_sum(data, n); });
}

Status TimedCommunicator::do_all_reduce_sum_bf16(uint16_t* data, int64_t n) {
  return timed(CommKind::AllReduce, &times_.all_reduce_s, [&] { return inner_.all_reduce_sum_bf16(data, n); });
}

Status TimedCommunicator::do_broadcast(void* data, int64_t bytes, int root) {
  return timed(CommKind::Broadcast, &times_.broadcast_s, [&] { return inner_.broadcast(data, bytes, root); });
}

Status TimedCommunicator::do_send(const void* data, int64_t bytes, int peer, int tag) {
  return timed(CommKind::P2p, &times_.p2p_s, [&] { return inner_.send(data, bytes, peer, tag); });
}

Status TimedCommunicator::do_recv(void* data, int64_t bytes, int peer, int tag) {
  return timed(CommKind::P2p, &times_.p2p_s, [&] { return inner_.recv(data, bytes, peer, tag); });
}

Status TimedCommunicator::do_post_recv(PendingRecv& p) {
  auto inner = std::make_shared<PendingRecv>();
  TERN_RETURN_IF_ERROR(
      timed(CommKind::P2p, &times_.p2p_s, [&] { return inner_.post_recv(p.data, p.bytes, p.peer, p.tag, inner.get()); }));
  p.impl = inner;
  return Status::ok();
}

Status TimedCommunicator::do_wait_recv(PendingRecv& p) {
  return timed(CommKind::P2p, &times_.p2p_s, [&] { return inner_.wait_recv(*static_cast<PendingRecv*>(p.impl.get())); });
}

Status TimedCommunicator::do_all_gather(const void* send, int64_t bytes_each, void* recv) {
  return timed(CommKind::AllGather, &times_.gather_s, [&] { return inner_.all_gather(send, bytes_each, recv); });
}

Status TimedCommunicator::do_gather(const void* send, int64_t bytes_each, void* recv, int root) {
  return timed(CommKind::Gather, &times_.gather_s, [&] { return inner_.gather(send, bytes_each, recv, root); });
}

Status TimedCommunicator::do_all_to_all(const void* send, int64_t bytes_each, void* recv) {
  return timed(CommKind::AllToAll, &times_.p2p_s, [&] { return inner_.all_to_all(send, bytes_each, recv); });
}

Status TimedCommunicator::do_barrier() {
  return timed(CommKind::Barrier, &times_.barrier_s, [&] { return inner_.barrier(); });
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

std::vector<TimedCall> collective_calls(const std::vector<TimedCall>& calls) {
  std::vector<TimedCall> out;
  for (const TimedCall& c : calls) {
    if (is_collective(c.kind)) out.push_back(c);
  }
  return out;
}

KindSums sum_of_min_by_kind(const std::vector<std::vector<TimedCall>>& per_rank, size_t first, size_t end) {
  KindSums k;
  if (per_rank.empty()) return k;
  for (size_t i = first; i < end; ++i) {
    float m = -1;
    for (const auto& rank : per_rank) {
      if (i >= rank.size() || rank[i].kind != per_rank[0][i].kind) return k;
      m = m < 0 ? rank[i].seconds : std::min(m, rank[i].seconds);
    }
    k.seconds[int(per_rank[0][i].kind)] += std::max(0.f, m);
    k.calls[int(per_rank[0][i].kind)] += 1;
  }
  return k;
}

double seconds_in_window(const std::vector<TimedCall>& calls, double t0, double t1) {
  double s = 0;
  for (const TimedCall& c : calls) {
    const double a = std::max(t0, c.start_s), b = std::min(t1, c.start_s + double(c.seconds));
    if (b > a) s += b - a;
  }
  return s;
}

}  // namespace tern
