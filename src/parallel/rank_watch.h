// Rank 0 of a multi-process job learns within milliseconds that another rank's process ended (issue 17,
// "Faults"). MPI cannot tell it: a collective waiting on a dead peer blocks (OpenMPI 4 over shared
// memory or TCP) until mpirun, about a second later, sends SIGTERM and then SIGKILL to every rank, so a
// server would hang and then vanish with its clients' requests unanswered. Instead every other rank
// holds one TCP connection to rank 0 for its whole life: the kernel closes it when the process ends,
// for whatever reason, and rank 0's watch thread sees the end of stream at once.
//
//   auto w = RankWatch::start(comm, timeout);   // collective: every rank of comm calls it
//   w->arm([](int rank) { ... });               // rank 0: called once, on the watch thread
//   w->disarm();                                // rank 0, before telling the ranks to stop
//
// Set-up: rank 0 listens on an ephemeral port of every interface and broadcasts the port, its IPv4
// addresses and a random nonce; each rank tries the addresses in order, says (nonce, rank) and waits for
// rank 0's echo of the nonce (so a wrong address that happens to accept is never taken for rank 0).
// When any rank cannot connect, start() fails on every rank (one all-gather decides) and the job runs
// without the watch, as before.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "parallel/communicator.h"

namespace tern {

class RankWatch {
 public:
  // Collective over comm (size >= 2). connect_timeout_s bounds each rank's connection attempts and
  // rank 0's wait for all of them.
  static Result<std::unique_ptr<RankWatch>> start(Communicator& comm, double connect_timeout_s = 5.0);
  ~RankWatch();
  RankWatch(const RankWatch&) = delete;
  RankWatch& operator=(const RankWatch&) = delete;

  // Rank 0: from now on, a rank whose connection ends calls on_lost(rank) once (the first one lost), on
  // the watch thread; at once, on this thread, when one was lost before. Other ranks: no effect.
  // on_lost must not call arm() or disarm().
  void arm(std::function<void(int rank)> on_lost);
  // Rank 0: no callback after this returns (the job is ending on purpose: ranks exit when told to stop).
  void disarm();

 private:
  RankWatch(int rank, std::vector<int> fds, std::vector<int> fd_ranks);
  void watch_loop();

  int rank_;
  std::vector<int> fds_;       // rank 0: one per other rank; other ranks: the one to rank 0
  std::vector<int> fd_ranks_;  // rank 0: the rank at the other end of fds_[i]
  int wake_[2] = {-1, -1};     // rank 0: a pipe that ends the watch thread
  std::mutex mu_;              // guards on_lost_ against disarm()
  std::function<void(int)> on_lost_;
  int lost_ = -1;              // the rank seen lost while nothing was armed
  std::thread thread_;
};

}  // namespace tern
