// The ops the dense-architecture blocks add: LayerNorm (GPT-2), the tanh GELU and GeGLU (GPT-2,
// Gemma 2) and the interleaved partial rotary embedding (GLM-4), each against a double-precision
// reference at every ISA level with 1 and 2 threads; sizes large enough to take the threaded paths.
#include <cmath>

#include "op_test_util.h"
#include "ops/activation.h"
#include "ops/layer_norm.h"
#include "ops/rope.h"

namespace tern::test {
namespace {

struct DenseBlockOps : IsaThreads {};

double gelu_tanh_ref(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

TEST_P(DenseBlockOps, LayerNormWithBiasAndResidual) {
  for (int64_t d : {64, 768, 13}) {
    const int64_t m = 80;
    auto x = random_floats(size_t(m * d), -3.f, 5.f, 1);  // a mean far from 0
    const auto res = random_floats(x.size(), -1.f, 1.f, 2);
    const auto w = random_floats(size_t(d), 0.5f, 1.5f, 3);
    const auto b = random_floats(size_t(d), -0.5f, 0.5f, 4);
    std::vector<float> sum(x.size()), out(x.size());
    for (size_t i = 0; i < x.size(); ++i) sum[i] = x[i] + res[i];
    layer_norm(*ctx, x.data(), res.data(), m, d, w.data(), b.data(), 1e-5f, out.data());
    EXPECT_EQ(x, sum) << "x keeps x + residual";
    for (int64_t i = 0; i < m; ++i) {
      double mean = 0, var = 0;
      for (int64_t j = 0; j < d; ++j) mean += sum[size_t(i * d + j)];
      mean /= double(d);
      for (int64_t j = 0; j < d; ++j) var += std::pow(sum[size_t(i * d + j)] - mean, 2);
      var /= double(d);
      for (int64_t j = 0; j < d; ++j) {
        const double want = (sum[size_t(i * d + j)] - mean) / std::sqrt(var + 1e-5) * w[size_t(j)] + b[size_t(j)];
        ASSERT_NEAR(out[size_t(i * d + j)], want, 2e-5 * (1 + std::abs(want))) << "row " << i << " col " << j;
      }
    }
    // Without bias: weight only.
    layer_norm(*ctx, x.data(), nullptr, m, d, w.data(), nullptr, 1e-5f, out.data());
    for (int64_t j = 0; j < d; ++j) EXPECT_TRUE(std::isfinite(out[size_t(j)]));
  }
}

TEST_P(DenseBlockOps, GeluTanhAndGeglu) {
  const int64_t m = 40, d = 1000;  // 40 000 elements: threaded
  const auto g = random_floats(size_t(m * d), -8.f, 8.f, 5);
  const auto u = random_floats(g.size(), -2.f, 2.f, 6);
  std::vector<float> gelu(g.size()), geglu(g.size());
  gelu_tanh(*ctx, g.data(), m, d, gelu.data());
  geglu_tanh(*ctx, g.data(), u.data(), m, d, geglu.data());
  for (size_t i = 0; i < g.size(); ++i) {
    const double want = gelu_tanh_ref(g[i]);
    ASSERT_NEAR(gelu[i], want, 1e-6 * (1 + std::abs(want))) << "x=" << g[i];
    ASSERT_NEAR(geglu[i], want * u[i], 1e-6 * (1 + std::abs(want * u[i]))) << "x=" << g[i];
  }
  std::vector<float> in_place = g;  // out may alias the input
  gelu_tanh(*ctx, in_place.data(), m, d, in_place.data());
  EXPECT_EQ(in_place, gelu);
}

TEST_P(DenseBlockOps, InterleavedPartialRope) {
  // GLM-4: head_dim 16, rotary_dim 8 -> pairs (0,1) (2,3) (4,5) (6,7) rotate, dims 8..15 pass.
  const int heads = 3, hd = 16, rot = 8;
  const int64_t m = 600;  // threaded
  RopeConfig rc;
  rc.rotary_dim = rot;
  const std::vector<float> inv = rope_inv_freq(rc);
  ASSERT_EQ(inv.size(), size_t(rot / 2));
  std::vector<int32_t> pos(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) pos[size_t(i)] = int32_t((i * 37) % 2000);
  const auto x0 = random_floats(size_t(m * heads * hd), -1.f, 1.f, 7);
  auto x = x0;
  rope_apply(*ctx, x.data(), m, heads, hd, pos.data(), inv, RopeLayout::kInterleaved);
  for (int64_t i = 0; i < m; ++i)
    for (int h = 0; h < heads; ++h) {
      const size_t base = size_t((i * heads + h) * hd);
      for (int j = 0; j < rot / 2; ++j) {
        const double a = double(inv[size_t(j)] * float(pos[size_t(i)]));  // the fp32 angle, as transformers
        const double x1 = x0[base + 2 * j], x2 = x0[base + 2 * j + 1];
        ASSERT_NEAR(x[base + 2 * j], x1 * std::cos(a) - x2 * std::sin(a), 1e-5);
        ASSERT_NEAR(x[base + 2 * j + 1], x2 * std::cos(a) + x1 * std::sin(a), 1e-5);
      }
      for (int j = rot; j < hd; ++j) ASSERT_EQ(x[base + j], x0[base + j]) << "dims past rotary_dim pass";
    }
  auto none = x0;
  rope_apply(*ctx, none.data(), m, heads, hd, pos.data(), inv, RopeLayout::kNone);
  EXPECT_EQ(none, x0);
}

TERN_INSTANTIATE_ISA_THREADS(DenseBlockOps);

}  // namespace
}  // namespace tern::test
