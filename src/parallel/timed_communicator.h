// A communicator that times another: every call is forwarded to the wrapped communicator and its
// wall time added up per kind, and each all-reduce's duration is kept in call order (issue 17
// item 5: the share of a step spent communicating, measured over a shaped link).
//
// Every rank makes the same all-reduces in the same order, so after a run the ranks can compare
// their per-call durations: the rank that reached an all-reduce last waited only for the link
// (latency + bytes / bandwidth), the others also for it. Σᵢ minᵣ durationᵣ[i] is the link's cost
// without the load imbalance between ranks (bench_tp reports it).
//
// Wrap the communicator before passing it to Model::load (ModelLoadOptions::tp): the decoder then
// calls through the wrapper. Single-threaded like the calls it times (MPI_THREAD_SERIALIZED).
#pragma once

#include <cstdint>
#include <vector>

#include "parallel/communicator.h"

namespace tern {

struct CommTimes {
  double all_reduce_s = 0, broadcast_s = 0, gather_s = 0, p2p_s = 0, barrier_s = 0;
  double total_s() const { return all_reduce_s + broadcast_s + gather_s + p2p_s + barrier_s; }
};

class TimedCommunicator final : public Communicator {
 public:
  explicit TimedCommunicator(Communicator& inner) : inner_(inner) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  std::string name() const override { return inner_.name(); }

  const CommTimes& times() const { return times_; }
  // Seconds of each all-reduce so far [calls], in call order.
  const std::vector<float>& all_reduce_durations() const { return durations_; }

 protected:
  Status do_all_reduce_sum(float* data, int64_t n) override;
  Status do_all_reduce_sum_bf16(uint16_t* data, int64_t n) override;
  Status do_broadcast(void* data, int64_t bytes, int root) override;
  Status do_send(const void* data, int64_t bytes, int peer, int tag) override;
  Status do_recv(void* data, int64_t bytes, int peer, int tag) override;
  Status do_all_gather(const void* send, int64_t bytes_each, void* recv) override;
  Status do_gather(const void* send, int64_t bytes_each, void* recv, int root) override;
  Status do_all_to_all(const void* send, int64_t bytes_each, void* recv) override;
  Status do_barrier() override;
  Status do_post_recv(PendingRecv& pending) override;
  Status do_wait_recv(PendingRecv& pending) override;

 private:
  Communicator& inner_;
  CommTimes times_;
  std::vector<float> durations_;
};

// Σᵢ minᵣ per_rank[r][i] over the calls [first, end) that every rank made: the all-reduce time a
// run cannot blame on one rank arriving late. per_rank [ranks][calls].
double sum_of_min_durations(const std::vector<std::vector<float>>& per_rank, size_t first, size_t end);

}  // namespace tern
