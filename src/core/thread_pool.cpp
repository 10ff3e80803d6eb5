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

// generation_ is the region gate: bits 16 and up count regions, bit 15 says the region is open to
// workers, bits 0-14 count the workers that entered it. A worker enters by a compare-and-swap on the
// open gate, then runs the job and adds one to pending_ (the workers done). A region every thread must
// run (run()) stays open until all have; a region of shared items (for_each_item) is closed by the
// caller once it has claimed the last item, so a worker that had not started by then (its vCPU
// descheduled, or asleep) skips the region instead of the caller waiting for it to wake.
constexpr uint64_t kGenShift = 16;
constexpr uint64_t kOpen = uint64_t(1) << 15;
constexpr uint64_t kEnteredMask = kOpen - 1;

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
    generation_.store(((generation_.load() >> kGenShift) + 1) << kGenShift);  // a closed region: workers leave
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::set_profile(PoolProfile* p) {
  profile_ = p;
  if (p && p->busy_s.size() != size_t(n_threads_)) p->reset(n_threads_);
}

namespace {

// The members one region touches (the pool's own), so run() and for_each_item() share one body.
template <class Stamps>
struct RegionState {
  int n_threads;
  std::atomic<uint64_t>& gate;
  std::atomic<int>& done;
  std::mutex& mutex;
  std::condition_variable& wake;
  std::atomic<int>& sleepers;
  const std::function<void(int, int)>*& job;
  Stamps& stamps;
  PoolProfile* prof;
};

// optional_workers: fn(0, n) returns only when no work is left for anyone (for_each_item), so the
// workers that have not entered by then are not waited for.
template <class Stamps>
void run_region(RegionState<Stamps> r, const std::function<void(int, int)>& fn, bool optional_workers) {
  PoolProfile* prof = r.prof;
  const int64_t t0 = prof ? now_ns() : 0;
  const int n = r.n_threads;
  if (n == 1) {
    fn(0, 1);
    if (prof) {
      const double s = double(now_ns() - t0) * 1e-9;
      ++prof->regions, prof->wall_s += s, prof->busy_s[0] += s;
    }
    return;
  }
  r.job = &fn;
  r.done.store(0, std::memory_order_relaxed);
  if (prof) {
    for (auto& st : r.stamps) st.start_ns = st.end_ns = 0;
  }
  {
    // The lock orders the gate's opening against a worker that is about to sleep.
    std::lock_guard<std::mutex> lock(r.mutex);
    const uint64_t gen = (r.gate.load(std::memory_order_relaxed) >> kGenShift) + 1;
    r.gate.store((gen << kGenShift) | kOpen, std::memory_order_release);
  }
  if (r.sleepers.load(std::memory_order_acquire) > 0) r.wake.notify_all();
  fn(0, n);
  const int64_t t_own = prof ? now_ns() : 0;
  int entered = n - 1;
  if (optional_workers) entered = int(r.gate.fetch_and(~kOpen, std::memory_order_acq_rel) & kEnteredMask);
  while (r.done.load(std::memory_order_acquire) != entered) TERN_CPU_RELAX();
  r.job = nullptr;
  if (!prof) return;
  // The region ends when its last thread does (the caller sees that a little later: spin latency).
  // A worker that skipped it (start 0) counts as late for the whole region.
  int64_t t_end = t_own;
  for (int i = 1; i < n; ++i) t_end = std::max(t_end, r.stamps[size_t(i)].end_ns);
  ++prof->regions;
  prof->wall_s += double(now_ns() - t0) * 1e-9;
  prof->busy_s[0] += double(t_own - t0) * 1e-9;
  prof->end_wait_s[0] += double(t_end - t_own) * 1e-9;
  for (int i = 1; i < n; ++i) {
    const auto& w = r.stamps[size_t(i)];
    if (w.start_ns == 0) {
      prof->start_late_s[size_t(i)] += double(t_end - t0) * 1e-9;
      continue;
    }
    prof->busy_s[size_t(i)] += double(w.end_ns - w.start_ns) * 1e-9;
    prof->start_late_s[size_t(i)] += double(std::max<int64_t>(0, w.start_ns - t0)) * 1e-9;
    prof->end_wait_s[size_t(i)] += double(t_end - w.end_ns) * 1e-9;
  }
}

}  // namespace

void ThreadPool::run(const std::function<void(int, int)>& fn) {
  run_region(RegionState<decltype(stamps_)>{n_threads_, generation_, pending_, mutex_, wake_, sleepers_, job_, stamps_,
                                            profile_},
             fn, /*optional_workers=*/false);
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
  run_region(
      RegionState<decltype(stamps_)>{n_threads_, generation_, pending_, mutex_, wake_, sleepers_, job_, stamps_,
                                     profile_},
      [&](int t, int) {
        for (int64_t i = counter.next.fetch_add(1, std::memory_order_relaxed); i < n_items;
             i = counter.next.fetch_add(1, std::memory_order_relaxed)) {
          fn(t, i);
        }
      },
      /*optional_workers=*/true);
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;  // the last region this worker entered or skipped
  for (;;) {
    uint64_t gate = generation_.load(std::memory_order_acquire);
    for (int spin = 0; (gate >> kGenShift) == seen && spin < kSpinIterations; ++spin) {
      TERN_CPU_RELAX();
      gate = generation_.load(std::memory_order_acquire);
    }
    if ((gate >> kGenShift) == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      sleepers_.fetch_add(1, std::memory_order_acq_rel);
      wake_.wait(lock, [&] { return (generation_.load(std::memory_order_acquire) >> kGenShift) != seen; });
      sleepers_.fetch_sub(1, std::memory_order_acq_rel);
      gate = generation_.load(std::memory_order_acquire);
    }
    if (stop_.load()) return;
    const uint64_t gen = gate >> kGenShift;
    bool entered = false;
    while (gate & kOpen) {
      if (generation_.compare_exchange_weak(gate, gate + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
        entered = true;
        break;
      }
      if ((gate >> kGenShift) != gen) break;  // a newer region opened meanwhile
    }
    if (!entered) {
      // Closed before this worker came (skip it), or superseded: look at the gate again.
      if ((gate >> kGenShift) == gen) seen = gen;
      continue;
    }
    seen = gen;
    if (profile_) {
      WorkerStamp& st = stamps_[size_t(index)];
      st.start_ns = now_ns();
      (*job_)(index, n_threads_);
      st.end_ns = now_ns();
    } else {
      (*job_)(index, n_threads_);
    }
    pending_.fetch_add(1, std::memory_order_acq_rel);
  }
}

int default_thread_count() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace tern
