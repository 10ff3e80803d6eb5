#include "core/thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <chrono>

#if defined(__x86_64__)
#include <immintrin.h>
#define TERN_CPU_RELAX() _mm_pause()
#else
#define TERN_CPU_RELAX() ((void)0)
#endif

namespace tern {

namespace {
// ~100 µs of spinning at ~40 ns per pause before a worker sleeps.
constexpr int kSpinIterations = 2500;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

void PoolProfile::reset(int n_threads) {
  regions = 0;
  wall_s = 0;
  busy_s.assign(size_t(n_threads), 0.0);
  start_late_s.assign(size_t(n_threads), 0.0);
  end_wait_s.assign(size_t(n_threads), 0.0);
}

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)), stamps_(size_t(n_threads_)) {
  workers_.reserve(n_threads_ - 1);
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::set_profile(PoolProfile* p) {
  profile_ = p;
  if (p && p->busy_s.size() != size_t(n_threads_)) p->reset(n_threads_);
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
  PoolProfile* prof = profile_;
  const int64_t t0 = prof ? now_ns() : 0;
  if (n_threads_ == 1) {
    fn(0, 1);
    if (prof) {
      const double s = double(now_ns() - t0) * 1e-9;
      ++prof->regions, prof->wall_s += s, prof->busy_s[0] += s;
    }
    return;
  }
  job_ = &fn;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  {
    // The lock orders the generation bump against a worker that is about to sleep.
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  if (sleepers_.load(std::memory_order_acquire) > 0) wake_.notify_all();
  fn(0, n_threads_);
  const int64_t t_own = prof ? now_ns() : 0;
  while (pending_.load(std::memory_order_acquire) != 0) TERN_CPU_RELAX();
  job_ = nullptr;
  if (prof) {
    // The region ends when its last thread does (the caller sees that a little later: spin latency).
    int64_t t_end = t_own;
    for (int i = 1; i < n_threads_; ++i) t_end = std::max(t_end, stamps_[size_t(i)].end_ns);
    ++prof->regions;
    prof->wall_s += double(now_ns() - t0) * 1e-9;
    prof->busy_s[0] += double(t_own - t0) * 1e-9;
    prof->end_wait_s[0] += double(t_end - t_own) * 1e-9;
    for (int i = 1; i < n_threads_; ++i) {
      const WorkerStamp& w = stamps_[size_t(i)];
      prof->busy_s[size_t(i)] += double(w.end_ns - w.start_ns) * 1e-9;
      prof->start_late_s[size_t(i)] += double(std::max<int64_t>(0, w.start_ns - t0)) * 1e-9;
      prof->end_wait_s[size_t(i)] += double(t_end - w.end_ns) * 1e-9;
    }
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t align, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  align = std::max<int64_t>(1, align);
  const int64_t units = (n + align - 1) / align;
  const int used = int(std::min<int64_t>(n_threads_, units));
  if (used == 1) {
    fn(0, n);
    return;
  }
  run([&](int t, int) {
    if (t >= used) return;
    const int64_t u0 = units * t / used, u1 = units * (t + 1) / used;
    const int64_t b = u0 * align, e = std::min(n, u1 * align);
    if (b < e) fn(b, e);
  });
}

void ThreadPool::for_each_item(int64_t n_items, const std::function<void(int, int64_t)>& fn) {
  if (n_items <= 0) return;
  if (n_threads_ == 1 || n_items == 1) {
    for (int64_t i = 0; i < n_items; ++i) fn(0, i);
    return;
  }
  // The counter has a cache line of its own: the threads' claims are the only traffic on it.
  struct alignas(64) Counter {
    std::atomic<int64_t> next{0};
  } counter;
  run([&](int t, int) {
    for (int64_t i = counter.next.fetch_add(1, std::memory_order_relaxed); i < n_items;
         i = counter.next.fetch_add(1, std::memory_order_relaxed)) {
      fn(t, i);
    }
  });
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t g = generation_.load(std::memory_order_acquire);
    for (int spin = 0; g == seen && spin < kSpinIterations; ++spin) {
      TERN_CPU_RELAX();
      g = generation_.load(std::memory_order_acquire);
    }
    if (g == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      sleepers_.fetch_add(1, std::memory_order_acq_rel);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      sleepers_.fetch_sub(1, std::memory_order_acq_rel);
      g = generation_.load(std::memory_order_acquire);
    }
    seen = g;
    if (stop_.load()) return;
    if (profile_) {
      WorkerStamp& st = stamps_[size_t(index)];
      st.start_ns = now_ns();
      (*job_)(index, n_threads_);
      st.end_ns = now_ns();
    } else {
      (*job_)(index, n_threads_);
    }
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

int default_thread_count() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace tern
