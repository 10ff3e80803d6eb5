#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "core/cpu_features.h"
#include "core/thread_pool.h"

namespace tern {
namespace {

TEST(ThreadPool, RunCallsEveryThreadOnceWithItsIndex) {
  for (int n : {1, 2, 3, 5}) {
    ThreadPool pool(n);
    std::vector<std::atomic<int>> calls(static_cast<size_t>(n));
    pool.run([&](int t, int nt) {
      ASSERT_EQ(nt, n);
      calls[size_t(t)].fetch_add(1);
    });
    for (auto& c : calls) EXPECT_EQ(c.load(), 1);
  }
}

TEST(ThreadPool, ParallelForCoversTheRangeExactlyOnceInAlignedChunks) {
  ThreadPool pool(3);
  for (int64_t n : {1, 7, 64, 1000, 4097}) {
    for (int64_t align : {1, 16, 64}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.parallel_for(n, align, [&](int64_t b, int64_t e) {
        EXPECT_EQ(b % align, 0) << "chunks start on multiples of the alignment";
        for (int64_t i = b; i < e; ++i) hits[size_t(i)].fetch_add(1);
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[size_t(i)].load(), 1) << "n=" << n << " i=" << i;
    }
  }
  pool.parallel_for(0, 1, [&](int64_t, int64_t) { FAIL() << "empty range runs nothing"; });
}

TEST(ThreadPool, ForEachItemRunsEveryItemExactlyOnceForAnyThreadCount) {
  for (int threads : {1, 2, 3, 4, 7}) {
    ThreadPool pool(threads);
    // n below, at and above the thread count, and large enough that every thread takes several.
    for (int64_t n : {1, 2, 3, 5, 6, 7, 8, 100, 4097}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      std::atomic<int> bad_thread{0};
      pool.for_each_item(n, [&](int t, int64_t i) {
        if (t < 0 || t >= threads) bad_thread.fetch_add(1);
        hits[size_t(i)].fetch_add(1);
      });
      EXPECT_EQ(bad_thread.load(), 0);
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[size_t(i)].load(), 1) << "threads=" << threads << " n=" << n << " i=" << i;
    }
    pool.for_each_item(0, [&](int, int64_t) { FAIL() << "no items runs nothing"; });
  }
}

// A thread that stalls on its item does not hold a share of the others: while it waits, the other
// thread takes every remaining item (a static split would leave half of them to the stalled one; the
// wait is bounded so such a bug fails instead of hanging).
TEST(ThreadPool, ForEachItemLetsFreeThreadsTakeTheStalledThreadsItems) {
  ThreadPool pool(2);
  constexpr int64_t kItems = 64;
  std::atomic<int> stalled{-1};
  std::atomic<int64_t> others_done{0};
  std::vector<std::atomic<int>> by(2);
  pool.for_each_item(kItems, [&](int t, int64_t i) {
    if (i == 0) {
      stalled.store(t);
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (others_done.load() < kItems - 1 && std::chrono::steady_clock::now() < give_up) {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
    } else {
      others_done.fetch_add(1);
    }
    by[size_t(t)].fetch_add(1);
  });
  ASSERT_GE(stalled.load(), 0);
  EXPECT_EQ(by[0].load() + by[1].load(), kItems);
  EXPECT_EQ(by[size_t(1 - stalled.load())].load(), kItems - 1);
}

TEST(ThreadPool, ProfileCountsRegionsAndEveryThreadsWork) {
  ThreadPool pool(2);
  PoolProfile prof;
  pool.set_profile(&prof);
  for (int i = 0; i < 10; ++i) pool.run([](int, int) {});
  pool.parallel_for(100, 1, [](int64_t, int64_t) {});
  pool.set_profile(nullptr);
  pool.run([](int, int) {});  // detached: not counted
  EXPECT_EQ(prof.regions, 11);
  ASSERT_EQ(prof.busy_s.size(), 2u);
  ASSERT_EQ(prof.start_late_s.size(), 2u);
  ASSERT_EQ(prof.end_wait_s.size(), 2u);
  for (int t = 0; t < 2; ++t) {
    EXPECT_GE(prof.busy_s[size_t(t)], 0.0);
    EXPECT_GE(prof.end_wait_s[size_t(t)], 0.0);
  }
  EXPECT_GE(prof.wall_s, prof.busy_s[0]);
}

// Thousands of back-to-back regions, with pauses long enough for workers to fall asleep between
// some of them: a lost wake-up would hang here, a missed job would miscount.
TEST(ThreadPool, ManyRegionsWithSleepingWorkersLoseNothing) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  for (int i = 0; i < 3000; ++i) {
    if (i % 500 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    pool.run([&](int t, int) { total.fetch_add(t + 1); });
  }
  EXPECT_EQ(total.load(), 3000 * (1 + 2));
}

// Shared-item regions may end without a worker that had not started (it skips the region): mixed
// back to back with regions every thread must run, nothing is lost or run twice, and a worker never
// runs a region's job after the region ended (the job's captures are gone by then).
TEST(ThreadPool, ItemRegionsMixedWithFullRegionsLoseNothing) {
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    int64_t items = 0, full = 0;
    std::atomic<int64_t> items_run{0}, full_run{0};
    for (int i = 0; i < 4000; ++i) {
      if (i % 1000 == 999) std::this_thread::sleep_for(std::chrono::milliseconds(2));
      const int64_t n = i % 5;  // 0 .. 4 items: fewer than, as many as and more than the threads
      std::atomic<bool> open{true};
      pool.for_each_item(n, [&](int, int64_t) {
        EXPECT_TRUE(open.load());
        items_run.fetch_add(1);
      });
      open.store(false);
      items += n;
      pool.run([&](int, int) { full_run.fetch_add(1); });
      full += threads;
    }
    EXPECT_EQ(items_run.load(), items);
    EXPECT_EQ(full_run.load(), full);
  }
}

TEST(ThreadPool, DefaultThreadCountIsPositive) { EXPECT_GE(default_thread_count(), 1); }

TEST(CpuFeatures, CappingOnlyRemovesFeatures) {
  const CpuFeatures host = CpuFeatures::detect();
  const CpuFeatures scalar = host.capped("scalar");
  EXPECT_FALSE(scalar.avx2 || scalar.avx512 || scalar.avx512_bf16 || scalar.amx_bf16);
  EXPECT_EQ(scalar.describe(), "scalar");
  const CpuFeatures avx2 = host.capped("avx2");
  EXPECT_EQ(avx2.avx2, host.avx2);
  EXPECT_FALSE(avx2.avx512 || avx2.amx_bf16);
  const CpuFeatures all = host.capped("amx");
  EXPECT_EQ(all.describe(), host.describe());
  // AMX implies AVX-512 implies AVX2 on every CPU that has them.
  if (host.amx_bf16) EXPECT_TRUE(host.avx512);
  if (host.avx512) EXPECT_TRUE(host.avx2);
}

}  // namespace
}  // namespace tern
