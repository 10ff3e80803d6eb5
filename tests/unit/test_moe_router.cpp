// Routing variants, each on a case computed by hand:
//   softmax top-k renormalised (Mixtral, Qwen norm_topk_prob) and not (Qwen2-MoE default);
//   DeepSeek-V3: sigmoid scores, choice by score + e_score_correction_bias limited to the
//   topk_group best groups (group score = sum of its two best corrected scores), weights from the
//   uncorrected scores, normalised, times routed_scaling_factor; transformers' masked_fill(0.0)
//   quirk (a masked expert scores 0, which beats negative corrected scores) reproduced.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "model/blocks/moe_router.h"

namespace tern {
namespace {

struct Routed {
  std::vector<int32_t> idx;
  std::vector<float> w;
};

Routed route(const MoeConfig& m, const std::vector<float>& logits, const std::vector<float>& bias = {}) {
  const int64_t rows = int64_t(logits.size()) / m.n_experts;
  Routed r{std::vector<int32_t>(size_t(rows * m.top_k)), std::vector<float>(size_t(rows * m.top_k))};
  MoeRouteScratch scratch;
  moe_route(m, logits.data(), bias.empty() ? nullptr : bias.data(), rows, r.idx.data(), r.w.data(), scratch);
  return r;
}

float logit_of(float s) { return std::log(s / (1 - s)); }

TEST(MoeRouter, SoftmaxTopKRenormalised) {
  MoeConfig m;
  m.n_experts = 4, m.top_k = 2, m.norm_topk_prob = true;
  // softmax ∝ [1, 2, 3, 4] / 10: top-2 = experts 3 (0.4) and 2 (0.3), renormalised 4/7 and 3/7.
  const Routed r = route(m, {0, std::log(2.f), std::log(3.f), std::log(4.f)});
  EXPECT_EQ(r.idx, (std::vector<int32_t>{3, 2}));
  EXPECT_NEAR(r.w[0], 4.0 / 7, 1e-6);
  EXPECT_NEAR(r.w[1], 3.0 / 7, 1e-6);
}

TEST(MoeRouter, SoftmaxTopKRaw) {
  MoeConfig m;
  m.n_experts = 4, m.top_k = 2, m.norm_topk_prob = false;
  // Two rows; the second is the first shifted (softmax is shift-invariant) and permuted.
  const Routed r = route(m, {0, std::log(2.f), std::log(3.f), std::log(4.f),  //
                             5 + std::log(4.f), 5, 5 + std::log(3.f), 5 + std::log(2.f)});
  EXPECT_EQ(r.idx, (std::vector<int32_t>{3, 2, 0, 2}));
  EXPECT_NEAR(r.w[0], 0.4, 1e-6);
  EXPECT_NEAR(r.w[1], 0.3, 1e-6);
  EXPECT_NEAR(r.w[2], 0.4, 1e-6);
  EXPECT_NEAR(r.w[3], 0.3, 1e-6);
}

TEST(MoeRouter, SoftmaxTiesGoToLowerIndex) {
  MoeConfig m;
  m.n_experts = 3, m.top_k = 1, m.norm_topk_prob = true;
  EXPECT_EQ(route(m, {1, 2, 2}).idx, (std::vector<int32_t>{1}));
}

MoeConfig deepseek(int n_experts, int n_group, int topk_group, int k, bool norm) {
  MoeConfig m;
  m.n_experts = n_experts, m.top_k = k, m.scoring = MoeScoring::kSigmoid, m.correction_bias = true;
  m.n_group = n_group, m.topk_group = topk_group, m.norm_topk_prob = norm, m.routed_scaling_factor = 2.5;
  return m;
}

// s = [.9 .1 | .6 .5 | .2 .35 | .7 .8], bias = [-.5 0 | 0 0 | .6 0 | 0 -.5]
// c = s + bias = [.4 .1 | .6 .5 | .8 .35 | .7 .3]; group scores .5, 1.1, 1.15, 1.0 -> groups 2 and 1
// allowed; best c there: expert 4 (.8), expert 2 (.6). (Without groups it would be 4 and 6; without
// the bias 0 and 7.) Weights s[4] = .2, s[2] = .6.
std::vector<float> ds_logits() {
  std::vector<float> l;
  for (float s : {0.9f, 0.1f, 0.6f, 0.5f, 0.2f, 0.35f, 0.7f, 0.8f}) l.push_back(logit_of(s));
  return l;
}
const std::vector<float> kDsBias = {-0.5f, 0, 0, 0, 0.6f, 0, 0, -0.5f};

TEST(MoeRouter, DeepSeekGroupLimitedBiasedChoiceNormalisedScaled) {
  const Routed r = route(deepseek(8, 4, 2, 2, true), ds_logits(), kDsBias);
  EXPECT_EQ(r.idx, (std::vector<int32_t>{4, 2}));
  EXPECT_NEAR(r.w[0], 0.2 / 0.8 * 2.5, 1e-6);  // 0.625
  EXPECT_NEAR(r.w[1], 0.6 / 0.8 * 2.5, 1e-6);  // 1.875
}

TEST(MoeRouter, DeepSeekUnnormalisedStillScaled) {
  const Routed r = route(deepseek(8, 4, 2, 2, false), ds_logits(), kDsBias);
  EXPECT_EQ(r.idx, (std::vector<int32_t>{4, 2}));
  EXPECT_NEAR(r.w[0], 0.2 * 2.5, 1e-6);
  EXPECT_NEAR(r.w[1], 0.6 * 2.5, 1e-6);
}

TEST(MoeRouter, DeepSeekOneGroupIsPlainBiasedTopK) {
  const Routed r = route(deepseek(8, 1, 1, 2, true), ds_logits(), kDsBias);
  EXPECT_EQ(r.idx, (std::vector<int32_t>{4, 6}));  // c = .8, .7
  EXPECT_NEAR(r.w[0], 0.2 / 0.9 * 2.5, 1e-6);
  EXPECT_NEAR(r.w[1], 0.7 / 0.9 * 2.5, 1e-6);
}

TEST(MoeRouter, DeepSeekZeroBiasChoosesByScore) {
  const Routed r = route(deepseek(8, 1, 1, 2, true), ds_logits(), std::vector<float>(8, 0.0f));
  EXPECT_EQ(r.idx, (std::vector<int32_t>{0, 7}));
  EXPECT_NEAR(r.w[0], 0.9 / 1.7 * 2.5, 1e-6);
}

TEST(MoeRouter, DeepSeekMaskedExpertsScoreZeroLikeTransformers) {
  // s = [.1 .2 | .3 .4], bias = [-.5 -.5 | -.9 -.9]: c = [-.4 -.3 | -.6 -.5]; group 0 (-.7) wins,
  // group 1's c become 0 and beat group 0's negative scores: transformers picks experts 2 and 3.
  std::vector<float> l;
  for (float s : {0.1f, 0.2f, 0.3f, 0.4f}) l.push_back(logit_of(s));
  const Routed r = route(deepseek(4, 2, 1, 2, true), l, {-0.5f, -0.5f, -0.9f, -0.9f});
  EXPECT_EQ(r.idx, (std::vector<int32_t>{2, 3}));
  EXPECT_NEAR(r.w[0], 0.3 / 0.7 * 2.5, 1e-6);
  EXPECT_NEAR(r.w[1], 0.4 / 0.7 * 2.5, 1e-6);
}

}  // namespace
}  // namespace tern
