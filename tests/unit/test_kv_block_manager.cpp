#include <gtest/gtest.h>

#include <numeric>

#include "engine/kv_block_manager.h"

namespace tern {
namespace {

std::vector<int32_t> iota_tokens(int n, int start = 0) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  std::iota(t.begin(), t.end(), start);
  return t;
}

// Starts seq, pretends every token was computed, and registers its full blocks.
void run_all(KvBlockManager& kv, SeqKey seq, const std::vector<int32_t>& tokens) {
  auto cached = kv.start(seq, tokens, int64_t(tokens.size()));
  ASSERT_TRUE(cached.is_ok()) << cached.status().message();
  kv.commit(seq, tokens, int64_t(tokens.size()));
}

TEST(KvBlockManager, AllocatesAppendsAndFrees) {
  KvBlockManager kv(8, 4, /*prefix_caching=*/false);
  const auto t = iota_tokens(6);
  auto cached = kv.start(1, t, 6);
  ASSERT_TRUE(cached.is_ok());
  EXPECT_EQ(*cached, 0);
  EXPECT_EQ(kv.table(1).size(), 2u);  // 6 tokens in blocks of 4
  EXPECT_EQ(kv.num_used(), 2);
  EXPECT_TRUE(kv.ensure(1, 8));       // still two blocks
  EXPECT_EQ(kv.table(1).size(), 2u);
  EXPECT_TRUE(kv.ensure(1, 9));
  EXPECT_EQ(kv.table(1).size(), 3u);
  EXPECT_EQ(kv.blocks_needed(1, 20), 2);
  EXPECT_EQ(kv.check_invariants(), "");
  kv.release(1);
  EXPECT_EQ(kv.num_used(), 0);
  EXPECT_EQ(kv.num_available(), 8);
  EXPECT_FALSE(kv.has(1));
  EXPECT_EQ(kv.check_invariants(), "");
}

TEST(KvBlockManager, ExhaustionChangesNothing) {
  KvBlockManager kv(3, 4, false);
  ASSERT_TRUE(kv.start(1, iota_tokens(8), 8).is_ok());
  EXPECT_FALSE(kv.ensure(1, 13));  // would need 2 more, 1 left
  EXPECT_EQ(kv.table(1).size(), 2u);
  auto r = kv.start(2, iota_tokens(8), 8);
  EXPECT_FALSE(r.is_ok());
  EXPECT_FALSE(kv.has(2));
  EXPECT_EQ(kv.num_available(), 1);
  // A reserve (watermark) refuses an allocation that would leave too little.
  EXPECT_FALSE(kv.start(3, iota_tokens(4), 4, /*reserve=*/1).is_ok());
  EXPECT_TRUE(kv.start(3, iota_tokens(4), 4, /*reserve=*/0).is_ok());
  EXPECT_EQ(kv.check_invariants(), "");
}

TEST(KvBlockManager, ChunkedStartCoversOnlyTheChunk) {
  KvBlockManager kv(16, 4, false);
  auto r = kv.start(1, iota_tokens(40), /*max_new_tokens=*/6);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(kv.table(1).size(), 2u);
}

TEST(KvPrefixCache, FullHitStopsBeforeTheBlockOfTheLastToken) {
  KvBlockManager kv(32, 4, true);
  const auto t = iota_tokens(40);  // 10 full blocks
  run_all(kv, 1, t);
  kv.release(1);
  EXPECT_EQ(kv.num_cached(), 10);
  EXPECT_EQ(kv.count_prefix_hits(t), 9);  // block 9 holds token 39: it must be computed again
  auto r = kv.start(2, t, 40);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(*r, 36);
  EXPECT_EQ(kv.table(2).size(), 10u);
  EXPECT_EQ(kv.hit_blocks(), 9);
  EXPECT_EQ(kv.check_invariants(), "");
  // 41 tokens: every full block of the 40 can be reused.
  auto longer = t;
  longer.push_back(99);
  EXPECT_EQ(kv.count_prefix_hits(longer), 10);
}

TEST(KvPrefixCache, PartialHitAndMiss) {
  KvBlockManager kv(32, 4, true);
  const auto a = iota_tokens(16);
  run_all(kv, 1, a);
  auto b = a;
  b[10] = 1000;  // diverges inside block 2
  EXPECT_EQ(kv.count_prefix_hits(b), 2);
  auto c = a;
  c[0] = 1000;
  EXPECT_EQ(kv.count_prefix_hits(c), 0);
  // Same tokens of block 1 after a different block 0: the chain makes it a miss.
  auto d = iota_tokens(16, 1000);
  for (int i = 4; i < 8; ++i) d[size_t(i)] = a[size_t(i)];
  EXPECT_EQ(kv.count_prefix_hits(d), 0);
}

TEST(KvPrefixCache, SharedBlocksAreReferenceCounted) {
  KvBlockManager kv(32, 4, true);
  const auto t = iota_tokens(12);
  run_all(kv, 1, t);  // still running
  auto r = kv.start(2, t, 12);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(*r, 8);
  const auto& t1 = kv.table(1);
  const auto& t2 = kv.table(2);
  EXPECT_EQ(t1[0], t2[0]);
  EXPECT_EQ(t1[1], t2[1]);
  EXPECT_NE(t1[2], t2[2]);
  EXPECT_EQ(kv.refcount(t1[0]), 2);
  EXPECT_EQ(kv.num_used(), 4);
  EXPECT_EQ(kv.check_invariants(), "");
  const int32_t shared = t1[0];
  kv.release(1);
  EXPECT_EQ(kv.refcount(shared), 1);
  EXPECT_EQ(kv.check_invariants(), "");
  kv.release(2);
  EXPECT_EQ(kv.refcount(shared), 0);
  EXPECT_TRUE(kv.is_cached(shared));
  EXPECT_EQ(kv.num_used(), 0);
  EXPECT_EQ(kv.num_available(), 32);  // cached blocks count as available
  EXPECT_EQ(kv.check_invariants(), "");
}

TEST(KvPrefixCache, DuplicateComputationKeepsOneCachedCopy) {
  KvBlockManager kv(32, 4, true);
  const auto t = iota_tokens(8);
  ASSERT_TRUE(kv.start(1, t, 8).is_ok());
  ASSERT_TRUE(kv.start(2, t, 8).is_ok());  // nothing cached yet: both compute
  kv.commit(1, t, 8);
  kv.commit(2, t, 8);
  EXPECT_EQ(kv.num_cached(), 2);
  EXPECT_EQ(kv.check_invariants(), "");
  kv.release(2);  // its duplicates go back to the free list
  kv.release(1);
  EXPECT_EQ(kv.num_cached(), 2);
  auto longer = t;
  longer.push_back(5);
  EXPECT_EQ(kv.count_prefix_hits(longer), 2);
  EXPECT_EQ(kv.check_invariants(), "");
}

TEST(KvPrefixCache, EvictsLeastRecentlyReleasedTailFirst) {
  KvBlockManager kv(6, 4, true);
  const auto a = iota_tokens(8, 0), b = iota_tokens(8, 100), c = iota_tokens(8, 200);
  run_all(kv, 1, a);
  run_all(kv, 2, b);
  run_all(kv, 3, c);
  const auto ta = kv.table(1), tb = kv.table(2);
  kv.release(1);  // LRU: a1, a0
  kv.release(2);  // LRU: a1, a0, b1, b0
  kv.release(3);
  EXPECT_EQ(kv.num_available(), 6);
  EXPECT_EQ(kv.num_cached(), 6);
  // One new block: a's tail goes first; a's head is still a hit.
  ASSERT_TRUE(kv.start(4, iota_tokens(4, 500), 4).is_ok());
  EXPECT_EQ(kv.table(4)[0], ta[1]);
  EXPECT_EQ(kv.evictions(), 1);
  auto a_more = a;
  a_more.push_back(1);
  EXPECT_EQ(kv.count_prefix_hits(a_more), 1);
  // Two more: a0, then b1.
  ASSERT_TRUE(kv.ensure(4, 12));
  EXPECT_EQ(kv.table(4)[1], ta[0]);
  EXPECT_EQ(kv.table(4)[2], tb[1]);
  EXPECT_EQ(kv.count_prefix_hits(a_more), 0);
  auto b_more = b;
  b_more.push_back(1);
  EXPECT_EQ(kv.count_prefix_hits(b_more), 1);
  EXPECT_EQ(kv.check_invariants(), "");
}

TEST(KvPrefixCache, AHitRefreshesRecency) {
  KvBlockManager kv(4, 4, true);
  const auto a = iota_tokens(4, 0), b = iota_tokens(4, 100);
  run_all(kv, 1, a);
  run_all(kv, 2, b);
  const int32_t block_a = kv.table(1)[0];
  kv.release(1);
  kv.release(2);  // LRU: a, b
  auto a_more = a;
  a_more.push_back(7);
  ASSERT_TRUE(kv.start(3, a_more, 5).is_ok());  // reuses a
  EXPECT_EQ(kv.table(3)[0], block_a);
  kv.release(3);  // LRU: b, (new block, uncached: free list), a
  ASSERT_TRUE(kv.start(4, iota_tokens(16, 300), 16).is_ok());  // takes all 4: free ones, then b, then a
  EXPECT_EQ(kv.evictions(), 2);
  EXPECT_EQ(kv.table(4).back(), block_a);
  EXPECT_EQ(kv.check_invariants(), "");
}

TEST(KvPrefixCache, DisabledCachingNeverHits) {
  KvBlockManager kv(8, 4, false);
  const auto t = iota_tokens(12);
  run_all(kv, 1, t);
  kv.release(1);
  EXPECT_EQ(kv.num_cached(), 0);
  EXPECT_EQ(kv.count_prefix_hits(t), 0);
  EXPECT_EQ(*kv.start(2, t, 12), 0);
}

TEST(KvPrefixCache, HashChainDependsOnParentAndTokens) {
  const auto t = iota_tokens(4);
  EXPECT_EQ(kv_block_hash(7, t.data(), 4), kv_block_hash(7, t.data(), 4));
  EXPECT_NE(kv_block_hash(7, t.data(), 4), kv_block_hash(8, t.data(), 4));
  auto u = t;
  std::swap(u[0], u[1]);
  EXPECT_NE(kv_block_hash(7, t.data(), 4), kv_block_hash(7, u.data(), 4));
}

}  // namespace
}  // namespace tern
