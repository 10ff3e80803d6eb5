// Speculative decoding (docs/speculative.md): the n-gram lookup, exact rejection sampling
// (statistically: the emitted tokens follow the target distribution however bad the draft), the
// KV rollback of the block manager, and the engine with a deliberately half-wrong drafter over the
// fake runner: greedy output identical to the reference, prefix cache and preemption still right,
// no block held past a sequence's tokens after verification, every block back at the end.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>

#include "engine/engine_core.h"
#include "engine/fake_model_runner.h"
#include "engine/ngram_drafter.h"
#include "engine_test_util.h"
#include "runtime/sampler.h"

namespace tern {
namespace {

using test::Collector;
using test::make_prompt;

constexpr int64_t kVocab = 64;

// ---- n-gram lookup ------------------------------------------------------------------------------

TEST(NgramDrafter, ProposesWhatFollowedTheMostRecentMatch) {
  //                         0  1  2  3  4  5  6  7  8  9 10 11
  const std::vector<int32_t> t{5, 6, 7, 8, 9, 5, 6, 7, 1, 2, 5, 6};
  // Suffix [5, 6] occurs at 0 and 5; the most recent (5) is followed by 7 1 2 5 6.
  EXPECT_EQ(NgramDrafter::lookup(t, 2, 4, 3), (std::vector<int32_t>{7, 1, 2}));
  // Past the end the continuation reads on into itself: 7 1 2 5 6 | 7 1 2 5 6 ...
  EXPECT_EQ(NgramDrafter::lookup(t, 2, 4, 8), (std::vector<int32_t>{7, 1, 2, 5, 6, 7, 1, 2}));
  // A loop of period 2 (... 3 4 3 4): the match one period back proposes the loop on.
  EXPECT_EQ(NgramDrafter::lookup(std::vector<int32_t>{9, 3, 4, 3, 4}, 2, 2, 5), (std::vector<int32_t>{3, 4, 3, 4, 3}));
  // Longer suffixes win: [2, 5, 6] never occurred before, [5, 6] did.
  const std::vector<int32_t> u{1, 2, 3, 9, 2, 3, 4, 1, 2, 3};
  EXPECT_EQ(NgramDrafter::lookup(u, 1, 3, 2), (std::vector<int32_t>{9, 2}));  // [1 2 3] at 0
  EXPECT_EQ(NgramDrafter::lookup(u, 1, 2, 2), (std::vector<int32_t>{4, 1}));  // [2 3] most recently at 4
  EXPECT_TRUE(NgramDrafter::lookup(std::vector<int32_t>{1, 2, 3, 4}, 1, 3, 4).empty());
  EXPECT_TRUE(NgramDrafter::lookup(t, 2, 4, 0).empty());
  EXPECT_TRUE(NgramDrafter::lookup(std::vector<int32_t>{}, 1, 3, 4).empty());
}

TEST(SpeculativeConfig, UnknownMethodsAndBadValuesAreErrorsNamingThem) {
  EXPECT_EQ(*parse_speculative_method("ngram"), SpeculativeMethod::kNgram);
  EXPECT_EQ(*parse_speculative_method("draft"), SpeculativeMethod::kDraftModel);
  EXPECT_EQ(*parse_speculative_method("none"), SpeculativeMethod::kNone);
  auto bad = parse_speculative_method("eagle");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("'eagle'"), std::string::npos);
  SpeculativeConfig c;
  c.num_speculative_tokens = 0;
  EXPECT_NE(c.validate().message().find("num_speculative_tokens"), std::string::npos);
  c = {};
  c.prompt_lookup_min = 3;
  c.prompt_lookup_max = 2;
  EXPECT_NE(c.validate().message().find("prompt_lookup"), std::string::npos);
}

// ---- rejection sampling -------------------------------------------------------------------------

// Chi-square statistic of counts against probabilities p (cells with p = 0 must stay empty).
double chi_square(const std::vector<int64_t>& counts, const std::vector<double>& p, int64_t n, int* df) {
  double x = 0;
  *df = -1;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == 0) {
      if (counts[i] != 0) return INFINITY;
      continue;
    }
    const double e = p[i] * double(n);
    x += (double(counts[i]) - e) * (double(counts[i]) - e) / e;
    ++*df;
  }
  return x;
}

// The chi-square quantile with P(X > x) = 1e-6 (Wilson-Hilferty): a fixed-seed test that fails only
// for a real bias (a wrong rule gives statistics in the thousands at these sample sizes).
double chi_square_limit(int df) {
  const double z = 4.753, k = df;
  const double a = 1 - 2 / (9 * k) + z * std::sqrt(2 / (9 * k));
  return k * a * a * a;
}

struct Dist {
  std::vector<float> logits;   // log p (temperature 1)
  std::vector<double> p;
};

Dist fixed_dist() {
  Dist d;
  d.p = {0.30, 0.20, 0.15, 0.12, 0.10, 0.07, 0.04, 0.02};
  for (double x : d.p) d.logits.push_back(float(std::log(x)));
  return d;
}

// Emitted tokens of draft-then-verify, n times: the draft is drawn from q (or fixed when q is
// null), then verified against p. Without speculation the token would be a plain draw from p.
std::vector<int64_t> verify_counts(const Dist& d, const SamplingParams& sp, const std::vector<float>* q, int32_t fixed,
                                   int64_t n, double* accept_rate) {
  const int64_t V = int64_t(d.p.size());
  Sampler s(sp, V);
  std::mt19937_64 rng(99);
  std::vector<int64_t> counts(size_t(V), 0);
  int64_t accepted = 0;
  for (int64_t i = 0; i < n; ++i) {
    int32_t draft = fixed;
    if (q) draft = int32_t(std::discrete_distribution<int>(q->begin(), q->end())(rng));
    std::vector<float> row = d.logits;
    bool ok = false;
    const int32_t t = s.verify(row.data(), draft, q ? q->data() : nullptr, &ok);
    ++counts[size_t(t)];
    accepted += ok;
    EXPECT_EQ(ok, t == draft);
  }
  *accept_rate = double(accepted) / double(n);
  return counts;
}

TEST(RejectionSampling, KeepsTheTargetDistributionWithABadDraftDistribution) {
  const Dist d = fixed_dist();
  // q puts most mass where p has little: acceptance is low, the residual does the work.
  const std::vector<float> q{0.02f, 0.03f, 0.05f, 0.05f, 0.05f, 0.10f, 0.30f, 0.40f};
  SamplingParams sp;
  sp.temperature = 1.0f;
  sp.seed = 7;
  constexpr int64_t kN = 200000;
  double acc = 0;
  const auto counts = verify_counts(d, sp, &q, 0, kN, &acc);
  int df = 0;
  const double x = chi_square(counts, d.p, kN, &df);
  EXPECT_LT(x, chi_square_limit(df)) << "emitted tokens do not follow p";
  // Theory: acceptance = Σ min(p, q) = 0.02 + 0.03 + 0.05 + 0.05 + 0.05 + 0.07 + 0.04 + 0.02 = 0.33.
  EXPECT_NEAR(acc, 0.33, 0.01);
  // The check has teeth: the drafts themselves (what accepting everything would emit) fail it.
  std::vector<int64_t> drafts(8, 0);
  std::mt19937_64 rng(5);
  for (int64_t i = 0; i < kN; ++i) ++drafts[size_t(std::discrete_distribution<int>(q.begin(), q.end())(rng))];
  const double x_drafts = chi_square(drafts, d.p, kN, &df);
  EXPECT_GT(x_drafts, 100 * chi_square_limit(df));
}

TEST(RejectionSampling, DeterministicDraftIsAPointMass) {
  const Dist d = fixed_dist();
  SamplingParams sp;
  sp.temperature = 1.0f;
  sp.seed = 11;
  constexpr int64_t kN = 200000;
  for (int32_t fixed : {0, 6}) {  // the likeliest token and an unlikely one
    double acc = 0;
    const auto counts = verify_counts(d, sp, nullptr, fixed, kN, &acc);
    int df = 0;
    const double x = chi_square(counts, d.p, kN, &df);
    EXPECT_LT(x, chi_square_limit(df)) << "draft " << fixed;
    EXPECT_NEAR(acc, d.p[size_t(fixed)], 0.01) << "a point-mass draft is accepted with probability p(draft)";
  }
}

TEST(RejectionSampling, AppliesTheRequestsTransformsFirst) {
  // Temperature 0.5 and top_k 3: the target is p^2 over the 3 likeliest tokens, renormalized; a
  // draft outside them is never accepted.
  const Dist d = fixed_dist();
  SamplingParams sp;
  sp.temperature = 0.5f;
  sp.top_k = 3;
  sp.seed = 3;
  std::vector<double> target(8, 0.0);
  double z = 0;
  for (int i = 0; i < 3; ++i) z += target[size_t(i)] = d.p[size_t(i)] * d.p[size_t(i)];
  for (double& t : target) t /= z;
  const std::vector<float> q{0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.2f, 0.2f};
  constexpr int64_t kN = 200000;
  double acc = 0;
  const auto counts = verify_counts(d, sp, &q, 0, kN, &acc);
  int df = 0;
  const double x = chi_square(counts, target, kN, &df);
  EXPECT_LT(x, chi_square_limit(df));
  const auto fixed = verify_counts(d, sp, nullptr, 7, 1000, &acc);
  EXPECT_EQ(acc, 0.0) << "token 7 is outside top_k: its p is 0";
}

TEST(RejectionSampling, GreedyAcceptsExactlyTheArgmax) {
  const Dist d = fixed_dist();
  SamplingParams sp;
  sp.temperature = 0;
  Sampler s(sp, 8);
  for (int32_t draft = 0; draft < 8; ++draft) {
    std::vector<float> row = d.logits;
    bool ok = false;
    EXPECT_EQ(s.verify(row.data(), draft, nullptr, &ok), 0);
    EXPECT_EQ(ok, draft == 0);
  }
}

// ---- KV rollback --------------------------------------------------------------------------------

TEST(KvRollback, TruncateReturnsTheBlocksPastTheNewLength) {
  KvBlockManager kv(16, 4, /*prefix_caching=*/true);
  std::vector<int32_t> tokens = make_prompt(10, 1, kVocab);
  ASSERT_TRUE(kv.start(1, tokens, 10).is_ok());  // 10 positions: 3 blocks
  kv.commit(1, tokens, 10);                      // blocks 0 and 1 full: cached
  EXPECT_EQ(kv.num_used(), 3);
  ASSERT_TRUE(kv.ensure(1, 10 + 7));             // 7 drafts: 5 blocks
  EXPECT_EQ(kv.num_used(), 5);
  kv.truncate(1, 12);                            // 2 accepted: 12 positions, 3 blocks
  EXPECT_EQ(kv.table(1).size(), 3u);
  EXPECT_EQ(kv.num_used(), 3);
  EXPECT_EQ(kv.num_cached(), 2);
  EXPECT_EQ(kv.check_invariants(), "");
  kv.truncate(1, 12);                            // idempotent
  EXPECT_EQ(kv.num_used(), 3);
  kv.release(1);
  EXPECT_EQ(kv.num_used(), 0);
  EXPECT_EQ(kv.num_available(), 16);
  EXPECT_EQ(kv.check_invariants(), "");
}

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
  return c;
}

EngineRequest greedy(std::vector<int32_t> prompt, int64_t n) {
  EngineRequest r;
  r.prompt = std::move(prompt);
  r.max_new_tokens = n;
  r.sampling.temperature = 0;
  return r;
}

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
