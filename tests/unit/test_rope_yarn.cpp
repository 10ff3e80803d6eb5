// YaRN rope scaling (rope_type "yarn", DeepSeek-V3's config) against values worked out by hand from
// transformers' _compute_yarn_parameters.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "ops/rope.h"

namespace tern::test {
namespace {

// DeepSeek-V3: qk_rope_head_dim 64, theta 10000, factor 40, beta_fast 32, beta_slow 1,
// original_max_position_embeddings 4096, mscale = mscale_all_dim = 1.
RopeConfig deepseek_v3_yarn() {
  RopeConfig r;
  r.theta = 10000.0;
  r.rotary_dim = 64;
  r.yarn_factor = 40.0;
  r.yarn_beta_fast = 32.0;
  r.yarn_beta_slow = 1.0;
  r.yarn_original_max_position = 4096.0;
  r.yarn_mscale = 1.0;
  r.yarn_mscale_all_dim = 1.0;
  return r;
}

// Correction range: dim · ln(4096 / (rotations · 2π)) / (2 ln 10000)
//   beta_fast 32 → 64 · ln(20.372) / 18.4207 = 10.47 → floor 10
//   beta_slow 1  → 64 · ln(651.90) / 18.4207 = 22.51 → ceil 23
// so inv[i] = 10000^(-i/32) for i ≤ 10, 10000^(-i/32) / 40 for i ≥ 23, and between
// inv = f/40 · r + f · (1 - r) with r = (i - 10) / 13. At i = 16: f = 0.01, r = 6/13:
// 0.01 · (6/520 + 7/13) = 0.0055.
TEST(RopeYarn, InvFreqMatchesHandComputedValues) {
  const auto inv = rope_inv_freq(deepseek_v3_yarn());
  ASSERT_EQ(inv.size(), 32u);
  auto f = [](int i) { return std::pow(10000.0, -i / 32.0); };
  const struct {
    int i;
    double want;
  } cases[] = {
      {0, 1.0},           {5, f(5)},         {10, f(10)}, {11, f(11) / 40 * (1.0 / 13) + f(11) * (12.0 / 13)},
      {16, 0.0055},       {22, f(22) / 40 * (12.0 / 13) + f(22) * (1.0 / 13)},
      {23, f(23) / 40},   {31, f(31) / 40},
  };
  for (const auto& c : cases) EXPECT_NEAR(inv[size_t(c.i)], c.want, 2e-6 * c.want) << "i=" << c.i;
  // Monotone decreasing, as every rope frequency table.
  for (size_t i = 1; i < inv.size(); ++i) EXPECT_LT(inv[i], inv[i - 1]) << i;
}

TEST(RopeYarn, AttentionFactor) {
  RopeConfig r = deepseek_v3_yarn();
  // mscale == mscale_all_dim: the two corrections cancel (DeepSeek-V3 scales the softmax instead).
  EXPECT_DOUBLE_EQ(rope_attention_factor(r), 1.0);
  // mscale alone absent: 0.1 · ln(40) + 1.
  r.yarn_mscale = 0;
  EXPECT_NEAR(rope_attention_factor(r), 1.3688879454113936, 1e-12);
  r.yarn_attention_factor = 0.5;  // explicit wins
  EXPECT_DOUBLE_EQ(rope_attention_factor(r), 0.5);
  EXPECT_DOUBLE_EQ(yarn_get_mscale(1.0, 1.0), 1.0);  // no scaling below factor 1
  EXPECT_DOUBLE_EQ(rope_attention_factor(RopeConfig{}), 1.0);
}

TEST(RopeYarn, WithoutTruncationTheRampStartsAtTheRealCorrectionDim) {
  RopeConfig r = deepseek_v3_yarn();
  r.yarn_truncate = false;
  const auto inv = rope_inv_freq(r);
  const double lo = 64 * std::log(4096 / (32 * 2 * std::numbers::pi)) / (2 * std::log(10000.0));
  const double hi = 64 * std::log(4096 / (2 * std::numbers::pi)) / (2 * std::log(10000.0));
  const double ramp = (16 - lo) / (hi - lo);
  const double want = 0.01 / 40 * ramp + 0.01 * (1 - ramp);
  EXPECT_NEAR(inv[16], want, 2e-6 * want);
}

}  // namespace
}  // namespace tern::test
