// Steps in flight under pipeline parallelism (docs/parallel.md, "Steps in flight"): the serving
// engine's core on rank 0 of a PP job run as threads (thread_communicator.h), its requests split into
// P groups, one group's step in the pipeline while the core samples and starts another's. Greedy
// tokens must be the single process's for 1, 2 and 4 requests, with requests arriving and finishing
// mid-run, cancelled while their step is in the pipeline, and for TP x PP; the pipeline must actually
// hold P steps at once, and one step at a time (--pp-steps-in-flight 1) must give the same tokens.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <functional>

#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "engine/cpu_model_runner.h"
#include "engine/engine_core.h"
#include "engine_test_util.h"
#include "model/model.h"
#include "parallel_job_threads.h"
#include "test_support.h"

namespace tern {
namespace {

using Results = std::map<RequestId, test::Collected>;

struct Seen {
  int groups = 0;
  size_t max_in_flight = 0;  // steps in the pipeline when step() returned, at most
};

// Drives a core: adds requests, steps, cancels; returns the ids it used.
using Scenario = std::function<std::vector<RequestId>(EngineCore&, test::Collector&, Seen&)>;

void step_until_done(EngineCore& core, Seen& seen, int max_steps = 10000) {
  for (int i = 0; i < max_steps && core.has_work(); ++i) {
    core.step();
    seen.max_in_flight = std::max(seen.max_in_flight, core.steps_in_flight());
  }
}

Results run_core(const Model& m, ExecContext& ctx, const Scenario& scenario, Seen& seen) {
  CpuModelRunner runner(m, ctx, /*max_step_tokens=*/64, /*max_logit_rows=*/16);
  EngineCoreConfig cfg;
  cfg.num_blocks = 64;
  cfg.block_size = 8;
  cfg.scheduler.max_step_tokens = 64;
  EXPECT_TRUE(runner.allocate_kv({cfg.num_blocks, cfg.block_size, KvDType::F32}).is_ok());
  auto core = EngineCore::create(runner, nullptr, cfg);
  EXPECT_TRUE(core.is_ok()) << core.status().message();
  if (!core.is_ok()) return {};
  test::Collector col;
  seen.groups = (*core)->groups();
  const std::vector<RequestId> ids = scenario(**core, col, seen);
  Results out;
  for (RequestId id : ids) out[id] = col.get(id);
  return out;
}

Results single(const std::string& dir, const Scenario& scenario) {
  auto m = Model::load(dir);
  EXPECT_TRUE(m.is_ok()) << m.status().message();
  if (!m.is_ok()) return {};
  ThreadPool pool(1);
  ExecContext ctx(pool, CpuFeatures::detect());
  Seen seen;
  return run_core(**m, ctx, scenario, seen);
}

// tp x pp ranks as threads (parallel_job_threads.h); rank 0 runs the scenario through the engine core.
Results pipeline(const std::string& dir, int tp, int pp, int micro, int in_flight, const Scenario& scenario, Seen& seen) {
  Results out;
  test::JobLayout l;
  l.tp = tp, l.pp = pp, l.micro_batches = micro, l.steps_in_flight = in_flight;
  // The core (and its steps in flight) is gone when rank 0's driver returns, before the stop.
  test::run_job_as_threads(dir, l, [&](const Model& m, ExecContext& ctx) { out = run_core(m, ctx, scenario, seen); });
  return out;
}

std::vector<int32_t> prompt_of(int i) {
  const std::vector<std::vector<int32_t>> prompts = {
      {144, 325, 16, 224, 992, 922, 956}, {17, 400, 3, 88}, {512, 7, 640, 641, 9, 12, 300, 301, 5, 44}, {77, 78, 79}};
  return prompts[size_t(i) % prompts.size()];
}

EngineRequest request(int i, int64_t n) {
  EngineRequest r = test::greedy(prompt_of(i), n);
  r.ignore_eos = true;
  return r;
}

// n requests added together, decoded to 10 tokens each.
Scenario together(int n) {
  return [n](EngineCore& core, test::Collector& col, Seen& seen) {
    std::vector<RequestId> ids;
    for (int i = 0; i < n; ++i) {
      ids.push_back(RequestId(i + 1));
      EXPECT_TRUE(core.add(ids.back(), request(i, 10), col.callback()).is_ok());
    }
    step_until_done(core, seen);
    return ids;
  };
}

// Requests arrive while others decode, with different lengths, so some finish mid-run.
std::vector<RequestId> arrivals(EngineCore& core, test::Collector& col, Seen& seen) {
  EXPECT_TRUE(core.add(1, request(0, 12), col.callback()).is_ok());
  for (int i = 0; i < 3; ++i) core.step();
  EXPECT_TRUE(core.add(2, request(1, 4), col.callback()).is_ok());
  EXPECT_TRUE(core.add(3, request(2, 9), col.callback()).is_ok());
  for (int i = 0; i < 4; ++i) core.step();
  EXPECT_TRUE(core.add(4, request(3, 6), col.callback()).is_ok());
  EXPECT_TRUE(core.add(5, request(1, 3), col.callback()).is_ok());
  step_until_done(core, seen);
  return {1, 2, 3, 4, 5};
}

void expect_same_tokens(const Results& got, const Results& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (const auto& [id, w] : want) {
    const test::Collected& g = got.at(id);
    EXPECT_EQ(g.tokens, w.tokens) << what << ": request " << id;
    EXPECT_EQ(g.finish, w.finish) << what << ": request " << id;
    EXPECT_EQ(g.finishes, 1) << what << ": request " << id;
    EXPECT_EQ(g.events_after_finish, 0) << what << ": request " << id;
  }
}

class PpEngine : public ::testing::TestWithParam<const char*> {};

TEST_P(PpEngine, StepsInFlightGiveTheSingleProcessTokens) {
  const std::string dir = test::tiny_arch_dir(GetParam());
  for (int n : {1, 2, 4}) {
    const Results want = single(dir, together(n));
    ASSERT_EQ(want.size(), size_t(n));
    for (const auto& [id, w] : want) ASSERT_EQ(w.tokens.size(), 10u);
    Seen seen;
    expect_same_tokens(pipeline(dir, 1, 2, 1, 0, together(n), seen), want, fmt::format("PP=2, {} requests", n));
    EXPECT_EQ(seen.groups, 2);
    // Two requests or more fill both groups: one step stays in the pipeline while the core samples the other.
    if (n >= 2) {
      EXPECT_EQ(seen.max_in_flight, 1u) << n << " requests";
    }
    Seen off;
    expect_same_tokens(pipeline(dir, 1, 2, 1, 1, together(n), off), want, "PP=2, one step at a time");
    EXPECT_EQ(off.groups, 1);
    EXPECT_EQ(off.max_in_flight, 0u);
  }
}

TEST_P(PpEngine, RequestsArrivingAndFinishingMidRun) {
  const std::string dir = test::tiny_arch_dir(GetParam());
  const Results want = single(dir, arrivals);
  Seen seen;
  expect_same_tokens(pipeline(dir, 1, 2, 1, 0, arrivals, seen), want, "PP=2");
  expect_same_tokens(pipeline(dir, 1, 2, 2, 0, arrivals, seen), want, "PP=2, two micro-batches");
}

INSTANTIATE_TEST_SUITE_P(Archs, PpEngine, ::testing::Values("llama", "qwen3", "gemma2", "gpt2"));

TEST(PpEngine, DocsLlamaThreeStagesThreeStepsInFlight) {
  const std::string dir = test::model_dir("docs-llama-28m");
  const Results want = single(dir, arrivals);
  Seen seen;
  expect_same_tokens(pipeline(dir, 1, 3, 1, 0, arrivals, seen), want, "PP=3, three steps in flight");
  EXPECT_EQ(seen.groups, 3);
  EXPECT_EQ(seen.max_in_flight, 2u);
  expect_same_tokens(pipeline(dir, 1, 2, 1, 0, together(4), seen), single(dir, together(4)), "PP=2, 4 requests");
}

TEST(PpEngine, TensorTimesPipelineWithStepsInFlight) {
  const std::string dir = test::tiny_arch_dir("llama");
  const Results want = single(dir, together(4));
  Seen seen;
  expect_same_tokens(pipeline(dir, 2, 2, 1, 0, together(4), seen), want, "TP=2 x PP=2");
  EXPECT_EQ(seen.max_in_flight, 1u);
}

// A request cancelled while its step is in the pipeline ends at once with one kCancelled event; when
// that step's logits come back they are dropped, and the others decode on unchanged.
TEST(PpEngine, CancelWhileInThePipeline) {
  const std::string dir = test::tiny_arch_dir("llama");
  const Results want = single(dir, together(4));
  Scenario cancel_one = [](EngineCore& core, test::Collector& col, Seen& seen) {
    for (int i = 0; i < 4; ++i) EXPECT_TRUE(core.add(RequestId(i + 1), request(i, 10), col.callback()).is_ok());
    core.step();  // both groups started, group 0 sampled: group 1 (requests 2 and 4) is in the pipeline
    EXPECT_EQ(core.steps_in_flight(), 1u);
    core.cancel(2);
    EXPECT_TRUE(col.is_finished(2));
    step_until_done(core, seen);
    return std::vector<RequestId>{1, 2, 3, 4};
  };
  Seen seen;
  const Results got = pipeline(dir, 1, 2, 1, 0, cancel_one, seen);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got.at(2).finish, EngineFinish::kCancelled);
  EXPECT_EQ(got.at(2).finishes, 1);
  EXPECT_EQ(got.at(2).events_after_finish, 0);
  EXPECT_TRUE(got.at(2).tokens.empty());
  for (RequestId id : {1, 3, 4}) EXPECT_EQ(got.at(id).tokens, want.at(id).tokens) << "request " << id;

  // Everything cancelled with a step in the pipeline: the core still collects it before it is idle,
  // and a request added afterwards (reusing a cancelled id) decodes as in the single process.
  Scenario cancel_all = [](EngineCore& core, test::Collector& col, Seen& seen) {
    for (int i = 0; i < 4; ++i) EXPECT_TRUE(core.add(RequestId(i + 1), request(i, 10), col.callback()).is_ok());
    core.step();
    core.step();
    core.cancel_all();
    EXPECT_TRUE(core.has_work());  // a step is still in the pipeline
    step_until_done(core, seen);
    EXPECT_EQ(core.steps_in_flight(), 0u);
    test::Collector again;
    EXPECT_TRUE(core.add(1, request(0, 10), again.callback()).is_ok());
    step_until_done(core, seen);
    EXPECT_EQ(again.get(1).tokens.size(), 10u);
    return std::vector<RequestId>{1, 2, 3, 4};
  };
  const Results all = pipeline(dir, 1, 2, 1, 0, cancel_all, seen);
  for (RequestId id : {1, 2, 3, 4}) EXPECT_EQ(all.at(id).finish, EngineFinish::kCancelled) << "request " << id;
}

// The core destroyed with steps still in the pipeline takes their logits first, so the workers are
// not left sending to a rank that stopped listening (the job then stops cleanly).
TEST(PpEngine, DestroyedWithAStepInThePipeline) {
  const std::string dir = test::tiny_arch_dir("llama");
  Scenario leave = [](EngineCore& core, test::Collector& col, Seen&) {
    for (int i = 0; i < 2; ++i) EXPECT_TRUE(core.add(RequestId(i + 1), request(i, 10), col.callback()).is_ok());
    core.step();
    EXPECT_EQ(core.steps_in_flight(), 1u);
    return std::vector<RequestId>{};
  };
  Seen seen;
  EXPECT_TRUE(pipeline(dir, 1, 2, 1, 0, leave, seen).empty());
}

}  // namespace
}  // namespace tern
