// A communicator that times another: every call is forwarded to the wrapped communicator, its wall
// time added up per kind, and each call kept in call order with its kind, start and duration (issue
// 17 item 5: the share of a step spent communicating, measured over a shaped link).
//
// Every rank makes the same collective calls in the same order (all-reduce, all-gather, gather,
// broadcast, barrier), so after a run the ranks can compare their per-call durations: the rank that
// reached a collective last waited only for the link (per-call cost + bytes / bandwidth), the others
// also for it. Σᵢ minᵣ durationᵣ[i] is the link's cost without the load imbalance between ranks
// (bench_tp reports it). --tp-comm int8's all-reduce is an all-gather of int8 codes (the base class
// calls do_all_gather): it is recorded as kind AllGather, which a TP decode step makes for nothing else.
// Point-to-point calls are kept too (kind P2p) but are not matched between ranks.
//
// Wrap the communicator before passing it to Model::load (ModelLoadOptions::tp / pp): the decoder
// then calls through the wrapper. Single-threaded like the calls it times (MPI_THREAD_SERIALIZED).
#pragma once

#include <cstdint>
#include <vector>

#include "parallel/communicator.h"

namespace tern {

enum class CommKind : uint8_t { AllReduce, AllGather, Gather, Broadcast, Barrier, AllToAll, P2p };
const char* comm_kind_name(CommKind k);
// Whether every rank makes the call (so the ranks' sequences of such calls line up).
inline bool is_collective(CommKind k) { return k != CommKind::P2p; }

struct CommTimes {
  double all_reduce_s = 0, broadcast_s = 0, gather_s = 0, p2p_s = 0, barrier_s = 0;
  double total_s() const { return all_reduce_s + broadcast_s + gather_s + p2p_s + barrier_s; }
};

struct TimedCall {
  CommKind kind = CommKind::AllReduce;
  double start_s = 0;  // steady clock, seconds since its epoch (one machine: comparable across ranks)
  float seconds = 0;
};

class TimedCommunicator final : public Communicator {
 public:
  explicit TimedCommunicator(Communicator& inner) : inner_(inner) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  std::string name() const override { return inner_.name(); }

  // Seconds by kind (gather_s holds gathers and all-gathers; all_reduce_s the f32 / bf16 all-reduces).
  const CommTimes& times() const { return times_; }
  // Every call so far, in call order.
  const std::vector<TimedCall>& calls() const { return calls_; }
  // Seconds of each all-reduce so far [calls], in call order (the f32 / bf16 ones).
  std::vector<float> all_reduce_durations() const;

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
  template <typename F>
  Status timed(CommKind kind, double* total, F&& call);
  Communicator& inner_;
  CommTimes times_;
  std::vector<TimedCall> calls_;
};

// Σᵢ minᵣ per_rank[r][i] over the calls [first, end) that every rank made: the all-reduce time a
// run cannot blame on one rank arriving late. per_rank [ranks][calls].
double sum_of_min_durations(const std::vector<std::vector<float>>& per_rank, size_t first, size_t end);

// The collective calls of `calls` in order (P2p dropped): what ranks compare call by call.
std::vector<TimedCall> collective_calls(const std::vector<TimedCall>& calls);

// Per kind, Σᵢ minᵣ of the collective calls [first, end) of every rank's sequence (collective_calls
// of each rank, [ranks][calls]); indexed by CommKind. Stops at the first call whose kinds differ
// between ranks (the sequences no longer line up) or that a rank did not make.
struct KindSums {
  double seconds[7] = {0, 0, 0, 0, 0, 0, 0};
  int64_t calls[7] = {0, 0, 0, 0, 0, 0, 0};
  double operator[](CommKind k) const { return seconds[int(k)]; }
  double total() const {
    double s = 0;
    for (double x : seconds) s += x;
    return s;
  }
};
KindSums sum_of_min_by_kind(const std::vector<std::vector<TimedCall>>& per_rank, size_t first, size_t end);

// Seconds of `calls` spent inside [t0, t1] (steady-clock seconds): a rank's time in its communicator
// over a window; the window less it is the rank's own work (bench_pp: the pipeline's stages).
double seconds_in_window(const std::vector<TimedCall>& calls, double t0, double t1);

}  // namespace tern
