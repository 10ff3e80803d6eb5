// Pipeline parallelism (and TP × PP) without MPI: the ranks of a job as threads of this process over
// a test-only communicator (thread_communicator.h), each loading its stage (and tensor-parallel
// slice) of a tiny checkpoint. Rank 0 decodes greedily — one sequence, and a batch of three that
// the pipeline cuts into micro-batches — the other ranks run run_tp_worker; the tokens must be the
// single process's. This covers the layer split, the activations between stages, the hidden rows and
// logits coming back to rank 0, the micro-batches (chunks of a step's rows, cutting sequences too)
// and the tensor-parallel groups inside stages.
#include <gtest/gtest.h>

#include <thread>

#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "kv/paged_kv_cache.h"
#include "kv/sequence_kv_cache.h"
#include "model/decoder.h"
#include "model/ep_shard.h"
#include "model/model.h"
#include "parallel/group_communicator.h"
#include "parallel/pp_layout.h"
#include "parallel_job_threads.h"
#include "test_support.h"

namespace tern {
namespace {

using Tokens = std::vector<std::vector<int32_t>>;

const std::vector<std::vector<int32_t>> kPrompts = {
    {144, 325, 16, 224, 992, 922, 956}, {17, 400, 3, 88}, {512, 7, 640, 641, 9, 12, 300, 301, 5, 44}};

// Greedy continuation of each prompt, all decoded together: one forward_batch per step (the first
// step carries the three prompts), then one logits call over the step's rows.
Tokens greedy_batch(const Model& m, ExecContext& ctx, const std::vector<std::vector<int32_t>>& prompts, int n) {
  const ModelConfig& c = m.config();
  const int S = int(prompts.size());
  constexpr int kBlock = 8, kBlocksEach = 8;
  Decoder dec(m, 16);  // small chunks: the 21 prompt tokens take two
  PagedKvCache kv(c, kBlock, KvDType::F32);
  if (!kv.allocate(S * kBlocksEach).is_ok()) return {};
  std::vector<std::vector<int32_t>> tables(static_cast<size_t>(S));
  for (int s = 0; s < S; ++s) {
    for (int b = 0; b < kBlocksEach; ++b) tables[size_t(s)].push_back(s * kBlocksEach + b);
  }
  Tokens out(static_cast<size_t>(S));
  std::vector<std::vector<int32_t>> next = prompts;
  std::vector<int64_t> pos(size_t(S), 0);
  std::vector<float> hidden(size_t(S) * size_t(c.hidden_size)), logits(size_t(S) * size_t(c.vocab_size));
  for (int i = 0; i < n; ++i) {
    std::vector<int32_t> ids;
    std::vector<SeqStep> steps;
    for (int s = 0; s < S; ++s) {
      ids.insert(ids.end(), next[size_t(s)].begin(), next[size_t(s)].end());
      steps.push_back({pos[size_t(s)], int64_t(next[size_t(s)].size()), tables[size_t(s)].data(), kBlocksEach, 1});
    }
    if (!dec.forward_batch(ctx, kv, ids.data(), steps.data(), S, hidden.data()).is_ok()) return {};
    if (!dec.logits(ctx, hidden.data(), S, logits.data()).is_ok()) return {};
    for (int s = 0; s < S; ++s) {
      const float* row = logits.data() + size_t(s) * size_t(c.vocab_size);
      const int32_t t = int32_t(std::max_element(row, row + c.vocab_size) - row);
      out[size_t(s)].push_back(t);
      pos[size_t(s)] += int64_t(next[size_t(s)].size());
      next[size_t(s)] = {t};
    }
  }
  return out;
}

// Greedy tokens of the job of tp × pp × ep ranks as threads (parallel_job_threads.h); layers:
// --pp-layers (empty: the split by bytes).
Tokens parallel_greedy(const std::string& dir, int tp, int pp, int micro, int n, int ep = 1,
                       const std::vector<int>& layers = {}) {
  Tokens out;
  test::JobLayout l;
  l.tp = tp, l.pp = pp, l.ep = ep, l.micro_batches = micro, l.pp_layers = layers;
  test::run_job_as_threads(dir, l, [&](const Model& m, ExecContext& ctx) { out = greedy_batch(m, ctx, kPrompts, n); });
  return out;
}

Tokens single_greedy(const std::string& dir, int n) {
  auto whole = Model::load(dir);
  EXPECT_TRUE(whole.is_ok()) << whole.status().message();
  if (!whole.is_ok()) return {};
  ThreadPool pool(1);
  ExecContext ctx(pool, CpuFeatures::detect());
  return greedy_batch(**whole, ctx, kPrompts, n);
}

class PpThreads : public ::testing::TestWithParam<const char*> {};

TEST_P(PpThreads, GreedyTokensMatchTheSingleProcess) {
  const std::string dir = test::tiny_arch_dir(GetParam());
  const Tokens want = single_greedy(dir, 8);
  ASSERT_EQ(want.size(), kPrompts.size());
  EXPECT_EQ(parallel_greedy(dir, 1, 2, 1, 8), want) << "PP=2, one micro-batch";
  EXPECT_EQ(parallel_greedy(dir, 1, 2, 2, 8), want) << "PP=2, two micro-batches";
  EXPECT_EQ(parallel_greedy(dir, 1, 2, 3, 8), want) << "PP=2, three micro-batches";
  EXPECT_EQ(parallel_greedy(dir, 1, 2, 8, 8), want) << "PP=2, eight micro-batches (the prompts' rows in chunks of 3)";
  EXPECT_EQ(parallel_greedy(dir, 2, 2, 2, 8), want) << "TP=2 x PP=2";
}

INSTANTIATE_TEST_SUITE_P(Dense, PpThreads,
                         ::testing::Values("llama", "llama_tied", "qwen2", "qwen3", "mistral_swa", "gemma2", "phi3",
                                           "glm4", "gpt2"));

class PpThreadsMoe : public ::testing::TestWithParam<const char*> {};

// Pipeline stages of mixture-of-experts (and DeepSeek's latent attention) layers, alone and with
// tensor-parallel stages (experts and heads cut two ways inside each stage); a batch of three, cut
// into micro-batches.
TEST_P(PpThreadsMoe, GreedyTokensMatchTheSingleProcess) {
  const std::string dir = test::tiny_arch_dir(GetParam());
  const Tokens want = single_greedy(dir, 8);
  ASSERT_EQ(want.size(), kPrompts.size());
  EXPECT_EQ(parallel_greedy(dir, 1, 2, 2, 8), want) << "PP=2";
  EXPECT_EQ(parallel_greedy(dir, 2, 1, 1, 8), want) << "TP=2";
  EXPECT_EQ(parallel_greedy(dir, 2, 2, 2, 8), want) << "TP=2 x PP=2";
}

// --tp 2 --ep 2: two expert groups of two experts, each expert (and the attention, the dense layers
// and the shared expert) cut two ways inside its group; one all-reduce over the 4 ranks per MoE layer.
TEST_P(PpThreadsMoe, TensorTimesExpertParallelGreedyTokensMatchTheSingleProcess) {
  const std::string dir = test::tiny_arch_dir(GetParam());
  const Tokens want = single_greedy(dir, 8);
  ASSERT_EQ(want.size(), kPrompts.size());
  EXPECT_EQ(parallel_greedy(dir, 2, 1, 1, 8, 2), want) << "TP=2 x EP=2";
}

// Expert parallelism: 2 ranks of 2 experts each, 4 ranks of one expert each (top-2 routing: a row's
// two experts may sit on one rank or on two).
TEST_P(PpThreadsMoe, ExpertParallelGreedyTokensMatchTheSingleProcess) {
  const std::string dir = test::tiny_arch_dir(GetParam());
  const Tokens want = single_greedy(dir, 8);
  ASSERT_EQ(want.size(), kPrompts.size());
  EXPECT_EQ(parallel_greedy(dir, 1, 1, 1, 8, 2), want) << "EP=2";
  EXPECT_EQ(parallel_greedy(dir, 1, 1, 1, 8, 4), want) << "EP=4";
}

// Expert groups inside pipeline stages: --pp 2 --ep 2 (each stage two ranks of two experts) and
// --tp 2 --pp 2 --ep 2 (8 ranks: each stage two expert groups of two tensor-parallel ranks).
TEST_P(PpThreadsMoe, PipelineTimesExpertParallelGreedyTokensMatchTheSingleProcess) {
  const std::string dir = test::tiny_arch_dir(GetParam());
  const Tokens want = single_greedy(dir, 8);
  ASSERT_EQ(want.size(), kPrompts.size());
  EXPECT_EQ(parallel_greedy(dir, 1, 2, 2, 8, 2), want) << "PP=2 x EP=2";
  EXPECT_EQ(parallel_greedy(dir, 1, 2, 1, 8, 4), want) << "PP=2 x EP=4";
  EXPECT_EQ(parallel_greedy(dir, 2, 2, 2, 8, 2), want) << "TP=2 x PP=2 x EP=2";
}

INSTANTIATE_TEST_SUITE_P(Moe, PpThreadsMoe, ::testing::Values("mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v3"));

// --pp-layers: stages of the given layer counts instead of the split by bytes (5 + 3 here).
TEST(PpThreadsDocsLlama, StageLayersGivenByHand) {
  const std::string dir = test::model_dir("docs-llama-28m");
  const Tokens want = single_greedy(dir, 4);
  ASSERT_EQ(want.size(), kPrompts.size());
  EXPECT_EQ(parallel_greedy(dir, 1, 2, 2, 4, 1, {7, 1}), want) << "7 + 1";
  EXPECT_EQ(parallel_greedy(dir, 1, 3, 2, 4, 1, {1, 1, 6}), want) << "1 + 1 + 6";
}

TEST(PpThreadsDocsLlama, EightLayersOverTwoAndFourStages) {
  const std::string dir = test::model_dir("docs-llama-28m");
  const Tokens want = single_greedy(dir, 6);
  ASSERT_EQ(want.size(), kPrompts.size());
  EXPECT_EQ(parallel_greedy(dir, 1, 2, 2, 6), want) << "PP=2";
  EXPECT_EQ(parallel_greedy(dir, 2, 2, 2, 6), want) << "TP=2 x PP=2";
  EXPECT_EQ(parallel_greedy(dir, 1, 3, 3, 6), want) << "PP=3 (8 layers by bytes: 3, 3, 2)";
}

TEST(EpShard, KeepsOnlyThisRanksExperts) {
  auto m = Model::load(test::tiny_arch_dir("mixtral"));
  ASSERT_TRUE(m.is_ok()) << m.status().message();
  auto r = ep_expert_range((*m)->config(), 1, 2);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->begin, 2);
  EXPECT_EQ(r->end, 4);
  const TransformerWeights w = ep_shard((*m)->weights(), *r);
  for (const DecoderLayerWeights& l : w.layers) {
    ASSERT_TRUE(l.moe);
    EXPECT_FALSE(l.moe->experts[0].present());
    EXPECT_FALSE(l.moe->experts[1].present());
    EXPECT_TRUE(l.moe->experts[2].present());
    EXPECT_TRUE(l.moe->experts[3].present());
  }
  auto dense = Model::load(test::tiny_arch_dir("llama"));
  ASSERT_TRUE(dense.is_ok());
  auto e = ep_expert_range((*dense)->config(), 0, 2);
  ASSERT_FALSE(e.is_ok());
  EXPECT_NE(e.status().message().find("no mixture-of-experts layers"), std::string::npos);
  EXPECT_FALSE(ep_expert_range((*m)->config(), 0, 8).is_ok());  // 4 experts over 8 ranks
}

TEST(PpLayout, SplitsLayersIntoContiguousStages) {
  // 8 layers, 2 stages of 2 ranks (TP × PP = 2 × 2): rank r is stage r / 2.
  auto a = pp_layout(8, 3, 4, 2);
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(a->stage, 1);
  EXPECT_EQ(a->tp, 2);
  EXPECT_EQ(a->tp_rank, 1);
  EXPECT_EQ(a->layer0, 4);
  EXPECT_EQ(a->layers, 4);
  EXPECT_EQ(a->prev_rank(), 1);
  EXPECT_EQ(a->last_leader(), 2);
  EXPECT_TRUE(a->last());
  auto b = pp_layout(8, 0, 3, 3);  // 8 / 3: 2, 3, 3
  ASSERT_TRUE(b.is_ok());
  EXPECT_EQ(b->layers, 2);
  EXPECT_EQ(b->next_rank(), 1);
  EXPECT_FALSE(pp_layout(8, 0, 3, 2).is_ok());  // 3 ranks are not 2 stages
  auto few = pp_layout(2, 0, 4, 4);
  ASSERT_FALSE(few.is_ok());
  EXPECT_NE(few.status().message().find("num_hidden_layers = 2"), std::string::npos) << few.status().message();
  EXPECT_FALSE(pp_layout(8, 0, 2, 2, 0).is_ok());
}

// --pp-layers: the stages' layer counts replace the split; errors name the flag.
TEST(PpLayout, StageLayersOverrideTheSplit) {
  auto a = pp_layout(8, 1, 2, 2, 1, 0, {7, 1});
  ASSERT_TRUE(a.is_ok()) << a.status().message();
  EXPECT_EQ(a->layer0, 7);
  EXPECT_EQ(a->layers, 1);
  auto error_of = [](const Result<PpLayout>& r) { return r.is_ok() ? std::string("(ok)") : r.status().message(); };
  EXPECT_EQ(error_of(pp_layout(8, 0, 2, 2, 1, 0, {4, 5})),
            "--pp-layers 4,5 adds up to 9 layers but config.json num_hidden_layers = 8");
  EXPECT_EQ(error_of(pp_layout(8, 0, 2, 2, 1, 0, {8})), "--pp-layers 8 lists 1 stage(s) but --pp is 2 (one layer count per stage)");
  EXPECT_EQ(error_of(pp_layout(8, 0, 2, 2, 1, 0, {0, 8})), "--pp-layers 0,8: every stage needs at least one layer");
  auto p = parse_pp_layers("5,3", 2);
  ASSERT_TRUE(p.is_ok());
  EXPECT_EQ(*p, (std::vector<int>{5, 3}));
  for (const char* bad : {"", "5,", ",3", "5,,3", "5;3", "-1,9", "+5,3", " 5,3", "0,8", "1000000000,1", "5.0,3"}) {
    auto r = parse_pp_layers(bad, 2);
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_EQ(r.status().message().rfind("--pp-layers '" + std::string(bad) + "': ", 0), 0u) << r.status().message();
  }
  auto count = parse_pp_layers("2,3,3", 2);
  ASSERT_FALSE(count.is_ok());
  EXPECT_EQ(count.status().message(), "--pp-layers 2,3,3 lists 3 stage(s) but --pp is 2 (one layer count per stage)");
}

// World ranks of --tp T --pp P --ep E: stage r / (T·E), expert group (r % (T·E)) / T, TP index r % T.
TEST(PpLayout, RankGroupsOfEachLayout) {
  const RankGroups a = rank_groups(5, 2, 2);  // --tp 2 --ep 2 --pp 2: stage 1 = ranks 4..7, group {4, 5}
  EXPECT_EQ(a.tp, (std::vector<int>{4, 5}));
  EXPECT_EQ(a.stage, (std::vector<int>{4, 5, 6, 7}));
  const RankGroups b = rank_groups(3, 1, 2);  // --pp 2 --ep 2: stage 1 = ranks 2, 3
  EXPECT_EQ(b.tp, (std::vector<int>{3}));
  EXPECT_EQ(b.stage, (std::vector<int>{2, 3}));
  const RankGroups c = rank_groups(3, 2, 1);  // --tp 2 --pp 2: the stage is the TP group
  EXPECT_EQ(c.tp, (std::vector<int>{2, 3}));
  EXPECT_EQ(c.stage, c.tp);
  // The pipeline layout agrees: a stage of T·E ranks, the same index in the next stage.
  auto p = pp_layout(4, 1, 8, 2);
  ASSERT_TRUE(p.is_ok());
  EXPECT_EQ(p->tp, 4);
  EXPECT_EQ(p->next_rank(), 5);
  EXPECT_EQ(p->last_leader(), 4);
}

// Four thread ranks in two groups {0, 1} and {2, 3}: every collective of a group sees its members only.
TEST(GroupCommunicator, CollectivesStayInsideTheGroup) {
  test::ThreadGroup g(4);
  std::vector<std::thread> ranks;
  std::vector<std::vector<float>> sums(4);
  std::vector<std::vector<int32_t>> gathered(4), a2a(4);
  std::vector<int32_t> bcast(4);
  for (int r = 0; r < 4; ++r) {
    ranks.emplace_back([&, r] {
      test::ThreadComm world(g, r);
      auto gr = make_group_communicator(world, {r / 2 * 2, r / 2 * 2 + 1});
      ASSERT_TRUE(gr.is_ok());
      Communicator& c = **gr;
      EXPECT_EQ(c.size(), 2);
      EXPECT_EQ(c.rank(), r % 2);
      sums[size_t(r)] = {float(r), 10.f * float(r)};
      EXPECT_TRUE(c.all_reduce_sum(sums[size_t(r)].data(), 2).is_ok());
      int32_t v = 100 + r;
      EXPECT_TRUE(c.broadcast(&v, sizeof(v), 1).is_ok());
      bcast[size_t(r)] = v;
      gathered[size_t(r)].resize(2);
      const int32_t mine = r;
      EXPECT_TRUE(c.all_gather(&mine, sizeof(mine), gathered[size_t(r)].data()).is_ok());
      const int32_t send[2] = {10 * r, 10 * r + 1};
      a2a[size_t(r)].resize(2);
      EXPECT_TRUE(c.all_to_all(send, sizeof(int32_t), a2a[size_t(r)].data()).is_ok());
      EXPECT_TRUE(c.barrier().is_ok());
    });
  }
  for (auto& t : ranks) t.join();
  EXPECT_EQ(sums[0], (std::vector<float>{1.f, 10.f}));
  EXPECT_EQ(sums[3], (std::vector<float>{5.f, 50.f}));
  EXPECT_EQ(bcast, (std::vector<int32_t>{101, 101, 103, 103}));
  EXPECT_EQ(gathered[1], (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(gathered[2], (std::vector<int32_t>{2, 3}));
  EXPECT_EQ(a2a[0], (std::vector<int32_t>{0, 10}));   // block 0 of rank 0, block 0 of rank 1
  EXPECT_EQ(a2a[3], (std::vector<int32_t>{21, 31}));  // block 1 of ranks 2 and 3
}

TEST(GroupCommunicator, RefusesARankOutsideIt) {
  test::ThreadGroup g(1);
  test::ThreadComm c(g, 0);
  EXPECT_FALSE(make_group_communicator(c, {1}).is_ok());
  EXPECT_FALSE(make_group_communicator(c, {}).is_ok());
}

}  // namespace
}  // namespace tern
