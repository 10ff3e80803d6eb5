// Each tiny architecture through the serving engine (paged f32 KV pool, scheduler, sampler) against
// transformers' fp32 reference (../shared/models/tiny-archs/<arch>/reference.json: for prompts of 7, 33
// and 300 ids, the last-position logits and 16 greedy tokens), in the situations a server meets:
//  (a) the request alone; (b) in a ragged batch, prefilling while other requests decode; (c) a prefix
//  cache hit (the same prompt again, its full blocks reused); (d) chunked prefill (5 tokens per step);
//  (e) preempted by recompute (a pool too small for it and a later, higher-priority request).
// Each checks the 16 greedy tokens are identical, the logits the engine computed at the last prompt
// position are within 1e-3 of the reference (the bound; f32 weights and KV differ only in
// summation order, ~1e-6), and the engine's reported logprobs (top 20) agree; (c) and (e) also check
// from the engine's own counters that the cache hit / the preemption really happened.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>

#include "engine_parity_util.h"
#include "model_test_util.h"
#include "test_support.h"

namespace tern::test {
namespace {

constexpr double kTol = 1e-3;
constexpr int kNew = 16;

struct RefSeq {
  std::vector<int32_t> ids;
  std::vector<double> last_logits;
  std::vector<int32_t> greedy;
  std::vector<double> logprobs;  // log-softmax of last_logits
};

std::vector<RefSeq> load_refs(const std::string& dir) {
  std::vector<RefSeq> out;
  const auto ref = load_json(dir + "/reference.json");
  if (ref.is_null()) return out;
  for (const auto& s : ref["sequences"]) {
    RefSeq r;
    r.ids = s["ids"].get<std::vector<int32_t>>();
    r.last_logits = s["last_logits"].get<std::vector<double>>();
    r.greedy = s["greedy16"].get<std::vector<int32_t>>();
    double mx = *std::max_element(r.last_logits.begin(), r.last_logits.end()), sum = 0;
    for (double x : r.last_logits) sum += std::exp(x - mx);
    for (double x : r.last_logits) r.logprobs.push_back(x - mx - std::log(sum));
    out.push_back(std::move(r));
  }
  return out;
}

EngineRequest greedy_request(std::vector<int32_t> prompt, int64_t n, int priority = 0) {
  EngineRequest r;
  r.prompt = std::move(prompt);
  r.max_new_tokens = n;
  r.sampling.temperature = 0;
  r.ignore_eos = true;  // the reference's 16 tokens run on past any EOS
  r.top_logprobs = 20;
  r.priority = priority;
  return r;
}

std::vector<int32_t> random_ids(int64_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = int32_t(rng() % uint32_t(vocab));
  return v;
}

class EngineParity : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = tiny_arch_dir(GetParam());
    auto m = Model::load(dir_);
    ASSERT_TRUE(m.is_ok()) << m.status().message();
    model_ = std::move(*m);
    match_reference_attention(*model_, GetParam());
    refs_ = load_refs(dir_);
    ASSERT_EQ(refs_.size(), 3u) << dir_ << "/reference.json";
    vocab_ = model_->config().vocab_size;
  }

  // The request's tokens, its logits at the last prompt position (every time the engine computed
  // them: a cache hit or a recompute may compute them again) and its reported logprobs.
  void check(EngineHarness& h, RequestId id, const RefSeq& ref, const std::string& what) {
    SCOPED_TRACE(GetParam() + " " + what + " n=" + std::to_string(ref.ids.size()));
    const Collected got = h.collector.get(id);
    EXPECT_EQ(got.finish, EngineFinish::kLength) << got.error;
    EXPECT_EQ(got.tokens, ref.greedy) << "greedy tokens";
    const int64_t last = int64_t(ref.ids.size()) - 1;
    int rows = 0;
    for (const auto& r : h.rec.rows) {
      if (r.id != id || r.pos != last) continue;
      ++rows;
      double err = 0;
      for (int64_t v = 0; v < vocab_; ++v) err = std::max(err, std::fabs(r.logits[size_t(v)] - ref.last_logits[size_t(v)]));
      EXPECT_LE(err, kTol) << "max |logit - reference| at the last prompt position";
      max_err_ = std::max(max_err_, err);
    }
    EXPECT_GE(rows, 1) << "the engine never produced logits at the last prompt position";
    ASSERT_FALSE(got.logprobs.empty());
    ASSERT_FALSE(got.top.empty());
    EXPECT_NEAR(got.logprobs[0], ref.logprobs[size_t(ref.greedy[0])], kTol) << "first token's logprob";
    std::vector<double> sorted = ref.logprobs;
    std::sort(sorted.begin(), sorted.end(), std::greater<>());
    ASSERT_EQ(got.top[0].size(), 20u);
    for (size_t k = 0; k < got.top[0].size(); ++k) {
      const TokenLogprob& t = got.top[0][k];
      EXPECT_NEAR(t.logprob, ref.logprobs[size_t(t.id)], kTol) << "top logprob rank " << k;
      EXPECT_NEAR(t.logprob, sorted[k], kTol) << "top logprob rank " << k;
    }
  }

  // The largest logit error seen, in the test's XML record (--gtest_output=xml): how far from 1e-3.
  void TearDown() override { RecordProperty("max_logit_error", std::to_string(max_err_)); }

  double max_err_ = 0;
  std::string dir_;
  std::unique_ptr<Model> model_;
  std::vector<RefSeq> refs_;
  int64_t vocab_ = 0;
};

ExecContext& shared_ctx() {
  static ThreadPool pool(2);
  static ExecContext ctx(pool, CpuFeatures::detect());
  return ctx;
}

TEST_P(EngineParity, Alone) {
  for (const RefSeq& ref : refs_) {
    EngineHarness h(*model_, shared_ctx(), {});
    const RequestId id = h.add(greedy_request(ref.ids, kNew), true);
    h.drain();
    check(h, id, ref, "alone");
  }
}

// The three reference prompts join a batch whose other requests are already decoding, and one more
// arrives while they prefill; 64 tokens per step, so the 300-token prompt runs in chunks beside them.
TEST_P(EngineParity, RaggedBatchBesideOtherRequests) {
  EngineHarness h(*model_, shared_ctx(), {.num_blocks = 256, .block_size = 16, .max_step_tokens = 64});
  for (int i = 0; i < 3; ++i) h.add(greedy_request(random_ids(5 + 29 * i, vocab_, 10 + i), 40), false);
  h.steps(3);
  std::vector<RequestId> ids;
  for (const RefSeq& ref : refs_) ids.push_back(h.add(greedy_request(ref.ids, kNew), true));
  h.steps(1);
  h.add(greedy_request(random_ids(90, vocab_, 20), 8), false);
  h.drain();
  for (size_t i = 0; i < refs_.size(); ++i) {
    check(h, ids[i], refs_[i], "ragged batch");
    bool beside_decodes = false;
    for (const auto& c : h.chunks_of(ids[i])) beside_decodes |= c.prompt && c.others_decoding > 0;
    EXPECT_TRUE(beside_decodes) << "no prompt chunk ran while other requests decoded";
  }
}

// The same prompt twice: the second finds the first's full blocks (4 tokens each) in the prefix
// cache and computes only the rest.
TEST_P(EngineParity, PrefixCacheHit) {
  for (const RefSeq& ref : refs_) {
    EngineHarness h(*model_, shared_ctx(), {.num_blocks = 128, .block_size = 4, .prefix_caching = true});
    const RequestId first = h.add(greedy_request(ref.ids, kNew), true);
    h.drain();
    const int64_t hits_before = h.core->kv().hit_blocks();
    const RequestId second = h.add(greedy_request(ref.ids, kNew), true);
    h.drain();
    check(h, first, ref, "prefix cache, first");
    check(h, second, ref, "prefix cache, second");
    // The full blocks before the one holding the last prompt token came from the cache.
    const int64_t expect_cached = (int64_t(ref.ids.size()) - 1) / 4 * 4;
    EXPECT_EQ(h.collector.get(second).cached_prompt_tokens, expect_cached);
    EXPECT_EQ(h.core->kv().hit_blocks() - hits_before, expect_cached / 4);
    EXPECT_GT(h.core->metrics().prefix_cache_hit_rate, 0);
    const auto chunks = h.chunks_of(second);
    ASSERT_FALSE(chunks.empty());
    EXPECT_EQ(chunks.front().pos0, expect_cached) << "the second request recomputed cached positions";
  }
}

// 5 tokens per step: every prompt is cut (7 -> 5 + 2, 33 -> 7 chunks, 300 -> 60).
TEST_P(EngineParity, ChunkedPrefill) {
  for (const RefSeq& ref : refs_) {
    EngineHarness h(*model_, shared_ctx(), {.num_blocks = 64, .block_size = 16, .max_step_tokens = 5});
    const RequestId id = h.add(greedy_request(ref.ids, kNew), true);
    h.drain();
    check(h, id, ref, "chunked prefill");
    int64_t prompt_chunks = 0;
    for (const auto& c : h.chunks_of(id)) {
      EXPECT_LE(c.n_tokens, 5);
      prompt_chunks += c.prompt;
    }
    EXPECT_EQ(prompt_chunks, (int64_t(ref.ids.size()) + 4) / 5);
  }
}

// The reference request has generated 4 tokens when a higher-priority request arrives whose prompt
// needs all but one block of the pool: the scheduler preempts the reference request (releasing its
// blocks; no prefix cache, so nothing survives), and once the other finishes, recomputes its prompt
// and the tokens it had generated, then carries on.
TEST_P(EngineParity, PreemptionByRecompute) {
  constexpr int kBlock = 16;
  for (const RefSeq& ref : refs_) {
    const int64_t prompt = int64_t(ref.ids.size());
    const int64_t own = KvBlockManager::blocks_for(prompt + kNew - 1, kBlock);
    const int64_t pool = own + 1;  // either request fits alone, not both
    EngineHarness h(*model_, shared_ctx(), {.num_blocks = pool, .block_size = kBlock, .max_step_tokens = 16});
    const RequestId id = h.add(greedy_request(ref.ids, kNew), true);
    for (int i = 0; i < 10000 && h.collector.get(id).tokens.size() < 4; ++i) h.step();
    ASSERT_EQ(h.collector.get(id).tokens.size(), 4u);
    const int64_t other_prompt = (pool - 1) * kBlock;
    const RequestId other = h.add(greedy_request(random_ids(other_prompt, vocab_, 7), 8, /*priority=*/1), false);
    h.drain();
    EXPECT_EQ(h.collector.get(other).finish, EngineFinish::kLength);
    check(h, id, ref, "preempted");
    EXPECT_GE(h.preemptions(id), 1) << "the reference request was never preempted";
    EXPECT_GE(h.core->scheduler().preemptions_total(), 1);
    EXPECT_GE(h.core->metrics().preempted_total, 1);
    // After the preemption it restarted at position 0 and recomputed past its prompt (the generated
    // tokens are part of the recompute).
    const auto chunks = h.chunks_of(id);
    bool restarted = false, recomputed_output = false;
    for (size_t i = 1; i < chunks.size(); ++i) {
      if (chunks[i].pos0 == 0) restarted = true;
      if (restarted && chunks[i].prompt && chunks[i].pos0 + chunks[i].n_tokens > prompt) recomputed_output = true;
    }
    EXPECT_TRUE(restarted);
    EXPECT_TRUE(recomputed_output);
  }
}

// One word per architecture: the helpers that add an architecture add its name here.
INSTANTIATE_TEST_SUITE_P(Archs, EngineParity,
                         ::testing::Values("llama", "llama_tied", "qwen2", "qwen3", "mistral_swa", "gpt2", "gemma2", "phi3",
                                           "glm4", "mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v3"));

}  // namespace
}  // namespace tern::test
