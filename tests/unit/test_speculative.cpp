// Speculative decoding (docs/speculative.md): the n-gram lookup, exact rejection sampling
// (statistically: the emitted tokens follow the target distribution however bad the draft) and the
// KV rollback of the block manager. The engine with drafts: test_speculative_engine.cpp.
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

TEST(NgramDrafter, FindsTheLongestMatchMostRecentOnTies) {
  //                         0  1  2  3  4  5  6  7  8  9 10 11
  const std::vector<int32_t> t{1, 2, 3, 9, 2, 3, 4, 1, 2, 3};
  // [1 2 3] ends at 2 (followed by index 3); [2 3] alone would be more recent (ends at 5).
  auto m = NgramDrafter::longest_match(t, 1, 8);
  EXPECT_EQ(m.n, 3);
  EXPECT_EQ(m.next, 3);
  m = NgramDrafter::longest_match(t, 1, 2);  // capped at 2: the most recent [2 3]
  EXPECT_EQ(m.n, 2);
  EXPECT_EQ(m.next, 6);
  EXPECT_EQ(NgramDrafter::longest_match(t, 4, 8).n, 0);  // nothing of 4 or more
  // A loop of period 2: one period back, the match reaches as far back as the loop goes.
  const std::vector<int32_t> loop{7, 3, 4, 3, 4, 3, 4, 3, 4};
  m = NgramDrafter::longest_match(loop, 1, 32);
  EXPECT_EQ(m.n, 6);
  EXPECT_EQ(m.next, 7);
  EXPECT_EQ(NgramDrafter::longest_match(loop, 1, 3).n, 3);  // capped by max_n
  EXPECT_EQ(NgramDrafter::longest_match(std::vector<int32_t>{5}, 1, 4).n, 0);
  EXPECT_EQ(NgramDrafter::longest_match(std::vector<int32_t>{5, 5}, 1, 4).n, 1);
}

TEST(NgramDrafter, ProposalLengthDoublesWithTheMatchAndOneTokenMatchesAreTentative) {
  EXPECT_EQ(NgramDrafter::draft_length(0, 5), 0);
  EXPECT_EQ(NgramDrafter::draft_length(1, 5), 1);
  EXPECT_EQ(NgramDrafter::draft_length(2, 5), 2);
  EXPECT_EQ(NgramDrafter::draft_length(3, 5), 4);
  EXPECT_EQ(NgramDrafter::draft_length(4, 5), 5);
  EXPECT_EQ(NgramDrafter::draft_length(60, 7), 7);
  EXPECT_EQ(NgramDrafter::draft_length(3, 2), 2);

  NgramDrafter d(1, 8);
  EXPECT_TRUE(d.sizes_drafts());
  Sequence s;
  std::vector<DraftSlot> slots(1);
  auto propose = [&](std::vector<int32_t> tokens, int64_t max_tokens, bool allow_tentative) {
    s.tokens = std::move(tokens);
    slots[0] = DraftSlot();
    slots[0].seq = &s;
    slots[0].max_tokens = max_tokens;
    slots[0].allow_tentative = allow_tentative;
    EXPECT_TRUE(d.propose(slots).is_ok());
    return slots[0].tokens;
  };
  // One-token match ([3] at 2): one token, tentative; not proposed at all while tentative ones are off.
  EXPECT_EQ(propose({1, 2, 3, 9, 3}, 5, true), (std::vector<int32_t>{9}));
  EXPECT_TRUE(slots[0].tentative);
  EXPECT_TRUE(propose({1, 2, 3, 9, 3}, 5, false).empty());
  // Two tokens ([2 3] at 1..2): two, firm, also while tentative ones are off.
  EXPECT_EQ(propose({1, 2, 3, 9, 8, 2, 3}, 5, false), (std::vector<int32_t>{9, 8}));
  EXPECT_FALSE(slots[0].tentative);
  // Three ([1 2 3]): four tokens, read on into the proposal past the end.
  EXPECT_EQ(propose({1, 2, 3, 9, 1, 2, 3}, 5, true), (std::vector<int32_t>{9, 1, 2, 3}));
  // A long loop: max_tokens.
  EXPECT_EQ(propose({7, 3, 4, 3, 4, 3, 4, 3, 4}, 5, true), (std::vector<int32_t>{3, 4, 3, 4, 3}));
  EXPECT_EQ(propose({7, 3, 4, 3, 4, 3, 4, 3, 4}, 3, true), (std::vector<int32_t>{3, 4, 3}));
  EXPECT_TRUE(propose({1, 2, 3, 4}, 5, true).empty());
  EXPECT_TRUE(slots[0].probs.empty());
}

TEST(DraftPacer, ASelfSizingDrafterPausesOnlyTentativeProposalsAfterTheyFail) {
  DraftPacer p(5, /*drafter_sizes=*/true);
  DraftPacer::Ask a = p.next();
  EXPECT_EQ(a.max_tokens, 5);
  EXPECT_TRUE(a.allow_tentative);
  // A firm proposal wholly rejected: no pause, the length stays the drafter's to choose.
  p.proposed(false);
  p.after_step(4, 0);
  a = p.next();
  EXPECT_EQ(a.max_tokens, 5);
  EXPECT_TRUE(a.allow_tentative);
  // Tentative ones wholly rejected: pauses of 1, then 2, then 4 steps without tentative proposals,
  // firm ones still allowed up to 5.
  for (int pause : {1, 2, 4}) {
    p.proposed(true);
    p.after_step(1, 0);
    for (int i = 0; i < pause; ++i) {
      a = p.next();
      EXPECT_EQ(a.max_tokens, 5);
      EXPECT_FALSE(a.allow_tentative) << "pause " << pause << " step " << i;
    }
    EXPECT_TRUE(p.next().allow_tentative);
  }
  // Something accepted: the next pause is short again.
  p.proposed(true);
  p.after_step(1, 1);
  p.proposed(true);
  p.after_step(1, 0);
  EXPECT_FALSE(p.next().allow_tentative);
  EXPECT_TRUE(p.next().allow_tentative);
}

TEST(DraftPacer, OtherDraftersGetALengthThatFollowsAcceptanceAndPauses) {
  DraftPacer p(5, /*drafter_sizes=*/false);
  EXPECT_EQ(p.next().max_tokens, 5);
  p.proposed(false);  // ignored: every proposal of such a drafter counts as tentative
  p.after_step(5, 2);
  EXPECT_EQ(p.next().max_tokens, 3);  // accepted + 1
  p.after_step(3, 3);
  EXPECT_EQ(p.next().max_tokens, 4);  // one more after a clean sweep
  p.after_step(4, 0);
  EXPECT_EQ(p.next().max_tokens, 0);  // a pause of 1 step
  EXPECT_EQ(p.next().max_tokens, 1);
  p.after_step(1, 0);
  EXPECT_EQ(p.next().max_tokens, 0);  // then 2
  EXPECT_EQ(p.next().max_tokens, 0);
  EXPECT_EQ(p.next().max_tokens, 1);
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

}  // namespace
}  // namespace tern
