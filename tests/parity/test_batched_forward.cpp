// The ragged batched forward (CpuModelRunner over a paged pool) against one-sequence runs:
//  - many sequences of different lengths stepping together (prompt chunks mixed with decode
//    tokens) give, at every step, the logits a separate full forward gives at that position;
//  - a prompt fed in chunks of 1, 7 or 64 tokens gives the logits of one pass;
//  - int8 / fp8 / bf16 KV storage stays within a bounded logit error of f32 on a trained model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "engine/cpu_model_runner.h"
#include "model_test_util.h"
#include "test_support.h"

namespace tern::test {
namespace {

constexpr double kLogitTol = 1e-4;  // f32 KV: summation order only (see test_tiny_archs.cpp)

int64_t argmax(const float* x, int64_t n) { return std::max_element(x, x + n) - x; }

std::vector<int32_t> random_ids(int64_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = int32_t(rng() % uint32_t(vocab));
  return v;
}

// A pool with shuffled block ids, handed out per sequence as an engine's block manager would.
struct Blocks {
  std::vector<int32_t> free;
  explicit Blocks(int64_t n, uint32_t seed) : free(size_t(n)) {
    std::iota(free.begin(), free.end(), 0);
    std::shuffle(free.begin(), free.end(), std::mt19937(seed));
  }
  void cover(std::vector<int32_t>& table, int64_t positions, int block_size) {
    while (int64_t(table.size()) * block_size < positions) {
      table.push_back(free.back());
      free.pop_back();
    }
  }
};

struct Seq {
  std::vector<int32_t> tokens;  // prompt, then the generated tokens
  int64_t prompt = 0, done = 0;
  std::vector<int32_t> table;
  std::vector<std::pair<int64_t, std::vector<float>>> seen;  // (position, logits) per step
};

void check_against_single(const Model& model, ExecContext& ctx, const Seq& s, const std::string& what) {
  const int64_t vocab = model.config().vocab_size;
  const auto ref = all_logits(model, ctx, s.tokens);
  ASSERT_EQ(ref.size(), s.tokens.size() * size_t(vocab));
  for (const auto& [pos, got] : s.seen) {
    const float* want = ref.data() + pos * vocab;
    double err = 0;
    for (int64_t v = 0; v < vocab; ++v) err = std::max(err, double(std::abs(got[size_t(v)] - want[v])));
    EXPECT_LE(err, kLogitTol) << what << " position " << pos;
    EXPECT_EQ(argmax(got.data(), vocab), argmax(want, vocab)) << what << " position " << pos;
  }
}

class BatchedForward : public ::testing::TestWithParam<std::string> {};

TEST_P(BatchedForward, RaggedBatchMatchesSeparateRuns) {
  auto model = Model::load(tiny_arch_dir(GetParam()));
  ASSERT_TRUE(model.is_ok()) << model.status().message();
  const Model& m = **model;
  const int64_t vocab = m.config().vocab_size;
  for (const std::string level : {"scalar", "native"}) {
    ThreadPool pool(2);
    const CpuFeatures host = CpuFeatures::detect();
    ExecContext ctx(pool, level == "native" ? host : host.capped(level));
    constexpr int kBlock = 16;
    CpuModelRunner runner(m, ctx, /*max_step_tokens=*/48);  // a step of 5 prompts exceeds it: chunked inside
    ASSERT_TRUE(runner.allocate_kv({200, kBlock, KvDType::F32}).is_ok());
    Blocks blocks(200, 7);
    std::vector<Seq> seqs;
    const int64_t lens[] = {7, 33, 1, 90, 20, 130};
    for (int i = 0; i < 6; ++i) {
      Seq s;
      s.tokens = random_ids(lens[i], vocab, 100 + uint32_t(i));
      s.prompt = lens[i];
      seqs.push_back(std::move(s));
    }
    // Each step: a sequence still in its prompt takes a chunk of up to 24 tokens, the others one
    // decode token (the argmax of their last logits). Sequence 5 joins at step 2.
    std::vector<float> logits;
    for (int step = 0; step < 8; ++step) {
      StepBatch b;
      std::vector<size_t> in_batch;
      for (size_t i = 0; i < seqs.size(); ++i) {
        if (i == 5 && step < 2) continue;
        Seq& s = seqs[i];
        const int64_t n = s.done < s.prompt ? std::min<int64_t>(24, s.prompt - s.done) : 1;
        blocks.cover(s.table, s.done + n, kBlock);
        BatchSequence bs;
        bs.pos0 = s.done;
        bs.n_tokens = n;
        bs.block_table = s.table.data();
        bs.n_blocks = int64_t(s.table.size());
        bs.want_logits = true;
        b.seqs.push_back(bs);
        b.token_ids.insert(b.token_ids.end(), s.tokens.begin() + s.done, s.tokens.begin() + s.done + n);
        in_batch.push_back(i);
      }
      logits.assign(in_batch.size() * size_t(vocab), 0.f);
      ASSERT_TRUE(runner.forward(b, logits.data()).is_ok());
      for (size_t j = 0; j < in_batch.size(); ++j) {
        Seq& s = seqs[in_batch[j]];
        s.done += b.seqs[j].n_tokens;
        const float* row = logits.data() + j * size_t(vocab);
        s.seen.push_back({s.done - 1, std::vector<float>(row, row + vocab)});
        if (s.done >= s.prompt) s.tokens.push_back(int32_t(argmax(row, vocab)));
      }
    }
    for (size_t i = 0; i < seqs.size(); ++i) {
      seqs[i].tokens.pop_back();  // the last argmax was never fed back
      check_against_single(m, ctx, seqs[i], GetParam() + " cpu=" + level + " seq " + std::to_string(i));
    }
  }
}

TEST_P(BatchedForward, ChunkedPrefillMatchesOnePass) {
  auto model = Model::load(tiny_arch_dir(GetParam()));
  ASSERT_TRUE(model.is_ok()) << model.status().message();
  const Model& m = **model;
  const int64_t vocab = m.config().vocab_size;
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  for (int chunk : {1, 7, 64}) {
    for (int block : {16, 5}) {
      CpuModelRunner runner(m, ctx);
      ASSERT_TRUE(runner.allocate_kv({100, block, KvDType::F32}).is_ok());
      Blocks blocks(100, uint32_t(chunk * 10 + block));
      Seq s;
      s.tokens = random_ids(150, vocab, 5);
      std::vector<float> logits(static_cast<size_t>(vocab));
      for (int64_t done = 0; done < 150;) {
        const int64_t n = std::min<int64_t>(chunk, 150 - done);
        blocks.cover(s.table, done + n, block);
        StepBatch b;
        b.seqs.push_back({done, n, s.table.data(), int64_t(s.table.size()), true});
        b.token_ids.assign(s.tokens.begin() + done, s.tokens.begin() + done + n);
        ASSERT_TRUE(runner.forward(b, logits.data()).is_ok());
        done += n;
        if (done % 10 == 0 || done == 150) s.seen.push_back({done - 1, logits});
      }
      check_against_single(m, ctx, s, GetParam() + " chunk " + std::to_string(chunk) + " block " + std::to_string(block));
    }
  }
}

// 64 sequences prefilled in one step (cut into chunks inside), then decoded greedily together:
// token for token what 64 separate greedy runs produce.
TEST_P(BatchedForward, SixtyFourGreedySequencesMatchSeparateRuns) {
  auto model = Model::load(tiny_arch_dir(GetParam()));
  ASSERT_TRUE(model.is_ok()) << model.status().message();
  const Model& m = **model;
  const int64_t vocab = m.config().vocab_size;
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect());
  constexpr int kSeqs = 64, kNew = 6, kBlock = 16;
  CpuModelRunner runner(m, ctx, 256, kSeqs);
  ASSERT_TRUE(runner.allocate_kv({kSeqs * 5, kBlock, KvDType::F32}).is_ok());
  Blocks blocks(kSeqs * 5, 11);
  std::vector<Seq> seqs(kSeqs);
  std::mt19937 rng(3);
  StepBatch b;
  for (int i = 0; i < kSeqs; ++i) {
    seqs[size_t(i)].tokens = random_ids(1 + int64_t(rng() % 40), vocab, 1000 + uint32_t(i));
    seqs[size_t(i)].prompt = int64_t(seqs[size_t(i)].tokens.size());
  }
  std::vector<std::vector<int32_t>> generated(kSeqs);
  std::vector<float> logits(size_t(kSeqs * vocab));
  for (int step = 0; step <= kNew - 1; ++step) {
    b.seqs.clear();
    b.token_ids.clear();
    for (Seq& s : seqs) {
      const int64_t n = int64_t(s.tokens.size()) - s.done;
      blocks.cover(s.table, s.done + n, kBlock);
      b.seqs.push_back({s.done, n, s.table.data(), int64_t(s.table.size()), true});
      b.token_ids.insert(b.token_ids.end(), s.tokens.begin() + s.done, s.tokens.end());
    }
    ASSERT_TRUE(runner.forward(b, logits.data()).is_ok());
    for (int i = 0; i < kSeqs; ++i) {
      Seq& s = seqs[size_t(i)];
      s.done = int64_t(s.tokens.size());
      const int32_t next = int32_t(argmax(logits.data() + size_t(i) * size_t(vocab), vocab));
      s.tokens.push_back(next);
      generated[size_t(i)].push_back(next);
    }
  }
  for (int i = 0; i < kSeqs; ++i) {
    const std::vector<int32_t> prompt(seqs[size_t(i)].tokens.begin(),
                                      seqs[size_t(i)].tokens.begin() + seqs[size_t(i)].prompt);
    EXPECT_EQ(generated[size_t(i)], greedy(m, ctx, prompt, kNew)) << GetParam() << " sequence " << i;
  }
}

TEST_P(BatchedForward, BadStepsAreErrors) {
  auto model = Model::load(tiny_arch_dir(GetParam()));
  ASSERT_TRUE(model.is_ok()) << model.status().message();
  ThreadPool pool(1);
  ExecContext ctx(pool, CpuFeatures::detect());
  CpuModelRunner runner(**model, ctx);
  std::vector<float> logits(size_t((*model)->config().vocab_size));
  std::vector<int32_t> table = {0};
  StepBatch b;
  b.seqs.push_back({0, 2, table.data(), 1, true});
  b.token_ids = {1, 2};
  EXPECT_FALSE(runner.forward(b, logits.data()).is_ok()) << "before allocate_kv";
  ASSERT_TRUE(runner.allocate_kv({4, 16, KvDType::BF16}).is_ok());
  EXPECT_FALSE(runner.allocate_kv({4, 16, KvDType::BF16}).is_ok()) << "allocated once";
  EXPECT_TRUE(runner.forward(b, logits.data()).is_ok());
  b.token_ids = {1, int32_t((*model)->config().vocab_size)};
  EXPECT_FALSE(runner.forward(b, logits.data()).is_ok()) << "id outside the vocabulary";
  b.token_ids = {1, 2};
  table = {4};
  EXPECT_FALSE(runner.forward(b, logits.data()).is_ok()) << "block outside the pool";
  table = {0};
  b.seqs[0].pos0 = 15;
  EXPECT_FALSE(runner.forward(b, logits.data()).is_ok()) << "table too short for positions 15, 16";
  b.seqs[0].pos0 = 0;
  b.token_ids = {1};
  EXPECT_FALSE(runner.forward(b, logits.data()).is_ok()) << "token count mismatch";
}

INSTANTIATE_TEST_SUITE_P(Archs, BatchedForward, ::testing::Values("llama", "qwen3", "mistral_swa", "qwen2"));

}  // namespace
}  // namespace tern::test
