// The threaded Engine (engine.h) over a fake runner: creation and pool sizing, concurrent adds,
// streaming, cancellation, shutdown, metrics, errors.
#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <thread>

#include "engine/engine.h"
#include "engine/fake_model_runner.h"
#include "engine/kv_pool_size.h"
#include "engine_test_util.h"

namespace tern {
namespace {

using namespace std::chrono_literals;
using test::Collector;
using test::make_prompt;

constexpr int64_t kVocab = 64;

std::unique_ptr<Engine> make_engine(FakeRunnerOptions ro = {}, EngineOptions eo = {}) {
  if (eo.kv_memory_bytes == 0) eo.kv_memory_bytes = size_t(256) * 16 * 256;  // 256 blocks of 16 tokens
  auto e = Engine::create(std::make_unique<FakeModelRunner>(ro), nullptr, eo);
  EXPECT_TRUE(e.is_ok()) << e.status().message();
  return e.is_ok() ? std::move(*e) : nullptr;
}

bool wait_for(const std::function<bool()>& done, std::chrono::milliseconds limit = 20s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

using test::greedy;

TEST(EngineApi, SizesThePoolFromTheBudget) {
  auto e = make_engine({}, {.kv_memory_bytes = 10 * 16 * 256 + 100});
  ASSERT_TRUE(e);
  EXPECT_EQ(e->metrics().kv_blocks_total, 10);
  auto tiny = Engine::create(std::make_unique<FakeModelRunner>(), nullptr, {.kv_memory_bytes = 100});
  ASSERT_FALSE(tiny.is_ok());
  EXPECT_NE(tiny.status().message().find("holds no block"), std::string::npos);
  auto bad = Engine::create(std::make_unique<FakeModelRunner>(), nullptr, {.block_size = 0});
  EXPECT_FALSE(bad.is_ok());
}

TEST(EngineApi, DefaultBudgetIsAShareOfAvailableMemory) {
  FakeModelRunner r({.max_context = 1 << 20});
  EngineOptions o;
  auto plan = plan_kv_pool(r, o, size_t(8) << 30);
  ASSERT_TRUE(plan.is_ok());
  EXPECT_TRUE(plan->default_budget);
  EXPECT_EQ(plan->budget_bytes, size_t(2) << 30);
  EXPECT_EQ(plan->num_blocks, int64_t((size_t(2) << 30) / (16 * 256)));
  plan = plan_kv_pool(r, o, std::nullopt);
  ASSERT_TRUE(plan.is_ok());
  EXPECT_EQ(plan->budget_bytes, size_t(1) << 30);
  // Never more blocks than max_running sequences of the full context can use.
  FakeModelRunner small({.max_context = 64});
  plan = plan_kv_pool(small, {.max_running = 2}, size_t(8) << 30);
  EXPECT_EQ(plan->num_blocks, 8);
  EXPECT_TRUE(available_memory_bytes().has_value());
  EXPECT_TRUE(Engine::create(std::make_unique<FakeModelRunner>(FakeRunnerOptions{.max_context = 256}), nullptr, {}).is_ok());
}

TEST(EngineApi, ConcurrentAddsFromManyThreadsMatchTheReference) {
  auto e = make_engine();
  ASSERT_TRUE(e);
  Collector col;
  std::mutex mu;
  std::vector<std::pair<RequestId, std::vector<int32_t>>> reqs;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 8; ++i) {
        auto p = make_prompt(4 + (t * 8 + i) % 30, t * 100 + i, kVocab);
        auto id = e->add(greedy(p, 10), col.callback());
        ASSERT_TRUE(id.is_ok());
        std::lock_guard lk(mu);
        reqs.push_back({*id, p});
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(wait_for([&] { return col.finished() == 32; }));
  for (const auto& [id, p] : reqs) {
    const auto got = col.get(id);
    EXPECT_EQ(got.tokens, FakeModelRunner::reference_greedy(p, 10, kVocab));
    EXPECT_EQ(got.finishes, 1);
  }
  ASSERT_TRUE(wait_for([&] { return e->metrics().running == 0; }));
  const auto m = e->metrics();
  EXPECT_EQ(m.generated_tokens_total, 320);
  EXPECT_EQ(m.time_to_first_token.count, 32);
  EXPECT_EQ(m.e2e_latency.count, 32);
  EXPECT_EQ(m.kv_blocks_used, 0);
  EXPECT_EQ(m.waiting, 0);
}

// 256 requests against a pool that fits 64 of them at full length: all complete, correctly, with
// preemptions counted, never an allocation failure.
TEST(EngineApi, FourTimesMoreRequestsThanThePoolFitsAllComplete) {
  // 128 blocks of 16 tokens; each request needs 2 blocks (16 prompt + 16 new).
  auto e = make_engine({}, {.kv_memory_bytes = 128 * 16 * 256, .max_step_tokens = 256});
  ASSERT_TRUE(e);
  Collector col;
  std::vector<std::pair<RequestId, std::vector<int32_t>>> reqs;
  for (int i = 0; i < 256; ++i) {
    auto p = make_prompt(16, 5000 + i, kVocab);
    auto id = e->add(greedy(p, 17), col.callback());
    ASSERT_TRUE(id.is_ok()) << id.status().message();
    reqs.push_back({*id, p});
  }
  ASSERT_TRUE(wait_for([&] { return col.finished() == 256; }, 60s));
  for (const auto& [id, p] : reqs) {
    const auto got = col.get(id);
    ASSERT_EQ(got.finish, EngineFinish::kLength) << got.error;
    ASSERT_EQ(got.tokens, FakeModelRunner::reference_greedy(p, 17, kVocab));
  }
  ASSERT_TRUE(wait_for([&] { return e->metrics().running == 0; }));
  const auto m = e->metrics();
  EXPECT_EQ(m.kv_blocks_total, 128);
  EXPECT_GT(m.preempted_total, 0);
  EXPECT_EQ(m.kv_blocks_used, 0);
}

TEST(EngineApi, CancelInFlightEndsTheStream) {
  auto e = make_engine({.vocab_size = kVocab, .step_delay = 1ms});
  ASSERT_TRUE(e);
  Collector col;
  auto id = e->add(greedy(make_prompt(5, 1, kVocab), 2000), col.callback());
  ASSERT_TRUE(id.is_ok());
  ASSERT_TRUE(wait_for([&] { return col.get(*id).tokens.size() >= 3; }));
  e->cancel(*id);
  e->cancel(987654);  // unknown: ignored
  ASSERT_TRUE(wait_for([&] { return col.finished() == 1; }));
  const auto got = col.get(*id);
  EXPECT_EQ(got.finish, EngineFinish::kCancelled);
  EXPECT_LT(got.tokens.size(), 2000u);
  ASSERT_TRUE(wait_for([&] { return e->metrics().kv_blocks_used == 0; }));
}

TEST(EngineApi, AddRejectsWithOneLineErrors) {
  auto e = make_engine({}, {.kv_memory_bytes = 4 * 16 * 256});  // 64 token slots
  ASSERT_TRUE(e);
  auto r = e->add(greedy(make_prompt(40, 1, kVocab), 40), nullptr);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("whole KV pool"), std::string::npos);
  EXPECT_FALSE(e->add(greedy({}, 4), nullptr).is_ok());
}

TEST(EngineApi, ShutdownFinishesOrCancelsInFlight) {
  {
    auto e = make_engine();
    Collector col;
    auto id = e->add(greedy(make_prompt(5, 1, kVocab), 30), col.callback());
    e->shutdown(false);
    EXPECT_EQ(col.get(*id).finish, EngineFinish::kLength);
    EXPECT_EQ(col.get(*id).tokens.size(), 30u);
    EXPECT_FALSE(e->add(greedy({1}, 1), nullptr).is_ok());
    e->shutdown(false);  // twice: fine
  }
  {
    auto e = make_engine({.vocab_size = kVocab, .step_delay = 1ms});
    Collector col;
    auto id = e->add(greedy(make_prompt(5, 1, kVocab), 3000), col.callback());
    ASSERT_TRUE(wait_for([&] { return !col.get(*id).tokens.empty(); }));
    e->shutdown(true);
    EXPECT_EQ(col.get(*id).finish, EngineFinish::kCancelled);
    EXPECT_EQ(col.get(*id).finishes, 1);
  }
  {
    auto e = make_engine({.vocab_size = kVocab, .step_delay = 1ms});
    Collector col;
    auto id = e->add(greedy(make_prompt(5, 1, kVocab), 1000), col.callback());
    ASSERT_TRUE(id.is_ok());
    e.reset();  // the destructor cancels and joins
    EXPECT_EQ(col.get(*id).finishes, 1);
  }
}

TEST(EngineApi, RunnerErrorKeepsTheEngineAlive) {
  auto e = make_engine({.vocab_size = kVocab, .fail_on_call = 0});
  Collector col;
  auto a = e->add(greedy(make_prompt(5, 1, kVocab), 3), col.callback());
  ASSERT_TRUE(wait_for([&] { return col.finished() == 1; }));
  EXPECT_EQ(col.get(*a).finish, EngineFinish::kError);
  EXPECT_FALSE(col.get(*a).error.empty());
  auto b = e->add(greedy(make_prompt(5, 2, kVocab), 3), col.callback());
  ASSERT_TRUE(wait_for([&] { return col.finished() == 2; }));
  EXPECT_EQ(col.get(*b).finish, EngineFinish::kLength);
}

TEST(EngineApi, IdleEngineSleeps) {
  auto e = make_engine();
  std::this_thread::sleep_for(20ms);
  const std::clock_t c0 = std::clock();
  std::this_thread::sleep_for(300ms);
  const double cpu_s = double(std::clock() - c0) / CLOCKS_PER_SEC;
  EXPECT_LT(cpu_s, 0.05) << "an idle engine must wait on its condition variable, not spin";
}

TEST(EngineApi, FinishNamesAndCallbackMayCancel) {
  EXPECT_STREQ(engine_finish_name(EngineFinish::kCancelled), "cancelled");
  EXPECT_STREQ(engine_finish_name(EngineFinish::kNone), "");
  auto e = make_engine();
  Collector col;
  auto inner = col.callback();
  Engine* raw = e.get();
  // Cancelling from inside the callback (on the engine thread) must not deadlock.
  auto id = e->add(greedy(make_prompt(5, 1, kVocab), 50), [&, raw](RequestId rid, const EngineOutput& out) {
    inner(rid, out);
    if (out.finish == EngineFinish::kNone) raw->cancel(rid);
  });
  ASSERT_TRUE(wait_for([&] { return col.finished() == 1; }));
  EXPECT_EQ(col.get(*id).finish, EngineFinish::kCancelled);
  EXPECT_EQ(col.get(*id).tokens.size(), 1u);
}

}  // namespace
}  // namespace tern
