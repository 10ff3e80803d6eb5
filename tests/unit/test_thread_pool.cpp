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
