// Speculative decoding composed with constrained decoding (docs/speculative.md): the verification
// judges each draft under the grammar state after the drafts accepted before it, so a request with a
// grammar gives, greedy, exactly the tokens and finish it gives without speculation, although the
// drafter proposes tokens the grammar forbids; sampled outputs still match the grammar.
#include <gtest/gtest.h>

#include <map>

#include "constrain_test_util.h"
#include "engine/engine_core.h"
#include "engine/fake_model_runner.h"
#include "engine_test_util.h"

namespace tern {
namespace {

// Proposes what the plain run produced for the same prompt, wrong at every third position (the
// wrong token is the next id, often one the grammar does not allow there).
class ReplayDrafter final : public Drafter {
 public:
  ReplayDrafter(std::map<std::vector<int32_t>, std::vector<int32_t>> outputs, int64_t vocab)
      : outputs_(std::move(outputs)), vocab_(vocab) {}
  const char* name() const override { return "replay"; }
  Status propose(std::vector<DraftSlot>& slots) override {
    for (DraftSlot& s : slots) {
      const auto& t = s.seq->tokens;
      const std::vector<int32_t> prompt(t.begin(), t.begin() + s.seq->prompt_len);
      const auto it = outputs_.find(prompt);
      if (it == outputs_.end()) continue;
      const size_t done = t.size() - size_t(s.seq->prompt_len);
      for (int64_t i = 0; i < s.max_tokens; ++i) {
        const size_t at = done + size_t(i);
        int32_t tok = at < it->second.size() ? it->second[at] : 0;
        if ((at + size_t(calls)) % 3 == 2) tok = int32_t((tok + 1) % vocab_);
        s.tokens.push_back(tok);
      }
      ++calls;
    }
    return Status::ok();
  }
  int64_t calls = 0;

 private:
  std::map<std::vector<int32_t>, std::vector<int32_t>> outputs_;
  int64_t vocab_;
};

struct SpecRun {
  std::vector<test::Collected> out;
  EngineMetrics metrics;
};

SpecRun run_core(int64_t vocab, const std::vector<EngineRequest>& reqs, Drafter* drafter) {
  FakeModelRunner runner(FakeRunnerOptions{.vocab_size = vocab});
  EngineCoreConfig c;
  c.num_blocks = 512;
  c.block_size = 4;
  c.scheduler.max_step_tokens = 64;
  if (drafter) {
    c.speculative.method = SpeculativeMethod::kDraftModel;
    c.speculative.num_speculative_tokens = 4;
    c.speculative.disable_by_batch_size = 64;
    c.speculative.max_batch_rows = 8;  // the rows these tests were written with (default: 8 with AVX-512, 4 without)
  }
  EXPECT_TRUE(runner.allocate_kv({c.num_blocks, c.block_size, KvDType::BF16}).is_ok());
  auto core = EngineCore::create(runner, nullptr, c, drafter);
  EXPECT_TRUE(core.is_ok()) << core.status().message();
  test::Collector col;
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_TRUE((*core)->add(i + 1, reqs[i], col.callback()).is_ok());
  for (int i = 0; i < 100000 && (*core)->has_work(); ++i) {
    (*core)->step();
    EXPECT_EQ((*core)->kv().check_invariants(), "");
  }
  SpecRun r;
  for (size_t i = 0; i < reqs.size(); ++i) r.out.push_back(col.get(i + 1));
  r.metrics = (*core)->metrics();
  return r;
}

TEST(SpeculativeConstrained, GreedyIsIdenticalUnderAGrammarAndForbiddenDraftsAreRejected) {
  const auto v = test::byte_vocab({"ab", "12", "345", "x9"});
  const int32_t eos = int32_t(v.size()) - 1;
  auto g = compile_gbnf(R"(root ::= "ab" ( [0-9] | "-" [a-c]+ ){1,12} ";")", v);
  ASSERT_TRUE(g.is_ok()) << g.status().message();
  std::vector<EngineRequest> reqs;
  for (int i = 0; i < 8; ++i) {
    EngineRequest r;
    r.prompt = {int32_t('q'), int32_t('0' + i), int32_t(':'), int32_t(' ')};
    r.max_new_tokens = 48;
    r.sampling.temperature = 0;
    r.eos_ids = {eos};
    r.grammar = *g;
    reqs.push_back(r);
  }
  const SpecRun plain = run_core(v.size(), reqs, nullptr);
  std::map<std::vector<int32_t>, std::vector<int32_t>> outputs;
  for (size_t i = 0; i < reqs.size(); ++i) outputs[reqs[i].prompt] = plain.out[i].tokens;
  ReplayDrafter drafter(outputs, v.size());
  const SpecRun spec = run_core(v.size(), reqs, &drafter);
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(spec.out[i].tokens, plain.out[i].tokens) << i;
    EXPECT_EQ(spec.out[i].finish, plain.out[i].finish) << i;
    EXPECT_TRUE(test::full_match(*g, [&] {
      std::string s;
      for (int32_t t : spec.out[i].tokens) s += v.bytes(t);
      return s;
    }()));
  }
  EXPECT_GT(spec.metrics.spec_accepted_tokens, 0);
  EXPECT_LT(spec.metrics.spec_accepted_tokens, spec.metrics.spec_draft_tokens);
}

TEST(SpeculativeConstrained, SampledOutputsStillMatchTheGrammar) {
  const auto v = test::byte_vocab({"ab", "12"});
  const int32_t eos = int32_t(v.size()) - 1;
  auto g = compile_gbnf(R"(root ::= "ab" [0-9]{1,6} ( "-" [a-c]+ )?)", v);
  ASSERT_TRUE(g.is_ok()) << g.status().message();
  std::vector<EngineRequest> reqs;
  for (uint64_t seed = 0; seed < 16; ++seed) {
    EngineRequest r;
    r.prompt = {1, 2, 3, int32_t(seed)};
    r.max_new_tokens = 32;
    r.sampling.temperature = 1.0f;
    r.sampling.seed = seed;
    r.eos_ids = {eos};
    r.grammar = *g;
    reqs.push_back(r);
  }
  // Drafts: the plain run's samples for other seeds (plausible, often wrong here).
  const SpecRun plain = run_core(v.size(), reqs, nullptr);
  std::map<std::vector<int32_t>, std::vector<int32_t>> outputs;
  for (size_t i = 0; i < reqs.size(); ++i) outputs[reqs[i].prompt] = plain.out[(i + 1) % reqs.size()].tokens;
  ReplayDrafter drafter(outputs, v.size());
  const SpecRun spec = run_core(v.size(), reqs, &drafter);
  for (size_t i = 0; i < reqs.size(); ++i) {
    std::string s;
    for (int32_t t : spec.out[i].tokens) s += v.bytes(t);
    EXPECT_TRUE(test::full_match(*g, s)) << s;
    EXPECT_TRUE(spec.out[i].finish == EngineFinish::kStop || spec.out[i].finish == EngineFinish::kEos) << s;
  }
  EXPECT_GT(spec.metrics.spec_draft_tokens, 0);
}

}  // namespace
}  // namespace tern
