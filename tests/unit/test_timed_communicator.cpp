// The timed communicator (bench_tp / bench_pp's measurement over a shaped link, issue 17 item 5):
// every call is recorded with its kind in call order — --tp-comm int8's all-reduce as the all-gather
// it is — and the ranks' records combine into the link's cost per kind and each rank's own work.
// Behaviour only: no assertion on how long anything took.
#include <gtest/gtest.h>

#include <vector>

#include "parallel/local_communicator.h"
#include "parallel/timed_communicator.h"

namespace tern {
namespace {

TEST(TimedCommunicator, RecordsEveryCallWithItsKindInOrder) {
  LocalCommunicator local;
  TimedCommunicator t(local);
  std::vector<float> x(8, 1.0f);
  std::vector<int8_t> scratch;
  char buf[16] = {};
  ASSERT_TRUE(t.all_reduce_sum(x.data(), 8).is_ok());
  ASSERT_TRUE(t.broadcast(buf, 16, 0).is_ok());
  ASSERT_TRUE(t.all_reduce_sum_int8(x.data(), 1, 8, scratch).is_ok());  // the int8 all-reduce: an all-gather
  ASSERT_TRUE(t.gather(buf, 8, buf + 8, 0).is_ok());
  ASSERT_TRUE(t.send(buf, 4, 0, 3).is_ok());
  ASSERT_TRUE(t.recv(buf, 4, 0, 3).is_ok());
  ASSERT_TRUE(t.barrier().is_ok());
  const std::vector<CommKind> want = {CommKind::AllReduce, CommKind::Broadcast, CommKind::AllGather, CommKind::Gather,
                                      CommKind::P2p,       CommKind::P2p,       CommKind::Barrier};
  ASSERT_EQ(t.calls().size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(t.calls()[i].kind, want[i]) << i;
    EXPECT_GE(t.calls()[i].seconds, 0.f);
    if (i > 0) EXPECT_GE(t.calls()[i].start_s, t.calls()[i - 1].start_s);
  }
  EXPECT_EQ(t.all_reduce_durations().size(), 1u);  // the f32 one
  // The ranks compare collectives only: the two point-to-point calls drop out.
  EXPECT_EQ(collective_calls(t.calls()).size(), 5u);
  // Bytes are still counted by the front door: the int8 all-reduce as 8 codes + one f32 scale.
  EXPECT_EQ(t.stats().all_reduce_bytes, 8 * 4 + (8 + 4));
  EXPECT_EQ(std::string(comm_kind_name(CommKind::AllGather)), "all_gather");
}

TEST(TimedCommunicator, LinkCostPerKindIsTheSumOfEachCallsFastestRank) {
  // Rank 0 arrived late at the all-reduce (it waited 1 ms, rank 1 3 ms): the link took 1 ms.
  const std::vector<std::vector<TimedCall>> ranks = {
      {{CommKind::Broadcast, 0, 0.0001f}, {CommKind::AllReduce, 0, 0.001f}, {CommKind::AllGather, 0, 0.004f}, {CommKind::Gather, 0, 0.002f}},
      {{CommKind::Broadcast, 0, 0.0005f}, {CommKind::AllReduce, 0, 0.003f}, {CommKind::AllGather, 0, 0.0005f}, {CommKind::Gather, 0, 0.001f}},
  };
  const KindSums k = sum_of_min_by_kind(ranks, 0, 4);
  EXPECT_NEAR(k[CommKind::Broadcast], 0.0001, 1e-9);
  EXPECT_NEAR(k[CommKind::AllReduce], 0.001, 1e-9);
  EXPECT_NEAR(k[CommKind::AllGather], 0.0005, 1e-9);
  EXPECT_NEAR(k[CommKind::Gather], 0.001, 1e-9);
  EXPECT_NEAR(k.total(), 0.0026, 1e-9);
  EXPECT_EQ(k.calls[int(CommKind::AllReduce)], 1);
  // A window of calls: only those.
  EXPECT_NEAR(sum_of_min_by_kind(ranks, 1, 2).total(), 0.001, 1e-9);
  // Sequences that stop lining up (another kind at the same index, or a rank short of calls): the
  // common prefix only.
  auto off = ranks;
  off[1][2].kind = CommKind::Barrier;
  EXPECT_NEAR(sum_of_min_by_kind(off, 0, 4).total(), 0.0011, 1e-9);
  off = ranks;
  off[1].resize(1);
  EXPECT_NEAR(sum_of_min_by_kind(off, 0, 4).total(), 0.0001, 1e-9);
  EXPECT_EQ(sum_of_min_by_kind({}, 0, 4).total(), 0);
}

TEST(TimedCommunicator, TimeInCallsOverAWindowClipsCallsAtItsEdges) {
  // Calls at [1, 2], [3, 3.5] and [4.5, 6] s; the window [1.5, 5]: 0.5 + 0.5 + 0.5 s in calls.
  const std::vector<TimedCall> calls = {{CommKind::P2p, 1.0, 1.0f}, {CommKind::Broadcast, 3.0, 0.5f}, {CommKind::P2p, 4.5, 1.5f}};
  EXPECT_NEAR(seconds_in_window(calls, 1.5, 5.0), 1.5, 1e-6);
  EXPECT_NEAR(seconds_in_window(calls, 0, 10), 3.0, 1e-6);
  EXPECT_EQ(seconds_in_window(calls, 2.1, 2.9), 0);  // between calls: all the rank's own work
}

}  // namespace
}  // namespace tern
