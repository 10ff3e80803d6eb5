// Quantized formats: exact OCP e4m3 encode/decode, round-to-nearest bounds, FP8 per-channel.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "formats/quant/quantized_linear.h"
#include "core/fp8.h"

namespace tern {
namespace {

TEST(Fp8E4M3, DecodesTheOcpTable) {
  EXPECT_EQ(fp8_e4m3_to_f32(0x00), 0.0f);
  EXPECT_TRUE(std::signbit(fp8_e4m3_to_f32(0x80)));
  EXPECT_EQ(fp8_e4m3_to_f32(0x01), std::ldexp(1.0f, -9));   // smallest subnormal
  EXPECT_EQ(fp8_e4m3_to_f32(0x07), 7 * std::ldexp(1.0f, -9));
  EXPECT_EQ(fp8_e4m3_to_f32(0x08), std::ldexp(1.0f, -6));   // smallest normal
  EXPECT_EQ(fp8_e4m3_to_f32(0x38), 1.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x39), 1.125f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x7e), 448.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(0xfe), -448.0f);
  EXPECT_TRUE(std::isnan(fp8_e4m3_to_f32(0x7f)));
  EXPECT_TRUE(std::isnan(fp8_e4m3_to_f32(0xff)));
  EXPECT_EQ(fp8_e4m3_to_f32(0x78), 256.0f);  // exponent 15 is an ordinary binade (no inf)
}

TEST(Fp8E4M3, EveryCodeRoundTrips) {
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7f) == 0x7f) continue;
    EXPECT_EQ(f32_to_fp8_e4m3(fp8_e4m3_to_f32(uint8_t(c))), c) << c;
  }
}

TEST(Fp8E4M3, RoundsToNearestEvenAndSaturates) {
  EXPECT_EQ(f32_to_fp8_e4m3(1.0625f), 0x38);   // halfway 1 .. 1.125: even mantissa (1.0)
  EXPECT_EQ(f32_to_fp8_e4m3(1.1875f), 0x3a);   // halfway 1.125 .. 1.25: even (1.25)
  EXPECT_EQ(f32_to_fp8_e4m3(1.07f), 0x39);
  EXPECT_EQ(f32_to_fp8_e4m3(15.5f), 0x58);     // 15 .. 16 halfway, 15 has an odd mantissa: carries to 16 = 2^4
  EXPECT_EQ(f32_to_fp8_e4m3(std::ldexp(1.0f, -10)), 0x00);  // half the smallest subnormal: ties to 0
  EXPECT_EQ(f32_to_fp8_e4m3(std::ldexp(3.0f, -10)), 0x02);  // 1.5 subnormal steps: ties to even (2)
  EXPECT_EQ(f32_to_fp8_e4m3(-0.0f), 0x80);
  EXPECT_EQ(f32_to_fp8_e4m3(448.0f), 0x7e);
  EXPECT_EQ(f32_to_fp8_e4m3(460.0f), 0x7e);
  EXPECT_EQ(f32_to_fp8_e4m3(1e6f), 0x7e);
  EXPECT_EQ(f32_to_fp8_e4m3(-INFINITY), 0xfe);
  EXPECT_EQ(f32_to_fp8_e4m3(NAN) & 0x7f, 0x7f);
  // Every value lands on the nearest representable neighbour.
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-500.f, 500.f);
  for (int i = 0; i < 20000; ++i) {
    const float v = u(rng) * (i % 2 ? 1.0f : 0.001f);
    const float got = fp8_e4m3_to_f32(f32_to_fp8_e4m3(v));
    const float clamped = std::fmax(-448.f, std::fmin(448.f, v));
    for (int c = 0; c < 256; ++c) {
      if ((c & 0x7f) == 0x7f) continue;
      ASSERT_LE(std::fabs(got - clamped), std::fabs(fp8_e4m3_to_f32(uint8_t(c)) - clamped)) << v;
    }
  }
}

TEST(QuantizeRtn, ErrorIsAtMostHalfAStep) {
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> w(8 * 256);
  for (auto& x : w) x = d(rng);
  for (bool sym : {true, false})
    for (int group : {0, 32, 128}) {
      for (int bits : {4, 8}) {
        auto ql = quantize_rtn(w.data(), 8, 256, bits, group, sym).value();
        const auto back = dequantize(ql);
        for (int64_t r = 0; r < 8; ++r)
          for (int64_t c = 0; c < 256; ++c) {
            const float s = ql.scales[size_t(r * ql.n_groups() + ql.group_of(c))];
            ASSERT_LE(std::fabs(back[size_t(r * 256 + c)] - w[size_t(r * 256 + c)]), 0.5f * s * 1.0001f);
            const int code = ql.q[size_t(r * 256 + c)];
            ASSERT_LT(code, 1 << bits);
          }
      }
    }
}

TEST(QuantizeRtn, ZeroStaysExactAndZeroGroupsAreFinite) {
  std::vector<float> w(64, 0.0f);
  w[3] = 0.7f, w[40] = -0.2f;
  for (bool sym : {true, false}) {
    auto ql = quantize_rtn(w.data(), 1, 64, 4, 32, sym).value();
    const auto back = dequantize(ql);
    EXPECT_EQ(back[0], 0.0f);
    EXPECT_EQ(back[63], 0.0f);
  }
  std::vector<float> z(64, 0.0f);
  auto ql = quantize_rtn(z.data(), 1, 64, 4, 32, false).value();
  for (float s : ql.scales) EXPECT_TRUE(std::isfinite(s) && s > 0);
}

TEST(QuantizeFp8, PerChannelScaleMapsTheMaximumTo448) {
  std::vector<float> w = {0.5f, -2.0f, 1.0f, 0.25f, 3.0f, 0.0f, -1.5f, 0.75f};
  auto ql = quantize_fp8(w.data(), 2, 4);
  EXPECT_TRUE(ql.fp8);
  EXPECT_FLOAT_EQ(ql.scales[0], 2.0f / 448.0f);
  EXPECT_FLOAT_EQ(ql.scales[1], 3.0f / 448.0f);
  EXPECT_EQ(ql.q[1], 0xfe);  // -2.0 / scale = -448
  const auto back = dequantize(ql);
  for (size_t i = 0; i < w.size(); ++i) EXPECT_NEAR(back[i], w[i], std::fabs(w[i]) / 16 + 1e-6);
}

}  // namespace
}  // namespace tern
