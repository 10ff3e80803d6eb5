// engine/offline_run.h: the closed-loop load that `tern bench offline` and `tern plan --check` share,
// over the real engine with the weightless runner.
#include <gtest/gtest.h>

#include "engine/engine.h"
#include "engine/fake_model_runner.h"
#include "engine/offline_run.h"

namespace tern::test {
namespace {

std::unique_ptr<Engine> make_engine(int64_t max_running) {
  FakeRunnerOptions fo;
  fo.vocab_size = 97;
  fo.max_context = 256;
  EngineOptions eo;
  eo.kv_memory_bytes = size_t(1) << 20;
  eo.max_running = max_running;
  auto e = Engine::create(std::make_unique<FakeModelRunner>(fo), nullptr, eo);
  EXPECT_TRUE(e.is_ok());
  return std::move(e).value();
}

TEST(OfflineRun, EveryRequestMakesItsTokensAndThePhasesAreCounted) {
  auto engine = make_engine(4);
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 10; ++i) prompts.push_back(std::vector<int32_t>(size_t(5 + i), int32_t(i)));
  OfflineRunOptions o;
  o.concurrency = 3;
  o.max_new_tokens = 7;
  auto st = run_offline_load(*engine, prompts, o);
  ASSERT_TRUE(st.is_ok()) << st.status().message();
  EXPECT_EQ(st->requests, 10);
  EXPECT_EQ(st->output_tokens, 70);
  EXPECT_EQ(st->prompt_tokens, 5 * 10 + 45);
  EXPECT_EQ(st->first_wave_prompt_tokens, 5 + 6 + 7);
  EXPECT_EQ(st->ttft_s.size(), 10u);
  EXPECT_EQ(st->e2e_s.size(), 10u);
  EXPECT_EQ(st->itl_s.size(), 60u);  // every token after a request's first
  EXPECT_LE(st->decode_tokens, 60);
  EXPECT_GT(st->first_wave_prefill_s, 0);
  EXPECT_GE(st->metrics.generated_tokens_total, 60) << "the engine's counters, as of the last event";
  engine->shutdown(false);
  EXPECT_EQ(engine->metrics().generated_tokens_total, 70);
  EXPECT_EQ(engine->metrics().kv_blocks_used, 0) << "every request's blocks are back";
}

TEST(OfflineRun, ARefusedRequestIsAnErrorAndTheEngineKeepsWorking) {
  auto engine = make_engine(2);
  std::vector<std::vector<int32_t>> prompts = {{1, 2, 3}, std::vector<int32_t>(1000, 4), {5, 6}};
  OfflineRunOptions o;
  o.concurrency = 2;
  o.max_new_tokens = 4;
  auto st = run_offline_load(*engine, prompts, o);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.status().message().find("request 1"), std::string::npos) << st.status().message();
  auto ok = run_offline_load(*engine, {{7, 8, 9}}, o);
  ASSERT_TRUE(ok.is_ok()) << ok.status().message();
  EXPECT_EQ(ok->output_tokens, 4);
  engine->shutdown(false);
}

TEST(OfflineRun, ConcurrencyBelowOneIsRefused) {
  auto engine = make_engine(2);
  OfflineRunOptions o;
  o.concurrency = 0;
  EXPECT_FALSE(run_offline_load(*engine, {{1}}, o).is_ok());
  engine->shutdown(false);
}

}  // namespace
}  // namespace tern::test
