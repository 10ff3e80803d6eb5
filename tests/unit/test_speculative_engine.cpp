// Speculative decoding in the engine core over the fake runner, with a deliberately half-wrong
// drafter (docs/speculative.md): greedy output identical to the reference with many requests in
// flight, prefix cache and preemption still right, no block held past a sequence's tokens after
// verification, every block back at the end, drafts within the step budget and the row cap.
#include <gtest/gtest.h>

#include <map>

#include "engine/engine_core.h"
#include "engine/fake_model_runner.h"
#include "engine_test_util.h"

namespace tern {
namespace {

using test::Collector;
using test::make_prompt;

constexpr int64_t kVocab = 64;

// ---- the engine ---------------------------------------------------------------------------------

// Proposes the reference greedy continuation, corrupted at chosen places, so steps see full
// acceptance, partial acceptance and immediate rejection.
class OracleDrafter final : public Drafter {
 public:
  explicit OracleDrafter(int64_t vocab) : vocab_(vocab) {}
  const char* name() const override { return "oracle"; }
  Status propose(std::vector<DraftSlot>& slots) override {
    ++calls;
    for (DraftSlot& s : slots) {
      const auto& t = s.seq->tokens;
      const std::vector<int32_t> prompt(t.begin(), t.begin() + s.seq->prompt_len);
      const int64_t done = int64_t(t.size()) - s.seq->prompt_len;
      const auto ref = FakeModelRunner::reference_greedy(prompt, done + s.max_tokens, vocab_);
      for (int64_t i = 0; i < s.max_tokens; ++i) {
        int32_t tok = ref[size_t(done + i)];
        if ((int64_t(t.size()) * 7 + i * 3 + calls) % 5 == 0) tok = int32_t((tok + 1) % vocab_);  // wrong
        s.tokens.push_back(tok);
      }
    }
    return Status::ok();
  }
  void release(uint64_t id) override { ++released; }
  int64_t calls = 0, released = 0;

 private:
  int64_t vocab_;
};

struct SpecHarness {
  SpecHarness(EngineCoreConfig cfg, Drafter* drafter) {
    EXPECT_TRUE(runner.allocate_kv({cfg.num_blocks, cfg.block_size, KvDType::BF16}).is_ok());
    auto c = EngineCore::create(runner, nullptr, cfg, drafter);
    EXPECT_TRUE(c.is_ok()) << c.status().message();
    core = std::move(*c);
  }
  RequestId add(EngineRequest r) {
    const RequestId id = next++;
    const Status st = core->add(id, std::move(r), collector.callback());
    EXPECT_TRUE(st.is_ok()) << st.message();
    return id;
  }
  // Steps to the end, checking after every step that no running sequence holds a block past its
  // tokens (rejected drafts' blocks were returned) and the block manager is consistent.
  void drain() {
    for (int i = 0; i < 100000 && core->has_work(); ++i) {
      core->step();
      ASSERT_EQ(core->kv().check_invariants(), "");
      for (const Sequence* s : core->scheduler().running()) {
        ASSERT_EQ(s->num_draft, 0);
        ASSERT_LE(int64_t(core->kv().table(s->id).size()), KvBlockManager::blocks_for(s->known(), core->kv().block_size()))
            << "blocks held past the sequence's tokens";
        ASSERT_LT(s->num_computed, s->known());
      }
    }
    ASSERT_FALSE(core->has_work());
    EXPECT_EQ(core->kv().num_used(), 0) << "every block comes back";
  }
  FakeModelRunner runner;
  std::unique_ptr<EngineCore> core;
  Collector collector;
  RequestId next = 1;
};

EngineCoreConfig spec_config(int64_t blocks, bool cache, int k = 4) {
  EngineCoreConfig c;
  c.num_blocks = blocks;
  c.block_size = 4;
  c.prefix_caching = cache;
  c.scheduler.max_step_tokens = 32;
  c.speculative.method = SpeculativeMethod::kDraftModel;
  c.speculative.num_speculative_tokens = k;
  c.speculative.disable_by_batch_size = 64;  // drafts with many requests in flight (default: 2)
  c.speculative.max_batch_rows = 64;  // and rows for all of them (default: 8 with AVX-512, 4 without)
  return c;
}

using test::greedy;

TEST(SpeculativeEngine, GreedyOutputIsTheReferenceWithManyRequestsInFlight) {
  OracleDrafter drafter(kVocab);
  SpecHarness h(spec_config(256, /*cache=*/true), &drafter);
  std::vector<std::pair<RequestId, std::vector<int32_t>>> reqs;
  for (int i = 0; i < 6; ++i) {
    auto p = make_prompt(3 + 5 * i, 200 + i, kVocab);
    reqs.push_back({h.add(greedy(p, 9 + 4 * i)), p});
  }
  h.drain();
  for (size_t i = 0; i < reqs.size(); ++i) {
    const auto got = h.collector.get(reqs[i].first);
    EXPECT_EQ(got.finish, EngineFinish::kLength);
    EXPECT_EQ(got.tokens, FakeModelRunner::reference_greedy(reqs[i].second, 9 + 4 * int64_t(i), kVocab)) << i;
    EXPECT_EQ(got.completion_tokens, 9 + 4 * int64_t(i));
  }
  const EngineMetrics m = h.core->metrics();
  EXPECT_GT(m.spec_draft_tokens, 0);
  EXPECT_GT(m.spec_accepted_tokens, 0);
  EXPECT_LT(m.spec_accepted_tokens, m.spec_draft_tokens) << "the oracle is wrong at times: some drafts are rejected";
  EXPECT_LE(m.spec_emitted_tokens, m.spec_accepted_tokens + m.spec_verify_steps);
  EXPECT_EQ(drafter.released, 6);
  // Fewer forward steps than tokens: speculation did something.
  int64_t total = 0;
  for (size_t i = 0; i < reqs.size(); ++i) total += 9 + 4 * int64_t(i);
  EXPECT_LT(h.runner.calls(), total);
}

TEST(SpeculativeEngine, PrefixCacheNeverHoldsRejectedDrafts) {
  // A's blocks (prompt + output, computed with drafts in flight) are reused by B, whose prompt is
  // A's prompt and output: a block cached with a rejected draft's K/V would change B's tokens.
  OracleDrafter drafter(kVocab);
  SpecHarness h(spec_config(256, /*cache=*/true, 6), &drafter);
  const auto pa = make_prompt(6, 31, kVocab);
  const RequestId a = h.add(greedy(pa, 30));
  h.drain();
  auto pb = pa;
  const auto out_a = h.collector.get(a).tokens;
  ASSERT_EQ(out_a, FakeModelRunner::reference_greedy(pa, 30, kVocab));
  pb.insert(pb.end(), out_a.begin(), out_a.end());
  const int64_t hits = h.core->kv().hit_blocks();
  const RequestId b = h.add(greedy(pb, 12));
  h.drain();
  EXPECT_EQ(h.collector.get(b).tokens, FakeModelRunner::reference_greedy(pb, 12, kVocab));
  EXPECT_GE(h.core->kv().hit_blocks() - hits, 6) << "B reused A's blocks";
}

TEST(SpeculativeEngine, PreemptionWithDraftsInFlightKeepsTheTokens) {
  OracleDrafter drafter(kVocab);
  SpecHarness h(spec_config(14, /*cache=*/false), &drafter);
  std::vector<std::pair<RequestId, std::vector<int32_t>>> reqs;
  for (int i = 0; i < 6; ++i) {
    auto p = make_prompt(5 + i, 70 + i, kVocab);
    reqs.push_back({h.add(greedy(p, 20)), p});
  }
  h.drain();
  EXPECT_GT(h.core->metrics().preempted_total, 0) << "the small pool must force preemptions";
  for (auto& [id, p] : reqs) EXPECT_EQ(h.collector.get(id).tokens, FakeModelRunner::reference_greedy(p, 20, kVocab));
}

TEST(SpeculativeEngine, EosAmongTheDraftsEndsTheRequestThere) {
  OracleDrafter drafter(kVocab);
  SpecHarness h(spec_config(256, true, 6), &drafter);
  const auto p = make_prompt(7, 5, kVocab);
  const auto ref = FakeModelRunner::reference_greedy(p, 12, kVocab);
  EngineRequest r = greedy(p, 12);
  r.eos_ids = {ref[5]};
  const RequestId id = h.add(r);
  h.drain();
  const auto got = h.collector.get(id);
  EXPECT_EQ(got.finish, EngineFinish::kEos);
  EXPECT_EQ(got.tokens, FakeModelRunner::reference_greedy(p, 12, kVocab, {ref[5]}));
}

TEST(SpeculativeEngine, SampledRequestsRunAndStayConsistent) {
  OracleDrafter drafter(kVocab);
  SpecHarness h(spec_config(40, true), &drafter);
  std::vector<RequestId> ids;
  for (int i = 0; i < 5; ++i) {
    EngineRequest r = greedy(make_prompt(4 + i, 90 + i, kVocab), 25);
    r.sampling.temperature = 0.7f;
    r.sampling.top_p = 0.9f;
    r.sampling.repetition_penalty = 1.1f;
    r.sampling.seed = 17 + i;
    r.top_logprobs = 2;
    ids.push_back(h.add(r));
  }
  h.drain();
  for (RequestId id : ids) {
    const auto got = h.collector.get(id);
    EXPECT_EQ(got.tokens.size(), 25u);
    EXPECT_EQ(got.logprobs.size(), 25u);
    EXPECT_EQ(got.top.size(), 25u);
  }
}

TEST(SpeculativeEngine, DraftsNeverKeepAnotherSequenceFromDecoding) {
  // 8 decoding sequences, 10 tokens per step, 4 drafts each wanted: every decoding sequence still
  // gets its token in every step (the drafts share the 2 spare tokens).
  OracleDrafter drafter(kVocab);
  EngineCoreConfig cfg = spec_config(256, true);
  cfg.scheduler.max_step_tokens = 10;
  cfg.speculative.disable_by_batch_size = 16;
  cfg.speculative.max_batch_rows = 64;
  SpecHarness h(cfg, &drafter);
  std::vector<std::pair<RequestId, std::vector<int32_t>>> reqs;
  for (int i = 0; i < 8; ++i) {
    auto p = make_prompt(1, 300 + i, kVocab);
    reqs.push_back({h.add(greedy(p, 16)), p});
  }
  int64_t checked = 0;
  for (int i = 0; i < 1000 && h.core->has_work(); ++i) {
    std::map<uint64_t, int64_t> before;
    for (const Sequence* s : h.core->scheduler().running()) {
      if (s->decoding()) before[s->id] = s->known();
    }
    h.core->step();
    for (const Sequence* s : h.core->scheduler().running()) {
      auto it = before.find(s->id);
      if (it == before.end()) continue;
      EXPECT_GT(s->known(), it->second) << "sequence " << s->id << " was decoding and got no token";
      ++checked;
    }
  }
  EXPECT_GT(checked, 16);
  EXPECT_GT(h.core->metrics().spec_draft_tokens, 0);
  for (auto& [id, p] : reqs) EXPECT_EQ(h.collector.get(id).tokens, FakeModelRunner::reference_greedy(p, 16, kVocab));
}

TEST(SpeculativeEngine, DraftsFillDecodeRowsUpToMaxBatchRows) {
  // 3 sequences, decode rows capped at 5: drafts fill at most 5 - (sequences decoding) rows; with
  // 9 sequences (more decoding rows than the cap) there are none at all.
  for (int n : {3, 9}) {
    OracleDrafter drafter(kVocab);
    EngineCoreConfig cfg = spec_config(256, true);
    cfg.speculative.max_batch_rows = 5;
    cfg.speculative.disable_by_batch_size = 64;
    SpecHarness h(cfg, &drafter);
    int64_t most = 0, most_rows = 0;
    h.runner.on_forward = [&](const StepBatch& b) {
      int64_t drafts = 0, rows = 0;  // decode rows: decode tokens and their drafts (not prompt chunks)
      for (const auto& s : b.seqs) {
        drafts += s.want_logits ? s.n_logits - 1 : 0;
        rows += s.want_logits && s.n_logits == s.n_tokens ? s.n_tokens : 0;
      }
      most = std::max(most, drafts);
      if (drafts > 0) most_rows = std::max(most_rows, rows);
    };
    std::vector<std::pair<RequestId, std::vector<int32_t>>> reqs;
    for (int i = 0; i < n; ++i) {
      auto p = make_prompt(2, 400 + i, kVocab);
      reqs.push_back({h.add(greedy(p, 12)), p});
    }
    h.drain();
    if (n == 3) {
      EXPECT_GT(most, 0);
      EXPECT_LE(most_rows, 5) << "decode rows with drafts past max_batch_rows";
    } else {
      EXPECT_EQ(most, 0) << "9 decoding sequences are past max_batch_rows: no drafts";
    }
    for (auto& [id, p] : reqs) EXPECT_EQ(h.collector.get(id).tokens, FakeModelRunner::reference_greedy(p, 12, kVocab));
  }
}

TEST(SpeculativeEngine, CreationErrorsNameTheProblem) {
  FakeModelRunner runner;
  ASSERT_TRUE(runner.allocate_kv({16, 4, KvDType::BF16}).is_ok());
  EngineCoreConfig c = spec_config(16, true);
  auto no_drafter = EngineCore::create(runner, nullptr, c, nullptr);
  ASSERT_FALSE(no_drafter.is_ok());
  EXPECT_NE(no_drafter.status().message().find("--draft-model"), std::string::npos);
  OracleDrafter d(kVocab);
  c.speculative.method = SpeculativeMethod::kNone;
  auto stray = EngineCore::create(runner, nullptr, c, &d);
  EXPECT_FALSE(stray.is_ok());
  c.speculative.method = SpeculativeMethod::kNgram;
  EXPECT_TRUE(EngineCore::create(runner, nullptr, c, nullptr).is_ok());  // makes its own n-gram drafter
}

}  // namespace
}  // namespace tern
