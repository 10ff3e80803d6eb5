// RankWatch (parallel/rank_watch.h): rank 0 hears at once, and once, that another rank's process is gone
// — here a rank's watch is destroyed, which closes its connection exactly as the kernel does when the
// process ends — and hears nothing once disarmed. The ranks are threads over the test communicator.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "parallel/rank_watch.h"
#include "thread_communicator.h"

namespace tern::test {
namespace {

// Starts the watch on `n` thread ranks; watches[r] is rank r's.
std::vector<std::unique_ptr<RankWatch>> start_watches(ThreadGroup& g, int n) {
  std::vector<std::unique_ptr<RankWatch>> watches;
  watches.resize(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) {
    threads.emplace_back([&, r] {
      ThreadComm comm(g, r);
      auto w = RankWatch::start(comm);
      EXPECT_TRUE(w.is_ok()) << w.status().message();
      if (w.is_ok()) watches[size_t(r)] = std::move(w).value();
    });
  }
  for (auto& t : threads) t.join();
  return watches;
}

TEST(RankWatch, RankZeroHearsWhichRankEndedOnce) {
  ThreadGroup g(3);
  auto watches = start_watches(g, 3);
  ASSERT_TRUE(watches[0] && watches[1] && watches[2]);
  std::promise<int> lost;
  std::atomic<int> calls{0};
  watches[0]->arm([&](int rank) {
    if (calls++ == 0) lost.set_value(rank);
  });
  watches[2].reset();  // rank 2's process "ends"
  auto f = lost.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  EXPECT_EQ(f.get(), 2);
  watches[1].reset();  // a second loss is not reported again
  watches[0].reset();
  EXPECT_EQ(calls.load(), 1);
}

TEST(RankWatch, DisarmedWatchStaysQuietWhenRanksExit) {
  ThreadGroup g(2);
  auto watches = start_watches(g, 2);
  ASSERT_TRUE(watches[0] && watches[1]);
  std::atomic<int> calls{0};
  watches[0]->arm([&](int) { calls++; });
  watches[0]->disarm();  // as rank 0 does before telling the ranks to stop
  watches[1].reset();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  watches[0].reset();
  EXPECT_EQ(calls.load(), 0);
}

TEST(RankWatch, ALossBeforeArmingIsReportedWhenArmed) {
  ThreadGroup g(2);
  auto watches = start_watches(g, 2);
  ASSERT_TRUE(watches[0] && watches[1]);
  watches[1].reset();
  // The watch thread may not have seen it yet: arm until the callback has run (bounded).
  std::atomic<int> got{-1};
  for (int i = 0; i < 600 && got.load() < 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    watches[0]->arm([&](int rank) { got = rank; });
  }
  EXPECT_EQ(got.load(), 1);
}

TEST(RankWatch, OneRankIsNotAJob) {
  ThreadGroup g(1);
  ThreadComm comm(g, 0);
  EXPECT_FALSE(RankWatch::start(comm).is_ok());
}

}  // namespace
}  // namespace tern::test
