// ggml block formats: hand-built blocks decoded per the published layouts, quantize -> dequantize
// round-trip error bounds per format, and the matmul kernels (scalar, AVX2; GEMV and GEMM) against
// dequantize + a plain f32 matmul.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/cpu/gguf_kernels.h"
#include "ops/matmul.h"

namespace tern {
namespace {

void put_half(uint8_t* p, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}

std::vector<float> dequant(GgufType t, const std::vector<uint8_t>& b) {
  std::vector<float> y(size_t(gguf_traits(t).block_elems));
  gguf_dequantize_row(t, b.data(), y.data(), int64_t(y.size()));
  return y;
}

TEST(GgufBlocks, TypeTable) {
  EXPECT_EQ(gguf_traits(GgufType::Q4_0).block_bytes, 18);
  EXPECT_EQ(gguf_traits(GgufType::Q4_1).block_bytes, 20);
  EXPECT_EQ(gguf_traits(GgufType::Q5_0).block_bytes, 22);
  EXPECT_EQ(gguf_traits(GgufType::Q5_1).block_bytes, 24);
  EXPECT_EQ(gguf_traits(GgufType::Q8_0).block_bytes, 34);
  EXPECT_EQ(gguf_traits(GgufType::Q2_K).block_bytes, 84);
  EXPECT_EQ(gguf_traits(GgufType::Q3_K).block_bytes, 110);
  EXPECT_EQ(gguf_traits(GgufType::Q4_K).block_bytes, 144);
  EXPECT_EQ(gguf_traits(GgufType::Q5_K).block_bytes, 176);
  EXPECT_EQ(gguf_traits(GgufType::Q6_K).block_bytes, 210);
  EXPECT_EQ(gguf_traits(GgufType::Q8_K).block_bytes, 292);
  EXPECT_EQ(gguf_type_traits(20), nullptr);  // IQ4_NL: unknown to tern
  EXPECT_EQ(gguf_type_from_name("q4_k"), GgufType::Q4_K);
  EXPECT_FALSE(gguf_type_from_name("Q8_K").has_value());  // activation format, not for weights
}

TEST(GgufBlocks, HandBuiltLegacyBlocks) {
  // Q8_0: d = 0.5, q[i] = i - 16.
  std::vector<uint8_t> b(34);
  put_half(b.data(), 0.5f);
  for (int i = 0; i < 32; ++i) b[2 + i] = uint8_t(int8_t(i - 16));
  auto y = dequant(GgufType::Q8_0, b);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(y[i], 0.5f * float(i - 16));

  // Q4_0: d = 2; byte j holds value j (low nibble) and value j+16 (high nibble); x = d*(q-8).
  b.assign(18, 0);
  put_half(b.data(), 2.f);
  b[2] = 0x3A;  // value 0: 10 -> 4, value 16: 3 -> -10
  auto y0 = dequant(GgufType::Q4_0, b);
  EXPECT_EQ(y0[0], 4.f);
  EXPECT_EQ(y0[16], -10.f);
  EXPECT_EQ(y0[1], -16.f);

  // Q4_1: x = d*q + m with d = 1, m = -3.
  b.assign(20, 0);
  put_half(b.data(), 1.f);
  put_half(b.data() + 2, -3.f);
  b[4 + 5] = 0xF1;
  auto y1 = dequant(GgufType::Q4_1, b);
  EXPECT_EQ(y1[5], -2.f);
  EXPECT_EQ(y1[21], 12.f);

  // Q5_0: the fifth bit of value j is bit j of qh (little-endian u32); x = d*(q-16).
  b.assign(22, 0);
  put_half(b.data(), 1.f);
  const uint32_t qh = (1u << 3) | (1u << 19);  // values 3 and 19 get +16
  std::memcpy(b.data() + 2, &qh, 4);
  b[6 + 3] = 0x21;  // value 3: 1 | 16 = 17 -> 1; value 19: 2 | 16 = 18 -> 2
  auto y2 = dequant(GgufType::Q5_0, b);
  EXPECT_EQ(y2[3], 1.f);
  EXPECT_EQ(y2[19], 2.f);
  EXPECT_EQ(y2[0], -16.f);

  // Q5_1: qh after d and m.
  b.assign(24, 0);
  put_half(b.data(), 0.5f);
  put_half(b.data() + 2, 1.f);
  const uint32_t qh1 = 1u << 31;
  std::memcpy(b.data() + 4, &qh1, 4);
  b[8 + 15] = 0x70;  // value 31: 7 | 16 = 23 -> 0.5*23 + 1
  auto y3 = dequant(GgufType::Q5_1, b);
  EXPECT_EQ(y3[31], 12.5f);
  EXPECT_EQ(y3[15], 1.f);
}

TEST(GgufBlocks, HandBuiltKBlocks) {
  // Q4_K: d = 1, dmin = 0.5; sub-block 0: scale 3, min 2 (6-bit pair 0); sub-block 5: scale 40 =
  // 0b101000 (low 4 bits in byte 9, high 2 bits in byte 1 bits 6-7), min 17 = 0b010001.
  std::vector<uint8_t> b(144, 0);
  put_half(b.data(), 1.f);
  put_half(b.data() + 2, 0.5f);
  uint8_t* sc = b.data() + 4;
  sc[0] = 3;
  sc[4] = 2;
  sc[9] = uint8_t((40 & 0xF) | ((17 & 0xF) << 4));
  sc[1] = uint8_t((40 >> 4) << 6);
  sc[5] = uint8_t((17 >> 4) << 6);
  uint8_t* qs = b.data() + 16;
  qs[0] = 0x07;           // value 0 (sub 0): 7; value 32 (sub 1): 0
  qs[2 * 32 + 1] = 0x90;  // chunk 2: value 128+32+1 = 161 (sub 5) high nibble 9
  auto y = dequant(GgufType::Q4_K, b);
  EXPECT_EQ(y[0], 3.f * 7 - 0.5f * 2);
  EXPECT_EQ(y[161], 40.f * 9 - 0.5f * 17);

  // Q6_K: d = 0.25, scales[h*8 + (e%128)/16]; value 64+3 (half 0) = high nibble of ql[3] with
  // qh[3] bits 4-5; code 32 + 5 = 37 = 0b100101 -> low 5, high 2.
  b.assign(210, 0);
  put_half(b.data() + 208, 0.25f);
  b[192 + 4] = 8;  // scale of sub-block 4 (values 64..79)
  b[3] = 0x50;
  b[128 + 3] = 2 << 4;
  auto y6 = dequant(GgufType::Q6_K, b);
  EXPECT_EQ(y6[67], 0.25f * 8 * 5);
  EXPECT_EQ(y6[0], 0.f);  // scale 0

  // Q3_K: d = 1; scale i is (6-bit stored value) - 32; value 40 = half 0, pair 1, l 8: 2 bits at
  // shift 2 of qs[8], high bit = bit 1 of hmask[8]; code 0b110 = 6 -> 6 - 4 = 2; scale index 2.
  b.assign(110, 0);
  put_half(b.data() + 108, 1.f);
  uint8_t* s3 = b.data() + 96;
  // every scale byte 0 means stored 0 -> -32; set scale 2 to 35 (-> 3): low nibble 3, high bits 2.
  s3[2] = 3;
  s3[8 + 2] = 2;  // bits 0-1 of byte 8 + (2 % 4) carry scale 2's high bits
  b[32 + 8] = uint8_t(2 << 2);
  b[8] = 1 << 1;
  auto y3 = dequant(GgufType::Q3_K, b);
  EXPECT_EQ(y3[40], 3.f * 2);
  EXPECT_EQ(y3[0], -32.f * -4);  // code 0 with clear high bit: (0 - 4) * (0 - 32)

  // Q2_K: scales byte = scale | min << 4; x = d*scale*q - dmin*min.
  b.assign(84, 0);
  put_half(b.data() + 80, 2.f);
  put_half(b.data() + 82, 1.f);
  b[9] = 0x35;            // sub-block 9 (values 144..159): scale 5, min 3
  b[11] = 0x21;           // sub-block 11 (values 176..191): scale 1, min 2
  b[16 + 32 + 16] = 0x0C;  // qs[48]: value 144 (half 1, shift 0, l 16) = 0; value 176 (shift 2) = 3
  auto y2 = dequant(GgufType::Q2_K, b);
  EXPECT_EQ(y2[144], -3.f);
  EXPECT_EQ(y2[176], 2.f * 1 * 3 - 1.f * 2);
}

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

struct Bound {
  GgufType type;
  double max_rel_rmse;  // RMS error / RMS value on Gaussian data
};

class GgufRoundTrip : public ::testing::TestWithParam<Bound> {};

TEST_P(GgufRoundTrip, ErrorWithinBound) {
  const Bound b = GetParam();
  const int64_t n = 4096;
  const auto x = random_values(size_t(n), 7);
  std::vector<uint8_t> q(gguf_row_bytes(b.type, n));
  gguf_quantize_row(b.type, x.data(), q.data(), n);
  std::vector<float> y(static_cast<size_t>(n));
  gguf_dequantize_row(b.type, q.data(), y.data(), n);
  double err = 0, ref = 0;
  for (int64_t i = 0; i < n; ++i) err += double(x[i] - y[i]) * (x[i] - y[i]), ref += double(x[i]) * x[i];
  const double rel = std::sqrt(err / ref);
  EXPECT_LT(rel, b.max_rel_rmse) << gguf_traits(b.type).name;
  EXPECT_GT(rel, b.max_rel_rmse / 20) << gguf_traits(b.type).name << ": suspiciously exact";
}

// Bounds: a few percent above what a good round-to-nearest gives for each bit width.
INSTANTIATE_TEST_SUITE_P(Formats, GgufRoundTrip,
                         ::testing::Values(Bound{GgufType::Q8_0, 0.006}, Bound{GgufType::Q6_K, 0.03},
                                           Bound{GgufType::Q5_0, 0.06}, Bound{GgufType::Q5_1, 0.055},
                                           Bound{GgufType::Q5_K, 0.045}, Bound{GgufType::Q4_0, 0.12},
                                           Bound{GgufType::Q4_1, 0.11}, Bound{GgufType::Q4_K, 0.095},
                                           Bound{GgufType::Q3_K, 0.2}, Bound{GgufType::Q2_K, 0.4}),
                         [](const auto& info) { return std::string(gguf_traits(info.param.type).name); });

TEST(GgufBlocks, F16AndBf16RowsRoundTrip) {
  const auto x = random_values(64, 3);
  for (GgufType t : {GgufType::F16, GgufType::BF16, GgufType::F32}) {
    std::vector<uint8_t> q(gguf_row_bytes(t, 64));
    gguf_quantize_row(t, x.data(), q.data(), 64);
    std::vector<float> y(64);
    gguf_dequantize_row(t, q.data(), y.data(), 64);
    for (int i = 0; i < 64; ++i) EXPECT_NEAR(y[i], x[i], std::fabs(x[i]) * 1e-2) << gguf_traits(t).name;
  }
}

}  // namespace
}  // namespace tern
