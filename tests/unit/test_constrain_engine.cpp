// The engine hook: a request with a grammar samples only allowed tokens, EOS only where the grammar can end, and
// finishes with "stop" when the grammar must end (EngineCore over the fake runner, a byte vocabulary).
#include <gtest/gtest.h>

#include "constrain_test_util.h"
#include "engine/engine_core.h"
#include "engine/fake_model_runner.h"
#include "engine_test_util.h"

namespace tern {
namespace {

struct Harness {
  Harness(int64_t vocab) : runner(FakeRunnerOptions{.vocab_size = vocab}) {
    EngineCoreConfig c;
    c.num_blocks = 512;
    c.block_size = 4;
    c.scheduler.max_step_tokens = 64;
    EXPECT_TRUE(runner.allocate_kv({c.num_blocks, c.block_size, KvDType::BF16}).is_ok());
    auto core_or = EngineCore::create(runner, nullptr, c);
    EXPECT_TRUE(core_or.is_ok()) << core_or.status().message();
    core = std::move(*core_or);
  }
  RequestId add(EngineRequest r) {
    const RequestId id = next++;
    const Status st = core->add(id, std::move(r), collector.callback());
    EXPECT_TRUE(st.is_ok()) << st.message();
    return id;
  }
  void drain() {
    for (int i = 0; i < 100000 && core->has_work(); ++i) core->step();
    ASSERT_FALSE(core->has_work());
  }
  FakeModelRunner runner;
  std::unique_ptr<EngineCore> core;
  test::Collector collector;
  RequestId next = 1;
};

std::string spell(const TokenVocabulary& v, const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t t : ids) s += v.bytes(t);
  return s;
}

TEST(ConstrainEngine, SampledOutputsFollowTheGrammarAndStop) {
  const auto v = test::byte_vocab({"ab", "12", "345", "x9"});
  const int32_t eos = int32_t(v.size()) - 1;  // the special token: spells nothing
  auto g = compile_gbnf(R"(root ::= "ab" [0-9]{1,4} ( "-" [a-c]+ )?)", v);
  ASSERT_TRUE(g.is_ok()) << g.status().message();
  Harness h(v.size());
  std::vector<RequestId> ids;
  for (uint64_t seed = 0; seed < 24; ++seed) {
    EngineRequest r;
    r.prompt = {1, 2, 3, int32_t(seed)};
    r.max_new_tokens = 64;
    r.sampling.temperature = 1.0f;
    r.sampling.seed = seed;
    r.eos_ids = {eos};
    r.grammar = *g;
    ids.push_back(h.add(r));
  }
  h.drain();
  int stops = 0, eoses = 0;
  for (RequestId id : ids) {
    const auto& c = h.collector.get(id);
    const std::string text = spell(v, c.tokens);
    EXPECT_TRUE(test::full_match(*g, text)) << text;  // EOS came only where the grammar could end
    EXPECT_TRUE(c.finish == EngineFinish::kStop || c.finish == EngineFinish::kEos) << text;
    if (c.finish == EngineFinish::kStop) {
      ++stops;
      TokenConstraint m(*g);
      for (int32_t t : c.tokens) ASSERT_TRUE(m.accept(t).is_ok());
      EXPECT_TRUE(m.must_end());
    }
    eoses += c.finish == EngineFinish::kEos;
  }
  EXPECT_GT(stops + eoses, 0);
}

TEST(ConstrainEngine, FinishesWithStopWhenTheGrammarMustEnd) {
  const auto v = test::byte_vocab();
  auto g = compile_gbnf(R"(root ::= "yes" | "no")", v);
  ASSERT_TRUE(g.is_ok());
  Harness h(v.size());
  EngineRequest r;
  r.prompt = {5, 6, 7};
  r.max_new_tokens = 50;
  r.sampling.temperature = 0;
  r.ignore_eos = true;  // nothing but the grammar can end it
  r.grammar = *g;
  const RequestId id = h.add(r);
  h.drain();
  const auto& c = h.collector.get(id);
  const std::string text = spell(v, c.tokens);
  EXPECT_TRUE(text == "yes" || text == "no") << text;
  EXPECT_EQ(c.finish, EngineFinish::kStop);
  EXPECT_EQ(c.finishes, 1);
}

TEST(ConstrainEngine, EmptyGrammarStopsWithoutAToken) {
  const auto v = test::byte_vocab();
  auto g = compile_gbnf(R"(root ::= "")", v);
  ASSERT_TRUE(g.is_ok());
  Harness h(v.size());
  EngineRequest r;
  r.prompt = {1};
  r.max_new_tokens = 8;
  r.grammar = *g;
  const RequestId id = h.add(r);
  h.drain();
  EXPECT_TRUE(h.collector.get(id).tokens.empty());
  EXPECT_EQ(h.collector.get(id).finish, EngineFinish::kStop);
}

TEST(ConstrainEngine, GrammarForALargerVocabularyIsRejected) {
  const auto v = test::byte_vocab({"ab"});
  auto g = compile_gbnf(R"(root ::= "a")", v);
  ASSERT_TRUE(g.is_ok());
  Harness h(64);  // the model's vocabulary is smaller than the grammar's
  EngineRequest r;
  r.prompt = {1};
  r.grammar = *g;
  const Status st = h.core->add(1, r, h.collector.callback());
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("grammar"), std::string::npos);
}

}  // namespace
}  // namespace tern
