#include <cmath>

#include "op_test_util.h"
#include "ops/rms_norm.h"

namespace tern::test {
namespace {

// out = w · x / sqrt(mean(x²) + eps), all in double.
std::vector<double> reference(const std::vector<float>& x, int64_t m, int64_t d, const std::vector<float>& w,
                              float eps) {
  std::vector<double> out(x.size());
  for (int64_t i = 0; i < m; ++i) {
    double ss = 0;
    for (int64_t j = 0; j < d; ++j) ss += double(x[i * d + j]) * x[i * d + j];
    const double r = 1.0 / std::sqrt(ss / double(d) + double(eps));
    for (int64_t j = 0; j < d; ++j) out[i * d + j] = double(w[j]) * x[i * d + j] * r;
  }
  return out;
}

void expect_close(const std::vector<float>& got, const std::vector<double>& want, double rel) {
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], rel * std::max(1e-3, std::abs(want[i]))) << "at " << i;
}

using RmsNormTest = IsaThreads;

TEST_P(RmsNormTest, MatchesDoubleReference) {
  const float eps = 1e-5f;
  for (auto [m, d] : {std::pair<int64_t, int64_t>{1, 64}, {3, 100}, {1, 2048}, {64, 2048}, {5, 7}}) {
    auto x = random_floats(size_t(m * d), -3.f, 3.f, uint32_t(m * 31 + d));
    auto w = random_floats(size_t(d), 0.5f, 1.5f, uint32_t(d));
    const auto want = reference(x, m, d, w, eps);
    std::vector<float> out(x.size(), NAN);
    rms_norm(*ctx, x.data(), nullptr, m, d, w.data(), eps, out.data());
    expect_close(out, want, 1e-6);
    // In place (out aliases x).
    rms_norm(*ctx, x.data(), nullptr, m, d, w.data(), eps, x.data());
    expect_close(x, want, 1e-6);
  }
}

TEST_P(RmsNormTest, FusedResidualAddUpdatesXAndNormalisesTheSum) {
  const int64_t m = 64, d = 1024;
  auto x = random_floats(size_t(m * d), -2.f, 2.f, 7);
  const auto res = random_floats(size_t(m * d), -2.f, 2.f, 8);
  auto w = random_floats(size_t(d), 0.5f, 1.5f, 9);
  std::vector<float> sum(x.size());
  for (size_t i = 0; i < x.size(); ++i) sum[i] = x[i] + res[i];
  std::vector<float> out(x.size(), NAN);
  rms_norm(*ctx, x.data(), res.data(), m, d, w.data(), 1e-6f, out.data());
  EXPECT_EQ(x, sum);  // the residual stream is the exact fp32 sum
  expect_close(out, reference(sum, m, d, w, 1e-6f), 1e-6);
}

TEST_P(RmsNormTest, TinyVarianceIsDominatedByEps) {
  const int64_t d = 32;
  std::vector<float> x(d, 0.f), w(d, 1.f), out(d, NAN);
  x[3] = 1e-4f;
  rms_norm(*ctx, x.data(), nullptr, 1, d, w.data(), 1e-2f, out.data());
  expect_close(out, reference(x, 1, d, w, 1e-2f), 1e-6);
  EXPECT_EQ(out[0], 0.f);
}

TERN_INSTANTIATE_ISA_THREADS(RmsNormTest);

}  // namespace
}  // namespace tern::test
