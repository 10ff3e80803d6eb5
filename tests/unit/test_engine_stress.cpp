// Randomized stress of the engine core with a fake runner and a small pool: random arrivals,
// lengths, priorities, shared prefixes and cancellations over thousands of steps, with the
// invariants checked after every step.
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "engine/engine_core.h"
#include "engine/fake_model_runner.h"
#include "engine_test_util.h"

namespace tern {
namespace {

struct Params {
  bool prefix_caching;
  const char* policy;
  uint64_t seed;
};

class EngineStress : public ::testing::TestWithParam<Params> {};

TEST_P(EngineStress, InvariantsHoldAfterEveryStep) {
  const Params p = GetParam();
  constexpr int64_t kVocab = 32, kBlocks = 24, kBudget = 16;
  constexpr int kBlockSize = 4, kSteps = 2500;
  FakeModelRunner runner({.vocab_size = kVocab, .max_context = 512});
  ASSERT_TRUE(runner.allocate_kv({kBlocks, kBlockSize, KvDType::BF16}).is_ok());
  int64_t max_batch = 0;
  runner.on_forward = [&](const StepBatch& b) {
    max_batch = std::max<int64_t>(max_batch, int64_t(b.token_ids.size()));
    for (const auto& s : b.seqs) {
      ASSERT_GE(s.n_blocks * kBlockSize, s.pos0 + s.n_tokens);
    }
  };
  EngineCoreConfig cfg;
  cfg.num_blocks = kBlocks;
  cfg.block_size = kBlockSize;
  cfg.prefix_caching = p.prefix_caching;
  cfg.scheduler.max_step_tokens = kBudget;
  cfg.scheduler.max_running = 6;
  cfg.policy = p.policy;
  auto core_or = EngineCore::create(runner, nullptr, cfg);
  ASSERT_TRUE(core_or.is_ok());
  EngineCore& core = **core_or;

  std::mt19937_64 rng(p.seed);
  auto uniform = [&](int lo, int hi) { return int(std::uniform_int_distribution<int>(lo, hi)(rng)); };
  const std::vector<std::vector<int32_t>> prefixes = {
      test::make_prompt(12, 1, kVocab), test::make_prompt(9, 2, kVocab), test::make_prompt(20, 3, kVocab)};
  test::Collector collector;
  struct Req {
    std::vector<int32_t> prompt;
    int64_t max_new;
    bool cancelled = false;
  };
  std::map<RequestId, Req> reqs;
  std::vector<RequestId> live;
  RequestId next_id = 1;

  for (int step = 0; step < kSteps; ++step) {
    if (step < kSteps - 400 && uniform(0, 2) == 0) {  // arrivals (then a quiet tail to drain)
      Req r;
      if (uniform(0, 1)) r.prompt = prefixes[size_t(uniform(0, 2))];
      const auto tail = test::make_prompt(uniform(1, 20), int32_t(rng() % 100000), kVocab);
      r.prompt.insert(r.prompt.end(), tail.begin(), tail.end());
      r.max_new = uniform(1, 30);
      EngineRequest er;
      er.prompt = r.prompt;
      er.max_new_tokens = r.max_new;
      er.sampling.temperature = 0;
      er.priority = uniform(0, 2);
      const RequestId id = next_id++;
      ASSERT_TRUE(core.add(id, er, collector.callback()).is_ok());
      reqs[id] = r;
      live.push_back(id);
    }
    if (!live.empty() && uniform(0, 19) == 0) {  // cancellations
      const size_t k = size_t(uniform(0, int(live.size()) - 1));
      reqs[live[k]].cancelled = true;
      core.cancel(live[k]);
      live.erase(live.begin() + std::ptrdiff_t(k));
    }
    core.step();
    ASSERT_LE(core.last_step_tokens(), kBudget);
    const std::string bad = core.kv().check_invariants();
    ASSERT_EQ(bad, "") << "step " << step;
    // Every block in use belongs to a running sequence; waiting ones hold none.
    std::set<int32_t> held;
    for (const Sequence* s : core.scheduler().running()) {
      const auto& t = core.kv().table(s->id);
      held.insert(t.begin(), t.end());
      ASSERT_GE(int64_t(t.size()) * kBlockSize, s->num_computed);
    }
    for (const Sequence* s : core.scheduler().waiting()) ASSERT_FALSE(core.kv().has(s->id));
    ASSERT_EQ(int64_t(held.size()), core.kv().num_used());
    live.erase(std::remove_if(live.begin(), live.end(), [&](RequestId id) { return collector.is_finished(id); }),
               live.end());
  }
  for (int i = 0; i < 100000 && core.has_work(); ++i) core.step();
  ASSERT_FALSE(core.has_work());
  EXPECT_EQ(core.kv().num_used(), 0);
  EXPECT_LE(max_batch, kBudget);
  EXPECT_GT(core.metrics().preempted_total, 0) << "the pool is meant to be too small";
  int checked = 0;
  for (const auto& [id, r] : reqs) {
    const auto got = collector.get(id);
    ASSERT_EQ(got.finishes, 1) << "request " << id;
    ASSERT_EQ(got.events_after_finish, 0);
    if (r.cancelled) {
      EXPECT_EQ(got.finish, EngineFinish::kCancelled);
      continue;
    }
    EXPECT_EQ(got.finish, EngineFinish::kLength);
    EXPECT_EQ(got.tokens, FakeModelRunner::reference_greedy(r.prompt, r.max_new, kVocab)) << "request " << id;
    ++checked;
  }
  EXPECT_GT(checked, 300);
}

INSTANTIATE_TEST_SUITE_P(Configs, EngineStress,
                         ::testing::Values(Params{true, "priority", 1}, Params{false, "priority", 2},
                                           Params{true, "fcfs", 3}));

}  // namespace
}  // namespace tern
