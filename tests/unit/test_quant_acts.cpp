// Activation preparation for the integer-activation kernels: the AVX2 version must be bit-identical
// to the scalar reference (int8 codes, scales, zero-point sums, pair-ordered copy), including ties
// at .5, all-zero groups, NaN / inf inputs and W8A8 rows whose length is not a multiple of 32; and
// W8A16 decode's int16 x per block.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/cpu_features.h"
#include "kernels/cpu/quant_kernels.h"

namespace tern {
namespace {

WeightMatrix int4_matrix(int64_t k, int group) {
  WeightMatrix w;
  w.rows = 1, w.cols = k, w.format = WeightFormat::Int4Group, w.group = group;
  return w;
}

WeightMatrix w8a8_matrix(int64_t k) {
  WeightMatrix w;
  w.rows = 1, w.cols = k, w.format = WeightFormat::Int8Channel, w.int8_activations = true;
  return w;
}

std::vector<float> activations(int64_t m, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> x(size_t(m * k));
  for (auto& v : x) v = d(rng);
  // Exact ties after scaling: a group whose max is 127 maps v to v itself, so v = 2.5 rounds to 2.
  for (int64_t j = 0; j < std::min<int64_t>(k, 8); ++j) x[size_t(j)] = j == 0 ? 127.0f : float(j) + 0.5f;
  if (k >= 64) x[40] = -3.5f;
  return x;
}

void expect_identical(const WeightMatrix& w, const std::vector<float>& x, int64_t m) {
  SCOPED_TRACE(::testing::Message() << "k " << w.cols << " group " << w.group << " m " << m);
  const size_t bytes = cpu::quant_acts_bytes(w, m);
  ASSERT_GT(bytes, 0u);
  std::vector<char> s_ref(bytes + 64, 0x55), s_avx(bytes + 64, 0x55);
  const cpu::QuantActs r = cpu::quant_acts_prepare(w, x.data(), m, s_ref.data());
  const cpu::QuantActs a = cpu::quant_acts_prepare_avx2(w, x.data(), m, s_avx.data());
  const int64_t k = w.cols, ng = w.format == WeightFormat::Int4Group ? k / w.group : 1;
  ASSERT_EQ(std::memcmp(r.xq, a.xq, size_t(m * k)), 0);
  ASSERT_EQ(std::memcmp(r.xd, a.xd, size_t(m * ng) * sizeof(float)), 0);
  ASSERT_EQ(std::memcmp(r.xs, a.xs, size_t(m * ng) * sizeof(float)), 0);
  ASSERT_EQ(r.xq_pairs == nullptr, a.xq_pairs == nullptr);
  if (r.xq_pairs) {
    ASSERT_EQ(std::memcmp(r.xq_pairs, a.xq_pairs, size_t(m * k)), 0);
  }
}

bool host_has_avx2() { return CpuFeatures::detect().avx2; }

WeightMatrix w8a16_matrix(int64_t k) {
  WeightMatrix w;
  w.rows = 1, w.cols = k, w.format = WeightFormat::Int8Channel;
  return w;
}

// W8A16 decode's int16 x per block of kX16Block columns: codes and scales bit for bit.
void expect_identical_x16(const WeightMatrix& w, const std::vector<float>& x, int64_t m) {
  SCOPED_TRACE(::testing::Message() << "x16 k " << w.cols << " m " << m);
  const size_t bytes = cpu::quant_acts_bytes(w, m);
  ASSERT_GT(bytes, 0u);
  std::vector<char> s_ref(bytes + 64, 0x55), s_avx(bytes + 64, 0x55);
  const cpu::QuantActs r = cpu::quant_acts_prepare(w, x.data(), m, s_ref.data());
  const cpu::QuantActs a = cpu::quant_acts_prepare_avx2(w, x.data(), m, s_avx.data());
  ASSERT_NE(r.x16, nullptr);
  ASSERT_NE(a.x16, nullptr);
  const int64_t k = w.cols, nb = (k + cpu::kX16Block - 1) / cpu::kX16Block;
  ASSERT_EQ(std::memcmp(r.x16, a.x16, size_t(m * k) * sizeof(int16_t)), 0);
  ASSERT_EQ(std::memcmp(r.xd16, a.xd16, size_t(m * nb) * sizeof(float)), 0);
}

TEST(QuantActs, Avx2MatchesScalarForInt4Groups) {
  if (!host_has_avx2()) GTEST_SKIP() << "host lacks avx2";
  for (int group : {32, 64, 128, 256})
    for (int64_t m : {1, 2, 3}) {
      const int64_t k = 2 * 512;
      expect_identical(int4_matrix(k, group), activations(m, k, uint32_t(group + m)), m);
    }
  expect_identical(int4_matrix(320, 320), activations(2, 320, 9), 2);  // group not a multiple of 64
}

TEST(QuantActs, Avx2MatchesScalarForW8A8RowsOfAnyLength) {
  if (!host_has_avx2()) GTEST_SKIP() << "host lacks avx2";
  for (int64_t k : {1, 7, 31, 32, 40, 257, 1000})
    for (int64_t m : {1, 4}) expect_identical(w8a8_matrix(k), activations(m, k, uint32_t(k * 3 + m)), m);
}

TEST(QuantActs, Avx2MatchesScalarOnSpecialValues) {
  if (!host_has_avx2()) GTEST_SKIP() << "host lacks avx2";
  const int64_t k = 256;
  auto x = activations(1, k, 5);
  for (int64_t j = 64; j < 128; ++j) x[size_t(j)] = 0.0f;  // an all-zero group: d = 0
  x[130] = std::numeric_limits<float>::quiet_NaN();
  x[200] = std::numeric_limits<float>::infinity();
  x[201] = -1e-30f;
  expect_identical(int4_matrix(k, 64), x, 1);
  expect_identical(w8a8_matrix(k), x, 1);
}

TEST(QuantActs, Avx2MatchesScalarForW8A16Int16Blocks) {
  if (!host_has_avx2()) GTEST_SKIP() << "host lacks avx2";
  for (int64_t k : {1, 15, 16, 40, 255, 256, 257, 600, 2048})
    for (int64_t m : {1, 3, 8}) expect_identical_x16(w8a16_matrix(k), activations(m, k, uint32_t(k * 7 + m)), m);
  auto x = activations(1, 512, 6);
  for (int64_t j = 256; j < 512; ++j) x[size_t(j)] = 0.0f;  // an all-zero block: d = 0
  x[130] = std::numeric_limits<float>::quiet_NaN();
  x[200] = std::numeric_limits<float>::infinity();
  x[201] = -1e-30f;
  expect_identical_x16(w8a16_matrix(512), x, 1);
}

// Exact ties: a block whose max is 32767 maps v to v, so 2.5 -> 2, 3.5 -> 4, -3.5 -> -4 (nearest even).
TEST(QuantActs, W8A16Int16CodesRoundToNearestEven) {
  std::vector<float> x(256, 0.0f);
  x[0] = 32767.0f, x[1] = 2.5f, x[2] = 3.5f, x[3] = -3.5f, x[4] = 100.25f;
  std::vector<char> s(cpu::quant_acts_bytes(w8a16_matrix(256), 1) + 64);
  const cpu::QuantActs r = cpu::quant_acts_prepare(w8a16_matrix(256), x.data(), 1, s.data());
  EXPECT_EQ(r.xd16[0], 1.0f);
  EXPECT_EQ(r.x16[0], 32767);
  EXPECT_EQ(r.x16[1], 2);
  EXPECT_EQ(r.x16[2], 4);
  EXPECT_EQ(r.x16[3], -4);
  EXPECT_EQ(r.x16[4], 100);
  // Prefill (m > kX16MaxRows) gets the int16 x too (the W8A16 GEMM's input): 2 bytes per value.
  EXPECT_GE(cpu::quant_acts_bytes(w8a16_matrix(256), cpu::kX16MaxRows + 1), size_t(2 * 256 * (cpu::kX16MaxRows + 1)));
}

}  // namespace
}  // namespace tern
