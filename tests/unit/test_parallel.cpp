// The communicator's single-process implementation and the tensor-parallel shard arithmetic
// (parallel/): what every rank holds, checked without MPI.
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "model/tp_shard.h"
#include "parallel/local_communicator.h"
#include "parallel/mpi_communicator.h"
#include "parallel/tp_layout.h"

namespace tern {
namespace {

TEST(LocalCommunicator, CollectivesAreTheIdentityForOneRank) {
  LocalCommunicator c;
  EXPECT_EQ(c.rank(), 0);
  EXPECT_EQ(c.size(), 1);
  std::vector<float> x = {1.5f, -2.f, 3.f};
  ASSERT_TRUE(c.all_reduce_sum(x.data(), 3).is_ok());
  EXPECT_EQ(x, (std::vector<float>{1.5f, -2.f, 3.f}));
  std::vector<uint16_t> h = {0x3f80, 0x4000};
  ASSERT_TRUE(c.all_reduce_sum_bf16(h.data(), 2).is_ok());
  EXPECT_EQ(h, (std::vector<uint16_t>{0x3f80, 0x4000}));
  int v = 7;
  ASSERT_TRUE(c.broadcast(&v, sizeof(v), 0).is_ok());
  EXPECT_EQ(v, 7);
  int g = 0;
  ASSERT_TRUE(c.gather(&v, sizeof(v), &g, 0).is_ok());
  EXPECT_EQ(g, 7);
  int ag = 0;
  ASSERT_TRUE(c.all_gather(&v, sizeof(v), &ag).is_ok());
  EXPECT_EQ(ag, 7);
  int a2a = 0;
  ASSERT_TRUE(c.all_to_all(&v, sizeof(v), &a2a).is_ok());
  EXPECT_EQ(a2a, 7);
  EXPECT_TRUE(c.barrier().is_ok());
}

TEST(LocalCommunicator, SendToSelfIsReceivedInOrderPerTag) {
  LocalCommunicator c;
  const int a = 1, b = 2, d = 3;
  ASSERT_TRUE(c.send(&a, sizeof(a), 0, 5).is_ok());
  ASSERT_TRUE(c.send(&b, sizeof(b), 0, 5).is_ok());
  ASSERT_TRUE(c.send(&d, sizeof(d), 0, 9).is_ok());
  int x = 0;
  ASSERT_TRUE(c.recv(&x, sizeof(x), 0, 9).is_ok());
  EXPECT_EQ(x, 3);
  ASSERT_TRUE(c.recv(&x, sizeof(x), 0, 5).is_ok());
  EXPECT_EQ(x, 1);
  ASSERT_TRUE(c.recv(&x, sizeof(x), 0, 5).is_ok());
  EXPECT_EQ(x, 2);
  // Nothing left: an error, not a hang; a size mismatch is an error too.
  EXPECT_FALSE(c.recv(&x, sizeof(x), 0, 5).is_ok());
  ASSERT_TRUE(c.send(&a, sizeof(a), 0, 1).is_ok());
  int64_t big = 0;
  EXPECT_FALSE(c.recv(&big, sizeof(big), 0, 1).is_ok());
}

TEST(LocalCommunicator, BadArgumentsAreErrors) {
  LocalCommunicator c;
  int v = 0;
  EXPECT_FALSE(c.broadcast(&v, sizeof(v), 1).is_ok());
  EXPECT_FALSE(c.send(&v, sizeof(v), -1, 0).is_ok());
  EXPECT_FALSE(c.all_reduce_sum(nullptr, 4).is_ok());
  EXPECT_TRUE(c.all_reduce_sum(nullptr, 0).is_ok());
}

TEST(LocalCommunicator, CountsBytesByKind) {
  LocalCommunicator c;
  std::vector<float> x(10);
  ASSERT_TRUE(c.all_reduce_sum(x.data(), 10).is_ok());
  ASSERT_TRUE(c.all_reduce_sum(x.data(), 6).is_ok());
  const int v = 1;
  ASSERT_TRUE(c.send(&v, sizeof(v), 0, 0).is_ok());
  const CommStats s = c.stats();
  EXPECT_EQ(s.all_reduce_bytes, 16 * 4);
  EXPECT_EQ(s.p2p_bytes, 4);
  EXPECT_EQ(s.calls, 3);
  EXPECT_EQ(s.total(), 16 * 4 + 4);
}

TEST(MpiCommunicator, WithoutMpiOpeningSaysSo) {
  if (mpi_available()) GTEST_SKIP() << "built with MPI";
  auto c = open_mpi_communicator();
  ASSERT_FALSE(c.is_ok());
  EXPECT_NE(c.status().message().find("without MPI"), std::string::npos);
}

ModelConfig llama_like(int heads, int kv, int64_t inter, int64_t vocab) {
  ModelConfig c;
  c.n_heads = heads;
  c.n_kv_heads = kv;
  c.head_dim = 64;
  c.hidden_size = int64_t(heads) * 64;
  c.intermediate_size = inter;
  c.vocab_size = vocab;
  c.n_layers = 2;
  return c;
}

TEST(TpLayout, SplitRangeCoversEverythingOnceWithSizesWithinOne) {
  for (int64_t n : {1, 7, 1408, 8192, 128256}) {
    for (int parts : {1, 2, 3, 4, 8}) {
      if (n < parts) continue;
      int64_t next = 0, lo = n, hi = 0;
      for (int p = 0; p < parts; ++p) {
        const TpRange r = split_range(n, parts, p);
        EXPECT_EQ(r.begin, next);
        next = r.end;
        lo = std::min(lo, r.size()), hi = std::max(hi, r.size());
      }
      EXPECT_EQ(next, n);
      EXPECT_LE(hi - lo, 1);
    }
  }
}

TEST(TpLayout, DocsLlamaSplitsTwoWays) {
  const ModelConfig c = llama_like(8, 4, 1408, 8192);  // docs-llama-28m's shape
  for (int r = 0; r < 2; ++r) {
    auto t = tp_layout(c, r, 2);
    ASSERT_TRUE(t.is_ok()) << t.status().message();
    EXPECT_EQ(t->heads, 4);
    EXPECT_EQ(t->head0, 4 * r);
    EXPECT_EQ(t->kv_heads, 2);
    EXPECT_EQ(t->kv_head0, 2 * r);
    EXPECT_FALSE(t->kv_replicated);
    EXPECT_EQ(t->inter.begin, 704 * r);
    EXPECT_EQ(t->inter.size(), 704);
    EXPECT_EQ(t->vocab.begin, 4096 * r);
    EXPECT_EQ(t->vocab_stride, 4096);
    const ModelConfig l = tp_local_config(c, *t);
    EXPECT_EQ(l.n_heads, 4);
    EXPECT_EQ(l.n_kv_heads, 2);
    EXPECT_EQ(l.intermediate_size, 704);
    EXPECT_EQ(l.vocab_size, 8192);  // the vocabulary is gathered, not renumbered
    EXPECT_EQ(l.hidden_size, c.hidden_size);
  }
}

TEST(TpLayout, MoreRanksThanKvHeadsReplicateTheKvHeadOfTheirQueryHeads) {
  const ModelConfig c = llama_like(8, 2, 1000, 1001);  // 4 query heads per KV head
  for (int r = 0; r < 8; ++r) {
    auto t = tp_layout(c, r, 8);
    ASSERT_TRUE(t.is_ok()) << t.status().message();
    EXPECT_TRUE(t->kv_replicated);
    EXPECT_EQ(t->heads, 1);
    EXPECT_EQ(t->kv_heads, 1);
    EXPECT_EQ(t->kv_head0, r / 4);  // query head r reads KV head r / 4
  }
  // Uneven vocabulary: the stride pads to the largest part.
  auto t = tp_layout(c, 0, 8);
  EXPECT_EQ(t->vocab_stride, 126);
}

TEST(TpLayout, ShapesThatDoNotDivideAreErrorsNamingTheField) {
  auto a = tp_layout(llama_like(8, 4, 1408, 8192), 0, 3);
  ASSERT_FALSE(a.is_ok());
  EXPECT_NE(a.status().message().find("num_attention_heads"), std::string::npos);
  auto b = tp_layout(llama_like(12, 3, 1408, 8192), 0, 4);  // 3 KV heads over 4 ranks
  ASSERT_FALSE(b.is_ok());
  EXPECT_NE(b.status().message().find("num_key_value_heads"), std::string::npos);
  EXPECT_FALSE(tp_layout(llama_like(8, 4, 1408, 8192), 2, 2).is_ok());
}

// Mixture of experts: every routed expert's and the shared expert's intermediate columns split as
// the dense FFN's; the local config carries the local widths (the MoE block sizes itself from them).
TEST(TpLayout, ExpertsSplitByTheirIntermediateColumns) {
  ModelConfig moe = llama_like(8, 4, 1408, 8192);
  moe.moe.n_experts = 4;
  moe.moe.top_k = 2;
  moe.moe.expert_intermediate = 768;
  moe.moe.shared_intermediate = 1536;
  ASSERT_TRUE(moe.moe.enabled());
  for (int r = 0; r < 2; ++r) {
    auto t = tp_layout(moe, r, 2);
    ASSERT_TRUE(t.is_ok()) << t.status().message();
    EXPECT_EQ(t->expert_inter.begin, 384 * r);
    EXPECT_EQ(t->expert_inter.size(), 384);
    EXPECT_EQ(t->shared_inter.begin, 768 * r);
    const ModelConfig l = tp_local_config(moe, *t);
    EXPECT_EQ(l.moe.expert_intermediate, 384);
    EXPECT_EQ(l.moe.shared_intermediate, 768);
    EXPECT_EQ(l.moe.n_experts, 4);  // every rank holds a slice of every expert
  }
  moe.moe.expert_intermediate = 1;  // narrower than the ranks
  auto e = tp_layout(moe, 0, 2);
  ASSERT_FALSE(e.is_ok());
  EXPECT_NE(e.status().message().find("moe_intermediate_size"), std::string::npos);
}

// Multi-head latent attention: split by query heads; no KV heads to split (the latent is whole on
// every rank).
TEST(TpLayout, LatentAttentionSplitsByHeads) {
  ModelConfig c = llama_like(8, 8, 1408, 8192);
  c.mla.kv_lora_rank = 64;
  c.mla.qk_rope_head_dim = 16;
  c.mla.qk_nope_head_dim = 32;
  c.mla.v_head_dim = 32;
  ASSERT_TRUE(c.mla.enabled());
  for (int r = 0; r < 4; ++r) {
    auto t = tp_layout(c, r, 4);
    ASSERT_TRUE(t.is_ok()) << t.status().message();
    EXPECT_EQ(t->heads, 2);
    EXPECT_EQ(t->head0, 2 * r);
    EXPECT_FALSE(t->kv_replicated);
    EXPECT_EQ(tp_local_config(c, *t).n_heads, 2);
    EXPECT_EQ(tp_local_config(c, *t).mla.kv_lora_rank, 64);
  }
  EXPECT_FALSE(tp_layout(c, 0, 3).is_ok());  // 8 heads over 3 ranks
}

TEST(TpShard, RowSlicesAreViewsAndColumnSlicesCopies) {
  // w [3, 4] f32: w[r][c] = 10 r + c
  std::vector<float> w(12);
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c) w[size_t(r * 4 + c)] = float(10 * r + c);
  WeightMatrix m;
  m.data = w.data();
  m.rows = 3;
  m.cols = 4;
  const WeightMatrix rows = row_slice(m, 1, 2);
  EXPECT_EQ(rows.data, w.data() + 4);
  EXPECT_EQ(rows.rows, 2);
  EXPECT_EQ(rows.cols, 4);
  WeightArena arena;
  std::vector<float> copy = w;  // column_slice releases the source's whole pages; use a copy
  m.data = copy.data();
  const WeightMatrix cols = column_slice(m, 1, 2, arena);
  ASSERT_EQ(cols.rows, 3);
  ASSERT_EQ(cols.cols, 2);
  const auto* p = static_cast<const float*>(cols.data);
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(p[r * 2], float(10 * r + 1));
    EXPECT_EQ(p[r * 2 + 1], float(10 * r + 2));
  }
}

}  // namespace
}  // namespace tern
