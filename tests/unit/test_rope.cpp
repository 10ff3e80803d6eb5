#include <cmath>
#include <cstring>
#include <numbers>

#include "op_test_util.h"
#include "ops/rope.h"

namespace tern::test {
namespace {

// inv_freq[i] = theta^(-2i/dim) in double.
double default_inv(double theta, int dim, int i) { return 1.0 / std::pow(theta, 2.0 * i / dim); }

TEST(RopeInvFreq, DefaultMatchesClosedForm) {
  RopeConfig cfg;
  cfg.theta = 10000.0;
  cfg.rotary_dim = 64;
  const auto inv = rope_inv_freq(cfg);
  ASSERT_EQ(inv.size(), 32u);
  EXPECT_EQ(inv[0], 1.f);
  for (int i = 0; i < 32; ++i) EXPECT_NEAR(inv[i], default_inv(1e4, 64, i), 3e-7 * default_inv(1e4, 64, i)) << i;
}

// Llama 3 scaling (transformers _compute_llama3_parameters), evaluated independently in double:
//   wavelen = 2π / inv;  high-frequency band (wavelen < old_ctx / high_factor): unchanged;
//   low-frequency band (wavelen > old_ctx / low_factor): inv / factor;
//   otherwise smooth = (old_ctx / wavelen - low_factor) / (high_factor - low_factor) and
//   inv' = (1 - smooth) · inv / factor + smooth · inv.
TEST(RopeInvFreq, Llama3MatchesIndependentDoubleFormula) {
  RopeConfig cfg;
  cfg.theta = 500000.0;
  cfg.rotary_dim = 64;
  cfg.llama3_factor = 32.0;
  cfg.llama3_low_freq_factor = 1.0;
  cfg.llama3_high_freq_factor = 4.0;
  cfg.llama3_original_max_position = 8192.0;
  const auto inv = rope_inv_freq(cfg);
  ASSERT_EQ(inv.size(), 32u);
  int bands[3] = {0, 0, 0};
  for (int i = 0; i < 32; ++i) {
    const double f = default_inv(5e5, 64, i);
    const double wavelen = 2 * std::numbers::pi / f;
    double want;
    if (wavelen < 8192.0 / 4.0) {
      want = f;
      ++bands[0];
    } else if (wavelen > 8192.0 / 1.0) {
      want = f / 32.0;
      ++bands[2];
    } else {
      const double smooth = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
      want = (1 - smooth) * f / 32.0 + smooth * f;
      ++bands[1];
    }
    EXPECT_NEAR(inv[i], want, 1e-6 * want) << "i=" << i;
  }
  // The configuration must exercise all three bands (i <= 14 high, 15..17 medium, >= 18 low).
  EXPECT_EQ(bands[0], 15);
  EXPECT_EQ(bands[1], 3);
  EXPECT_EQ(bands[2], 14);
}

TEST(RopeInvFreq, LinearScalingDividesByFactor) {
  RopeConfig cfg;
  cfg.theta = 10000.0;
  cfg.rotary_dim = 32;
  const auto base = rope_inv_freq(cfg);
  cfg.linear_factor = 4.0;
  const auto scaled = rope_inv_freq(cfg);
  for (size_t i = 0; i < base.size(); ++i) EXPECT_EQ(scaled[i], base[i] / 4.f);
}

// Rotation in double of the fp32 angle float(inv) · float(pos) (the angle itself is what torch
// computes in fp32; everything after it is exact here).
std::vector<double> rope_reference(const std::vector<float>& x, int64_t m, int n_heads, int head_dim,
                                   const std::vector<int32_t>& pos, const std::vector<float>& inv) {
  const int half = int(inv.size());
  std::vector<double> out(x.begin(), x.end());
  for (int64_t i = 0; i < m; ++i)
    for (int h = 0; h < n_heads; ++h)
      for (int j = 0; j < half; ++j) {
        const float angle = inv[j] * float(pos[i]);
        const double c = std::cos(double(angle)), s = std::sin(double(angle));
        const size_t base = size_t((i * n_heads + h) * head_dim);
        const double a = x[base + j], b = x[base + j + half];
        out[base + j] = a * c - b * s;
        out[base + j + half] = b * c + a * s;
      }
  return out;
}

using RopeApplyTest = IsaThreads;

TEST_P(RopeApplyTest, MatchesReferenceIncludingPartialRotary) {
  struct Case {
    int64_t m;
    int n_heads, head_dim, rotary_dim;
  };
  for (const Case& c : {Case{1, 8, 64, 64}, Case{7, 4, 128, 128}, Case{64, 8, 128, 128}, Case{5, 3, 64, 32},
                        Case{9, 2, 20, 12}}) {
    RopeConfig cfg;
    cfg.theta = 500000.0;
    cfg.rotary_dim = c.rotary_dim;
    const auto inv = rope_inv_freq(cfg);
    auto x = random_floats(size_t(c.m * c.n_heads * c.head_dim), -2.f, 2.f, uint32_t(c.m * 13 + c.head_dim));
    std::vector<int32_t> pos(static_cast<size_t>(c.m));
    for (int64_t i = 0; i < c.m; ++i) pos[size_t(i)] = int32_t(i * 977 % 131072);  // up to 128k positions
    const auto want = rope_reference(x, c.m, c.n_heads, c.head_dim, pos, inv);
    rope_apply(*ctx, x.data(), c.m, c.n_heads, c.head_dim, pos.data(), inv);
    for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(x[i], want[i], 1e-5 * std::max(1.0, std::abs(want[i]))) << i;
    // Past rotary_dim nothing changed (bit-exact copy of the input).
    for (size_t i = 0; i < x.size(); ++i) {
      if (int(i % size_t(c.head_dim)) >= c.rotary_dim) {
        ASSERT_EQ(double(x[i]), want[i]);
      }
    }
  }
}

TEST_P(RopeApplyTest, AllIsaLevelsGiveBitIdenticalResults) {
  // Same fp32 operations (no FMA contraction) on every path, so results agree bit for bit.
  RopeConfig cfg;
  cfg.rotary_dim = 64;
  const auto inv = rope_inv_freq(cfg);
  const int64_t m = 33;
  auto x = random_floats(size_t(m * 4 * 64), -3.f, 3.f, 5);
  std::vector<int32_t> pos(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) pos[size_t(i)] = int32_t(100 + 3 * i);
  auto y = x;
  rope_apply(*ctx, x.data(), m, 4, 64, pos.data(), inv);
  ThreadPool pool1(1);
  ExecContext scalar_ctx(pool1, CpuFeatures::detect().capped("scalar"));
  rope_apply(scalar_ctx, y.data(), m, 4, 64, pos.data(), inv);
  EXPECT_EQ(0, std::memcmp(x.data(), y.data(), x.size() * sizeof(float)));
}

TERN_INSTANTIATE_ISA_THREADS(RopeApplyTest);

}  // namespace
}  // namespace tern::test
