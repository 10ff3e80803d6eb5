#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "runtime/sampler.h"

namespace tern {
namespace {

std::vector<float> logits_of(std::initializer_list<float> v) { return std::vector<float>(v); }

TEST(Sampler, GreedyTakesTheArgmaxAndTheFirstOfEquals) {
  Sampler s({.temperature = 0}, 5);
  auto l = logits_of({0.1f, 3.0f, -1.0f, 3.0f, 2.0f});
  EXPECT_EQ(s.sample(l.data()), 1);
}

TEST(Sampler, TopKOneIsGreedy) {
  Sampler s({.temperature = 1.5f, .top_k = 1, .seed = 7}, 5);
  for (int i = 0; i < 50; ++i) {
    auto l = logits_of({0.1f, 0.2f, 5.0f, 0.3f, 0.0f});
    EXPECT_EQ(s.sample(l.data()), 2);
  }
}

TEST(Sampler, SameSeedSameStream) {
  std::vector<int32_t> a, b;
  for (auto* out : {&a, &b}) {
    Sampler s({.temperature = 1.0f, .seed = 42}, 6);
    for (int i = 0; i < 100; ++i) {
      auto l = logits_of({1, 1, 1, 1, 1, 1});
      out->push_back(s.sample(l.data()));
    }
  }
  EXPECT_EQ(a, b);
  std::map<int32_t, int> counts;
  for (int32_t id : a) counts[id]++;
  EXPECT_GE(counts.size(), 4u) << "uniform logits must spread over the vocabulary";
}

TEST(Sampler, DistributionFollowsSoftmax) {
  // p = softmax([log 1, log 3]) = [0.25, 0.75]
  Sampler s({.temperature = 1.0f, .seed = 1}, 2);
  int ones = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    auto l = logits_of({0.0f, std::log(3.0f)});
    ones += s.sample(l.data());
  }
  EXPECT_NEAR(double(ones) / n, 0.75, 0.015);
}

TEST(Sampler, TopPKeepsTheSmallestPrefixReachingTheMass) {
  // probs 0.5, 0.3, 0.2: top_p 0.6 keeps {0, 1}; token 2 never appears.
  Sampler s({.temperature = 1.0f, .top_p = 0.6f, .seed = 3}, 3);
  std::map<int32_t, int> counts;
  for (int i = 0; i < 5000; ++i) {
    auto l = logits_of({std::log(0.5f), std::log(0.3f), std::log(0.2f)});
    counts[s.sample(l.data())]++;
  }
  EXPECT_EQ(counts[2], 0);
  EXPECT_GT(counts[1], 1500);
}

TEST(Sampler, TopPOverALargeVocabularyNeedsMoreThanTheFirstSortedBlock) {
  // 4,000 equal logits: top_p 0.9 must keep 3,600 of them, more than the first sorted 1,024.
  const int64_t vocab = 4000;
  Sampler s({.temperature = 1.0f, .top_p = 0.9f, .seed = 5}, vocab);
  int high = 0;
  for (int i = 0; i < 4000; ++i) {
    std::vector<float> l(size_t(vocab), 0.0f);
    high += s.sample(l.data()) >= 1024;
  }
  EXPECT_GT(high, 2500);
}

TEST(Sampler, MinPDropsUnlikelyTokens) {
  // p_max = 0.6; min_p 0.5 keeps p >= 0.3: tokens 0 (0.6) and 1 (0.3), never 2 (0.1).
  Sampler s({.temperature = 1.0f, .min_p = 0.5f, .seed = 9}, 3);
  for (int i = 0; i < 3000; ++i) {
    auto l = logits_of({std::log(0.6f), std::log(0.3f), std::log(0.1f)});
    EXPECT_NE(s.sample(l.data()), 2);
  }
}

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesNegative) {
  Sampler s({.temperature = 0, .repetition_penalty = 2.0f}, 3);
  s.add_prompt({0, 1});
  auto l = logits_of({4.0f, -1.0f, 2.5f});
  EXPECT_EQ(s.sample(l.data()), 2);  // 4 -> 2 < 2.5
  EXPECT_FLOAT_EQ(l[0], 2.0f);
  EXPECT_FLOAT_EQ(l[1], -2.0f);
  EXPECT_FLOAT_EQ(l[2], 2.5f);
}

TEST(Sampler, PresenceAndFrequencyPenaltiesCountOutputTokensOnly) {
  Sampler s({.temperature = 0, .presence_penalty = 0.5f, .frequency_penalty = 0.25f}, 3);
  s.add_prompt({2});  // prompt tokens do not count for these penalties
  s.add_output(0);
  s.add_output(0);
  auto l = logits_of({1.0f, 0.0f, 0.0f});
  s.sample(l.data());
  EXPECT_FLOAT_EQ(l[0], 1.0f - 0.5f - 0.25f * 2);
  EXPECT_FLOAT_EQ(l[2], 0.0f);
}

// OpenAI logit_bias: added to the logit before sampling; -100 bans, +100 forces; ids past the vocabulary
// are ignored (the API answers them with a 400 first).
TEST(Sampler, LogitBiasShiftsBansAndForces) {
  SamplingParams p{.temperature = 0};
  p.logit_bias = {{1, -100.f}, {4, 1.5f}, {99, 5.f}};
  Sampler greedy(p, 5);
  auto l = logits_of({0.1f, 3.0f, -1.0f, 2.9f, 2.0f});
  EXPECT_EQ(greedy.sample(l.data()), 4);  // 2.0 + 1.5 beats 2.9; token 1 is banned
  p.temperature = 1.0f;
  p.seed = 3;
  p.logit_bias = {{2, 100.f}};
  Sampler forced(p, 5);
  for (int i = 0; i < 50; ++i) {
    auto row = logits_of({5.0f, 5.0f, -5.0f, 5.0f, 5.0f});
    EXPECT_EQ(forced.sample(row.data()), 2);
  }
}

TEST(Sampler, ValidateRejectsAbsurdValues) {
  EXPECT_FALSE((SamplingParams{.temperature = -1}).validate().is_ok());
  EXPECT_FALSE((SamplingParams{.temperature = NAN}).validate().is_ok());
  EXPECT_FALSE((SamplingParams{.top_k = -3}).validate().is_ok());
  EXPECT_FALSE((SamplingParams{.top_p = 0}).validate().is_ok());
  EXPECT_FALSE((SamplingParams{.top_p = 1.5f}).validate().is_ok());
  EXPECT_FALSE((SamplingParams{.min_p = 2}).validate().is_ok());
  EXPECT_FALSE((SamplingParams{.repetition_penalty = 0}).validate().is_ok());
  EXPECT_FALSE((SamplingParams{.presence_penalty = 3}).validate().is_ok());
  EXPECT_TRUE((SamplingParams{}).validate().is_ok());
  EXPECT_NE(SamplingParams{.top_p = 1.5f}.validate().message().find("top_p"), std::string::npos);
}

}  // namespace
}  // namespace tern
