#include <cmath>
#include <cstring>

#include "kernels/cpu/pointwise_kernels.h"
#include "op_test_util.h"
#include "ops/activation.h"

namespace tern::test {
namespace {

double silu_ref(double g) { return g / (1.0 + std::exp(-g)); }

using SwigluTest = IsaThreads;

TEST_P(SwigluTest, MatchesDoubleReference) {
  for (auto [m, d] : {std::pair<int64_t, int64_t>{1, 8192}, {3, 13}, {16, 4096}, {1, 5}}) {
    const auto g = random_floats(size_t(m * d), -12.f, 12.f, uint32_t(m + d));
    const auto u = random_floats(size_t(m * d), -2.f, 2.f, uint32_t(m * d));
    std::vector<float> out(g.size(), NAN);
    swiglu(*ctx, g.data(), u.data(), m, d, out.data());
    for (size_t i = 0; i < g.size(); ++i) {
      const double want = silu_ref(g[i]) * u[i];
      ASSERT_NEAR(out[i], want, 1e-6 * std::abs(want) + 1e-30) << "g=" << g[i] << " u=" << u[i];
    }
    // out aliasing gate gives the same values.
    auto g2 = g;
    swiglu(*ctx, g2.data(), u.data(), m, d, g2.data());
    EXPECT_EQ(0, std::memcmp(g2.data(), out.data(), out.size() * sizeof(float)));
  }
}

TEST_P(SwigluTest, ExtremeInputsStayFinite) {
  const std::vector<float> g = {-1000.f, -100.f, -88.5f, -87.f, -20.f, -1e-30f, 0.f, 1e-30f, 20.f, 88.5f, 100.f,
                                1000.f, 3.f, -3.f, 0.5f, -0.5f};
  const std::vector<float> u(g.size(), 1.f);
  std::vector<float> out(g.size(), NAN);
  swiglu(*ctx, g.data(), u.data(), 1, int64_t(g.size()), out.data());
  for (size_t i = 0; i < g.size(); ++i) {
    ASSERT_TRUE(std::isfinite(out[i])) << g[i];
    EXPECT_NEAR(out[i], silu_ref(g[i]), 1e-6 * std::abs(silu_ref(g[i])) + 1e-30) << g[i];
  }
}

TERN_INSTANTIATE_ISA_THREADS(SwigluTest);

// ulp distance between a float and the double it approximates.
double ulp_error(float got, double want) {
  const float w = float(want);
  const double ulp = std::nextafter(std::abs(w), INFINITY) - std::abs(w);
  return std::abs(double(got) - want) / ulp;
}

void check_exp(void (*fn)(const float*, int64_t, float*)) {
  // Dense sweep over the whole normal-output range.
  std::vector<float> x;
  for (double t = -87.3; t <= 88.3; t += 0.000731) x.push_back(float(t));
  std::vector<float> y(x.size());
  fn(x.data(), int64_t(x.size()), y.data());
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, ulp_error(y[i], std::exp(double(x[i]))));
  EXPECT_LE(worst, 2.0);
  // Masked-softmax and overflow edges (16 values so the vector path handles them).
  const float special[16] = {-INFINITY, -1000.f, -88.f, 0.f, -0.f, 1.f, NAN, 88.3f,
                             -INFINITY, -INFINITY, 0.5f, -0.5f, 2.f, 10.f, -10.f, 1e-8f};
  float out[16];
  fn(special, 16, out);
  EXPECT_EQ(out[0], 0.f);
  EXPECT_EQ(out[1], 0.f);
  EXPECT_EQ(out[2], 0.f);  // below ln(FLT_MIN): flushed
  EXPECT_EQ(out[3], 1.f);
  EXPECT_EQ(out[4], 1.f);
  EXPECT_NEAR(out[5], std::exp(1.0), 3e-7);
  EXPECT_TRUE(std::isnan(out[6]));
  EXPECT_TRUE(std::isfinite(out[7]));
}

TEST(VectorExp, Avx2WithinTwoUlp) {
  if (host_lacks("avx2")) GTEST_SKIP() << "host CPU lacks avx2";
  check_exp(cpu::exp_avx2_array);
}

TEST(VectorExp, Avx512WithinTwoUlp) {
  if (host_lacks("avx512")) GTEST_SKIP() << "host CPU lacks avx512";
  check_exp(cpu::exp_avx512_array);
}

}  // namespace
}  // namespace tern::test
