// The communicator's single-process implementation and the tensor-parallel shard arithmetic
// (parallel/): what every rank holds, checked without MPI.
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "model/model.h"
#include "model/pp_shard.h"
#include "model/tp_shard.h"
#include "parallel/local_communicator.h"
#include "parallel/mpi_communicator.h"
#include "parallel/pp_split.h"
#include "parallel/tp_layout.h"
#include "plan/model_shape.h"
#include "plan/params.h"
#include "test_support.h"

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


// Pipeline stages split by bytes (parallel/pp_layout.h): the contiguous ranges minimising the largest
// stage, the LM head weighing on the last stage.
plan::ModelShape plan_shape(const std::string& name) {
  auto s = plan::load_model_shape(std::string(TERN_SOURCE_DIR) + "/tests/data/plan_configs/" + name + ".json");
  EXPECT_TRUE(s.is_ok()) << s.status().message();
  return s.is_ok() ? *s : plan::ModelShape{};
}

TEST(PpSplit, Llama32_1BShapeGivesTheHeadStageFewerLayers) {
  // 16 layers of 60,817,408 bf16 weights (121.6 MB) + 2 norms; the 128256 × 2048 head (525.3 MB) on the last stage.
  const plan::ModelShape s = plan_shape("llama-3.2-1b");
  const PpStageBytes b = plan::pp_stage_bytes(s, *plan::parse_weight_precision("bf16"));
  ASSERT_EQ(b.layers.size(), 16u);
  EXPECT_DOUBLE_EQ(b.layers[0], 60817408.0 * 2 + 2 * 2048 * 2);
  EXPECT_DOUBLE_EQ(b.last, 128256.0 * 2048 * 2 + 2048 * 2);
  EXPECT_DOUBLE_EQ(b.first, 0);  // the embedding is gathered, a tied one is the head
  // 2 stages: 10 + 6 (1216 MB vs 730 + 525 = 1255 MB); 8 + 8 would give 973 MB vs 1499 MB.
  EXPECT_EQ(pp_split_layers(b, 2), (std::vector<int>{0, 10, 16}));
  const std::vector<double> t2 = pp_stage_totals(b, pp_split_layers(b, 2));
  EXPECT_LT(std::max(t2[0], t2[1]), pp_stage_totals(b, {0, 8, 16})[1]);
  // 4 stages: 5, 5, 5, 1 (608 MB each, the last 122 + 525 = 647 MB; 4 each would make it 1012 MB).
  EXPECT_EQ(pp_split_layers(b, 4), (std::vector<int>{0, 5, 10, 15, 16}));
  // Untied: the same split — the separate embedding is only gathered from on stage 0, the head
  // streamed on the last stage either way.
  plan::ModelShape untied = s;
  untied.tied_embeddings = false;
  const PpStageBytes bu = plan::pp_stage_bytes(untied, *plan::parse_weight_precision("bf16"));
  EXPECT_EQ(pp_split_layers(bu, 2), (std::vector<int>{0, 10, 16}));
  EXPECT_EQ(pp_split_layers(bu, 4), (std::vector<int>{0, 5, 10, 15, 16}));
  // A quantized checkpoint: int4-g128 layers (a quarter the bytes) against the int8 copy of the head
  // tern makes (--lm-head auto): the head weighs 8.6 layers, the last stage keeps 3 of 16.
  const PpStageBytes q = plan::pp_stage_bytes(s, *plan::parse_weight_precision("int4-g128"));
  EXPECT_DOUBLE_EQ(q.last, 128256.0 * (2048 + 4) + 2048 * 2);
  const std::vector<int> qs = pp_split_layers(q, 2);
  EXPECT_LT(16 - qs[1], 6);
}

TEST(PpSplit, EqualLayersSplitByCountLaterStagesTakingTheRemainder) {
  PpStageBytes b;
  b.layers.assign(8, 1.0);
  EXPECT_EQ(pp_split_layers(b, 2), (std::vector<int>{0, 4, 8}));
  EXPECT_EQ(pp_split_layers(b, 3), (std::vector<int>{0, 2, 5, 8}));
  EXPECT_EQ(pp_split_layers(b, 8), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(pp_split_layers(b, 1), (std::vector<int>{0, 8}));
  // Uneven layers (DeepSeek's leading dense layers are small): the bytes balance, not the count.
  PpStageBytes moe;
  moe.layers = {1, 1, 1, 10, 10, 10};
  EXPECT_EQ(pp_split_layers(moe, 2), (std::vector<int>{0, 4, 6}));  // 13 vs 20 (not 3 vs 30)
}

TEST(PpSplit, AHeadHeavierThanTheLayersLeavesTheLastStageOneLayer) {
  // 4 layers of 1, a head of 10: the equal split (2 + 2) gives 2 vs 12; the best is 3 vs 11 — and
  // every stage still runs at least one layer, however heavy the head.
  PpStageBytes b;
  b.layers.assign(4, 1.0);
  b.last = 10;
  EXPECT_EQ(pp_split_layers(b, 2), (std::vector<int>{0, 3, 4}));
  EXPECT_EQ(pp_split_layers(b, 4), (std::vector<int>{0, 1, 2, 3, 4}));
  auto rank1 = pp_layout(b, 1, 2, 2);
  ASSERT_TRUE(rank1.is_ok());
  EXPECT_EQ(rank1->layer0, 3);
  EXPECT_EQ(rank1->layers, 1);
  // Fewer layers than stages is an error, not an empty stage.
  auto few = pp_layout(b, 0, 8, 8);
  ASSERT_FALSE(few.is_ok());
  EXPECT_NE(few.status().message().find("num_hidden_layers = 4"), std::string::npos) << few.status().message();
}

// The engine weighs its bound weights; for a bf16 checkpoint that is the planner's arithmetic (norms
// aside: f32 copies in the engine), and both give the same split. docs-llama-28m: 8 layers of 5.9 MB,
// its tied 8192 × 512 head 8.4 MB: 2 stages split 5 + 3 (29.5 vs 26.1 MB), 3 stages 3 + 3 + 2.
TEST(PpSplit, EngineWeighsItsWeightsLikeThePlanner) {
  auto m = Model::load(test::model_dir("docs-llama-28m"), ModelLoadOptions{});
  ASSERT_TRUE(m.is_ok()) << m.status().message();
  const TransformerWeights& w = (*m)->weights();
  const PpStageBytes eng = pp_stage_bytes(w, double(w.lm_head.bytes()));
  const plan::ModelShape shape = plan::shape_from_config((*m)->config());
  const PpStageBytes pl = plan::pp_stage_bytes(shape, *plan::parse_weight_precision("bf16"));
  ASSERT_EQ(eng.layers.size(), pl.layers.size());
  const double norms_f32 = 2.0 * double(shape.hidden) * 2;  // two [hidden] norms: f32 in the engine, bf16 on disk
  for (size_t i = 0; i < eng.layers.size(); ++i) EXPECT_DOUBLE_EQ(eng.layers[i], pl.layers[i] + norms_f32);
  EXPECT_DOUBLE_EQ(eng.last, pl.last + double(shape.hidden) * 2);
  for (int stages : {2, 3, 4}) EXPECT_EQ(pp_split_layers(eng, stages), pp_split_layers(pl, stages)) << stages;
  EXPECT_EQ(pp_split_layers(eng, 2), (std::vector<int>{0, 5, 8}));
  EXPECT_EQ(pp_split_layers(eng, 3), (std::vector<int>{0, 3, 6, 8}));
}

}  // namespace
}  // namespace tern
