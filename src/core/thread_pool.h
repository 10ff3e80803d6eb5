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
};

// The number of threads to use when the user gives none: the cores this process may run on.
int default_thread_count();

}  // namespace tern
