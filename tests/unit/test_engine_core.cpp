#include <gtest/gtest.h>

#include <cmath>

#include "engine/engine_core.h"
#include "engine/fake_model_runner.h"
#include "engine_test_util.h"
#include "text/tokenizer/tokenizer.h"
#include "test_support.h"

namespace tern {
namespace {

using test::Collector;
using test::make_prompt;

constexpr int64_t kVocab = 64;

struct CoreHarness {
  explicit CoreHarness(EngineCoreConfig cfg, FakeRunnerOptions ro = {}, const Tokenizer* tok = nullptr)
      : runner(ro) {
    EXPECT_TRUE(runner.allocate_kv({cfg.num_blocks, cfg.block_size, KvDType::BF16}).is_ok());
    auto c = EngineCore::create(runner, tok, cfg);
    EXPECT_TRUE(c.is_ok()) << c.status().message();
    core = std::move(*c);
  }
  RequestId add(EngineRequest r) {
    const RequestId id = next++;
    const Status st = core->add(id, std::move(r), collector.callback());
    EXPECT_TRUE(st.is_ok()) << st.message();
    return id;
  }
  void drain(int max_steps = 100000) {
    for (int i = 0; i < max_steps && core->has_work(); ++i) {
      core->step();
      ASSERT_EQ(core->kv().check_invariants(), "");
    }
    ASSERT_FALSE(core->has_work());
  }
  FakeModelRunner runner;
  std::unique_ptr<EngineCore> core;
  Collector collector;
  RequestId next = 1;
};

EngineCoreConfig config(int64_t blocks, int bs = 4, int64_t budget = 32, bool cache = true) {
  EngineCoreConfig c;
  c.num_blocks = blocks;
  c.block_size = bs;
  c.prefix_caching = cache;
  c.scheduler.max_step_tokens = budget;
  return c;
}

using test::greedy;

TEST(EngineCore, OneGreedyRequestMatchesTheReference) {
  CoreHarness h(config(64));
  const auto prompt = make_prompt(10, 1, kVocab);
  const RequestId id = h.add(greedy(prompt, 12));
  h.drain();
  const auto got = h.collector.get(id);
  EXPECT_EQ(got.tokens, FakeModelRunner::reference_greedy(prompt, 12, kVocab));
  EXPECT_EQ(got.finish, EngineFinish::kLength);
  EXPECT_EQ(got.finishes, 1);
  EXPECT_EQ(got.completion_tokens, 12);
  EXPECT_EQ(h.core->kv().num_used(), 0);
}

TEST(EngineCore, ManyConcurrentRequestsWithChunkedPrefillMatchTheReference) {
  CoreHarness h(config(256, 4, /*budget=*/24));
  std::vector<std::pair<RequestId, std::vector<int32_t>>> reqs;
  for (int i = 0; i < 20; ++i) {
    auto p = make_prompt(3 + (i * 7) % 50, i, kVocab);
    reqs.push_back({h.add(greedy(p, 5 + i % 9)), p});
  }
  h.drain();
  for (size_t i = 0; i < reqs.size(); ++i) {
    const auto got = h.collector.get(reqs[i].first);
    EXPECT_EQ(got.tokens, FakeModelRunner::reference_greedy(reqs[i].second, 5 + int64_t(i) % 9, kVocab)) << i;
    EXPECT_EQ(got.finishes, 1);
  }
}

// Same requests with and without the prefix cache: identical tokens; with it, shared prefixes hit.
TEST(EngineCore, PrefixCacheGivesIdenticalOutputAndHits) {
  std::vector<std::vector<int32_t>> outs[2];
  double hit_rate = 0;
  int64_t cached_of_last = 0;
  for (int cache = 0; cache < 2; ++cache) {
    CoreHarness h(config(128, 4, 32, cache == 1));
    const auto system = make_prompt(37, 99, kVocab);
    std::vector<RequestId> ids;
    for (int i = 0; i < 8; ++i) {
      auto p = system;
      const auto tail = make_prompt(1 + i, 1000 + i, kVocab);
      p.insert(p.end(), tail.begin(), tail.end());
      ids.push_back(h.add(greedy(p, 6)));
      h.drain();  // one after the other: each finds the previous ones' blocks
    }
    for (RequestId id : ids) outs[cache].push_back(h.collector.get(id).tokens);
    if (cache) {
      hit_rate = h.core->metrics().prefix_cache_hit_rate;
      cached_of_last = h.collector.get(ids.back()).cached_prompt_tokens;
    }
  }
  EXPECT_EQ(outs[0], outs[1]);
  EXPECT_EQ(cached_of_last, 36);  // 9 full blocks of the 37-token system prompt
  EXPECT_GT(hit_rate, 0.5);
}

TEST(EngineCore, PreemptionAndResumeGiveIdenticalTokens) {
  // Sampled (seeded) and greedy requests; a pool so small that they preempt each other.
  auto make = [](int i) {
    EngineRequest r;
    r.prompt = make_prompt(5 + i, 50 + i, kVocab);
    r.max_new_tokens = 20;
    r.sampling.temperature = i % 2 ? 0.8f : 0.0f;
    r.sampling.seed = 1234 + i;
    return r;
  };
  std::vector<std::vector<int32_t>> roomy, tight;
  int64_t preemptions = 0;
  for (int pass = 0; pass < 2; ++pass) {
    CoreHarness h(config(pass == 0 ? 256 : 12, 4, 64, /*cache=*/pass == 1));
    std::vector<RequestId> ids;
    for (int i = 0; i < 6; ++i) ids.push_back(h.add(make(i)));
    h.drain();
    for (RequestId id : ids) (pass == 0 ? roomy : tight).push_back(h.collector.get(id).tokens);
    if (pass == 1) preemptions = h.core->metrics().preempted_total;
  }
  EXPECT_GT(preemptions, 0) << "the small pool must force preemptions";
  EXPECT_EQ(roomy, tight);
}

TEST(EngineCore, CancellationFreesBlocksAndSendsOneLastEvent) {
  CoreHarness h(config(64));
  const RequestId a = h.add(greedy(make_prompt(9, 1, kVocab), 50));
  const RequestId b = h.add(greedy(make_prompt(9, 2, kVocab), 5));
  h.core->step();
  h.core->step();
  EXPECT_GT(h.core->kv().num_used(), 0);
  h.core->cancel(a);
  h.core->cancel(a);     // twice: ignored
  h.core->cancel(4242);  // unknown: ignored
  const auto got = h.collector.get(a);
  EXPECT_EQ(got.finish, EngineFinish::kCancelled);
  EXPECT_EQ(got.finishes, 1);
  EXPECT_EQ(got.tokens.size(), 2u);
  EXPECT_EQ(h.core->kv().check_invariants(), "");
  h.drain();
  EXPECT_EQ(h.collector.get(b).finish, EngineFinish::kLength);
  EXPECT_EQ(h.collector.get(a).events_after_finish, 0);
  EXPECT_EQ(h.core->kv().num_used(), 0);
}

TEST(EngineCore, EosEndsWithoutEmittingIt) {
  CoreHarness h(config(64));
  const auto prompt = make_prompt(6, 3, kVocab);
  const auto ref = FakeModelRunner::reference_greedy(prompt, 10, kVocab);
  EngineRequest r = greedy(prompt, 10);
  r.eos_ids = {ref[3]};
  const size_t first = size_t(std::find(ref.begin(), ref.end(), ref[3]) - ref.begin());
  const RequestId id = h.add(r);
  r.ignore_eos = true;
  const RequestId ignoring = h.add(r);
  h.drain();
  const auto got = h.collector.get(id);
  EXPECT_EQ(got.finish, EngineFinish::kEos);
  EXPECT_EQ(got.tokens, std::vector<int32_t>(ref.begin(), ref.begin() + std::ptrdiff_t(first)));
  EXPECT_EQ(h.collector.get(ignoring).tokens, ref);
}

TEST(EngineCore, ZeroNewTokensFinishesAtOnce) {
  CoreHarness h(config(64));
  const RequestId id = h.add(greedy(make_prompt(6, 3, kVocab), 0));
  h.drain(2);
  const auto got = h.collector.get(id);
  EXPECT_EQ(got.finish, EngineFinish::kLength);
  EXPECT_TRUE(got.tokens.empty());
  EXPECT_EQ(h.runner.calls(), 0);
}

TEST(EngineCore, RejectsWhatCanNeverRun) {
  CoreHarness h(config(/*blocks=*/4, /*bs=*/4), {.vocab_size = kVocab, .max_context = 100});
  auto expect_error = [&](EngineRequest r, const std::string& needle) {
    const Status st = h.core->validate(r);
    ASSERT_FALSE(st.is_ok()) << needle;
    EXPECT_NE(st.message().find(needle), std::string::npos) << st.message();
    EXPECT_EQ(st.message().find('\n'), std::string::npos);
    EXPECT_FALSE(h.core->add(77, r, nullptr).is_ok());
  };
  expect_error(greedy({}, 1), "empty");
  expect_error(greedy({1, 2, int32_t(kVocab)}, 1), "vocabulary");
  expect_error(greedy({1, -1}, 1), "vocabulary");
  expect_error(greedy(make_prompt(101, 1, kVocab), 1), "context");
  expect_error(greedy(make_prompt(10, 1, kVocab), 10), "whole KV pool");  // 19 positions > 16 slots
  EngineRequest r = greedy({1}, 1);
  r.stop = {"x"};
  expect_error(r, "tokenizer");
  r = greedy({1}, 1);
  r.top_logprobs = 21;
  expect_error(r, "top_logprobs");
  r = greedy({1}, 1);
  r.sampling.temperature = -1;
  expect_error(r, "temperature");
  EXPECT_TRUE(h.core->validate(greedy(make_prompt(10, 1, kVocab), 7)).is_ok());  // 16 positions: fits exactly
  EXPECT_FALSE(h.core->has_work());
}

TEST(EngineCore, RunnerErrorsFinishTheStepsRequestsAndTheCoreGoesOn) {
  CoreHarness h(config(64), {.vocab_size = kVocab, .fail_on_call = 1});
  const RequestId a = h.add(greedy(make_prompt(5, 1, kVocab), 4));
  h.core->step();  // call 0: ok
  const RequestId b = h.add(greedy(make_prompt(5, 2, kVocab), 4));
  h.core->step();  // call 1: fails, a and b are both in it
  EXPECT_EQ(h.collector.get(a).finish, EngineFinish::kError);
  EXPECT_NE(h.collector.get(a).error.find("injected"), std::string::npos);
  EXPECT_EQ(h.collector.get(b).finish, EngineFinish::kError);
  EXPECT_EQ(h.core->kv().num_used(), 0);
  const auto p = make_prompt(5, 3, kVocab);
  const RequestId c = h.add(greedy(p, 4));
  h.drain();
  EXPECT_EQ(h.collector.get(c).tokens, FakeModelRunner::reference_greedy(p, 4, kVocab));
}

TEST(EngineCore, LogprobsAreTheLogSoftmaxOfTheRawLogits) {
  CoreHarness h(config(64));
  const auto prompt = make_prompt(7, 5, kVocab);
  EngineRequest r = greedy(prompt, 3);
  r.top_logprobs = 3;
  r.sampling.repetition_penalty = 1.3f;  // must not change the reported logprobs
  const RequestId id = h.add(r);
  h.drain();
  const auto got = h.collector.get(id);
  ASSERT_EQ(got.logprobs.size(), got.tokens.size());
  ASSERT_EQ(got.top.size(), got.tokens.size());
  auto history = prompt;
  std::vector<float> logits(kVocab);
  for (size_t t = 0; t < got.tokens.size(); ++t) {
    FakeModelRunner::reference_logits(history.data(), int64_t(history.size()), kVocab, logits.data());
    double sum = 0;
    for (float l : logits) sum += std::exp(double(l));
    const double lse = std::log(sum);
    EXPECT_NEAR(got.logprobs[t], logits[size_t(got.tokens[t])] - lse, 1e-4);
    ASSERT_EQ(got.top[t].size(), 3u);
    EXPECT_GE(got.top[t][0].logprob, got.top[t][1].logprob);
    EXPECT_GE(got.top[t][1].logprob, got.top[t][2].logprob);
    EXPECT_NEAR(got.top[t][0].logprob, *std::max_element(logits.begin(), logits.end()) - lse, 1e-4);
    history.push_back(got.tokens[t]);
  }
}

TEST(EngineCore, MetricsCountTokensLatenciesAndBlocks) {
  CoreHarness h(config(64));
  for (int i = 0; i < 3; ++i) h.add(greedy(make_prompt(6, i, kVocab), 4));
  EXPECT_EQ(h.core->metrics().waiting, 3);
  h.core->step();
  auto m = h.core->metrics();
  EXPECT_EQ(m.running, 3);
  EXPECT_EQ(m.waiting, 0);
  EXPECT_EQ(m.kv_blocks_used, 6);
  EXPECT_EQ(m.kv_blocks_used + m.kv_blocks_free, m.kv_blocks_total);
  h.drain();
  m = h.core->metrics();
  EXPECT_EQ(m.prompt_tokens_total, 18);
  EXPECT_EQ(m.generated_tokens_total, 12);
  EXPECT_EQ(m.time_to_first_token.count, 3);
  EXPECT_EQ(m.inter_token_latency.count, 9);
  EXPECT_EQ(m.e2e_latency.count, 3);
  EXPECT_EQ(m.e2e_latency.counts.back(), 3);  // cumulative: the last bucket holds everything (fast)
  EXPECT_GT(m.generated_tokens_per_s, 0);
  EXPECT_EQ(m.kv_blocks_used, 0);
}

TEST(EngineCore, StopStringsAndTextWithARealTokenizer) {
  auto tok = Tokenizer::load(test::model_dir("docs-llama-28m"));
  ASSERT_TRUE(tok.is_ok()) << tok.status().message();
  const int64_t vocab = tok->vocab_size();
  const auto prompt = tok->encode("The engine schedules");
  const auto ref = FakeModelRunner::reference_greedy(prompt, 24, vocab);
  const std::string full = tok->decode(ref);
  ASSERT_GT(full.size(), 12u);
  const std::string stop = full.substr(full.size() / 2, 3);
  const std::string before = full.substr(0, full.find(stop));

  CoreHarness h(config(256, 16, 64), {.vocab_size = vocab}, &*tok);
  const RequestId plain = h.add(greedy(prompt, 24));
  EngineRequest r = greedy(prompt, 24);
  r.stop = {stop};
  const RequestId stopped = h.add(r);
  h.drain();
  EXPECT_EQ(h.collector.get(plain).text, full);
  EXPECT_EQ(h.collector.get(stopped).finish, EngineFinish::kStop);
  EXPECT_EQ(h.collector.get(stopped).text, before);
}

}  // namespace
}  // namespace tern
