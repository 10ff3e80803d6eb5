// A persistent pool of worker threads (DESIGN.md: no thread creation per token).
// The calling thread takes part as thread 0, so a pool of N runs N-way parallel with N-1 workers.
// Workers spin briefly on a generation counter before sleeping: a decode step issues hundreds of
// small parallel regions per token, and waking a sleeping thread costs ~10-50 µs each.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tern {

// Where a pool's time goes, summed over the regions run while it is attached (set_profile): what a
// bench prints per decode token. Off (no profile attached) it costs one pointer test per region.
// Seconds; per-thread vectors are indexed by thread (0 = the caller).
struct PoolProfile {
  int64_t regions = 0;
  double wall_s = 0;                // the caller, from run() entry to return
  std::vector<double> busy_s;       // each thread inside fn
  std::vector<double> start_late_s; // each worker: from the region's start to its fn's start (0 for the caller)
  std::vector<double> end_wait_s;   // each thread: from its fn's end to the region's end (the last one to finish)
  void reset(int n_threads);
};

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Runs fn(thread_index, n_threads) once on every thread (caller included) and waits for all.
  // Not re-entrant: fn must not call run() on the same pool.
  void run(const std::function<void(int, int)>& fn);

  // Splits [0, n) into one contiguous chunk per thread, each a multiple of `align` (except the last).
  void parallel_for(int64_t n, int64_t align, const std::function<void(int64_t, int64_t)>& fn);

  // Runs fn(thread, i) for every i in [0, n_items) exactly once, the items handed out one at a time
  // from a shared counter in increasing order: a thread that starts late or streams slower (a vCPU
  // descheduled, or given less memory bandwidth) simply takes fewer, so the region ends within one
  // item of the work running out instead of when the slowest thread's fixed share ends. A worker that
  // has not entered the region by the time the caller has claimed the last item skips it (the caller
  // does not wait for it to be scheduled); one that entered is waited for.
  void for_each_item(int64_t n_items, const std::function<void(int, int64_t)>& fn);

  // Attaches a profile that every later region adds to (null: detach). The caller owns it.
  void set_profile(PoolProfile* p);

 private:
  void worker_loop(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  const std::function<void(int, int)>* job_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<int> sleepers_{0};
  PoolProfile* profile_ = nullptr;
  // With a profile: each worker's fn start and end this region (steady-clock ns), written before its
  // pending_ decrement, read by the caller after it.
  struct alignas(64) WorkerStamp {
    int64_t start_ns = 0, end_ns = 0;
  };
  std::vector<WorkerStamp> stamps_;
};

// The number of threads to use when the user gives none: the cores this process may run on.
int default_thread_count();

}  // namespace tern
