// Quantization algorithms on synthetic problems whose answer is known: RTN round-trip bounds,
// the GPTQ linear algebra, GPTQ < RTN on correlated inputs, AWQ < RTN with outlier channels,
// SmoothQuant flattening activation outliers.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "compress/awq.h"
#include "compress/dense_math.h"
#include "compress/gptq.h"
#include "compress/smoothquant.h"
#include "core/cpu_features.h"
#include "core/thread_pool.h"

namespace tern {
namespace {

std::vector<float> normal(size_t n, uint32_t seed, float std = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, std);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Σ over rows and samples of ((w - wq) x)², x: [n, cols], w/wq: [rows, cols].
double output_error(const std::vector<float>& w, const std::vector<float>& wq, const std::vector<float>& x,
                    int64_t rows, int64_t cols) {
  const int64_t n = int64_t(x.size()) / cols;
  double e = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < rows; ++r) {
      double s = 0;
      for (int64_t c = 0; c < cols; ++c) s += double(w[size_t(r * cols + c)] - wq[size_t(r * cols + c)]) * x[size_t(i * cols + c)];
      e += s * s;
    }
  return e;
}

struct QuantMethods : ::testing::Test {
  ThreadPool pool{2};
  ExecContext ctx{pool, CpuFeatures::detect()};
};

TEST_F(QuantMethods, RtnRoundTripWithinHalfAStep) {
  const int64_t rows = 8, cols = 256;
  const auto w = normal(size_t(rows * cols), 1);
  for (bool sym : {true, false})
    for (int bits : {4, 8})
      for (int group : {0, 32, 128}) {
        QuantSpec spec{bits, group, sym};
        auto ql = quantize_rtn(w.data(), rows, cols, spec);
        ASSERT_TRUE(ql.is_ok());
        const auto dq = dequantize(*ql);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c) {
            const float s = ql->scales[size_t(r * ql->n_groups() + ql->group_of(c))];
            ASSERT_LE(std::fabs(dq[size_t(r * cols + c)] - w[size_t(r * cols + c)]), 0.5f * s * 1.0001f)
                << "bits " << bits << " group " << group << " sym " << sym;
            ASSERT_LT(ql->q[size_t(r * cols + c)], 1 << bits);
          }
      }
}

TEST_F(QuantMethods, RtnKeepsZerosExactAndRejectsBadSpecs) {
  std::vector<float> w = {0.0f, 0.3f, -0.2f, 0.0f, 1.0f, 0.0f, 0.0f, 0.0f};
  auto ql = quantize_rtn(w.data(), 1, 8, QuantSpec{4, 4, false});
  ASSERT_TRUE(ql.is_ok());
  const auto dq = dequantize(*ql);
  EXPECT_EQ(dq[0], 0.0f);
  EXPECT_EQ(dq[5], 0.0f);  // an all-zero group
  EXPECT_FALSE(quantize_rtn(w.data(), 1, 8, QuantSpec{4, 3, true}).is_ok());  // group does not divide cols
  EXPECT_FALSE(quantize_rtn(w.data(), 1, 8, QuantSpec{1, 4, true}).is_ok());
  EXPECT_FALSE(quantize_rtn(w.data(), 1, 8, QuantSpec{9, 4, true}).is_ok());
}

TEST_F(QuantMethods, InverseCholeskyUpperFactorsTheInverse) {
  const int64_t n = 37;
  const auto a = normal(size_t(n * n), 2);
  std::vector<double> h(size_t(n * n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = i == j ? 0.5 : 0.0;
      for (int64_t k = 0; k < n; ++k) s += double(a[size_t(i * n + k)]) * a[size_t(j * n + k)];
      h[size_t(i * n + j)] = s;
    }
  auto u = inverse_cholesky_upper(h, n);
  ASSERT_TRUE(u.is_ok());
  // (Uᵀ U) H = I, and U is upper triangular.
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      if (j < i) EXPECT_EQ((*u)[size_t(i * n + j)], 0.0);
      double s = 0;
      for (int64_t k = 0; k < n; ++k) {
        double hinv_ik = 0;
        for (int64_t m = 0; m < n; ++m) hinv_ik += (*u)[size_t(m * n + i)] * (*u)[size_t(m * n + k)];
        s += hinv_ik * h[size_t(k * n + j)];
      }
      EXPECT_NEAR(s, i == j ? 1.0 : 0.0, 1e-8);
    }
  std::vector<double> not_pd = {1, 2, 2, 1};
  EXPECT_FALSE(inverse_cholesky_upper(not_pd, 2).is_ok());
}

// Correlated inputs: x = z · A with a random mixing matrix, so the Hessian is far from diagonal.
struct Problem {
  int64_t rows = 48, cols = 128, n = 1024;
  std::vector<float> w, x;
  std::vector<double> h;
  Problem() {
    w = normal(size_t(rows * cols), 3);
    const auto z = normal(size_t(n * cols), 4), a = normal(size_t(cols * cols), 5, 0.3f);
    x.assign(size_t(n * cols), 0.0f);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < cols; ++k) {
        const float zk = z[size_t(i * cols + k)];
        for (int64_t c = 0; c < cols; ++c) x[size_t(i * cols + c)] += zk * a[size_t(k * cols + c)];
      }
    for (int64_t i = 0; i < n; ++i) x[size_t(i * cols)] += 0.5f * x[size_t(i * cols + 1)];
    h.assign(size_t(cols * cols), 0.0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t p = 0; p < cols; ++p)
        for (int64_t q = 0; q < cols; ++q) h[size_t(p * cols + q)] += double(x[size_t(i * cols + p)]) * x[size_t(i * cols + q)];
  }
};

TEST_F(QuantMethods, GptqBeatsRtnOnCorrelatedInputs) {
  Problem p;
  for (bool act_order : {false, true})
    for (int group : {0, 32}) {
      GptqOptions opt;
      opt.spec = QuantSpec{4, group, true};
      opt.act_order = act_order;
      opt.block_size = 16;  // several lazy blocks
      auto g = gptq_quantize_linear(ctx, p.w.data(), p.rows, p.cols, p.h, opt);
      ASSERT_TRUE(g.is_ok()) << g.status().message();
      EXPECT_EQ(g->g_idx.empty(), !(act_order && group > 0));
      auto r = quantize_rtn(p.w.data(), p.rows, p.cols, opt.spec);
      const double e_gptq = output_error(p.w, dequantize(*g), p.x, p.rows, p.cols);
      const double e_rtn = output_error(p.w, dequantize(*r), p.x, p.rows, p.cols);
      EXPECT_LT(e_gptq, 0.8 * e_rtn) << "act_order " << act_order << " group " << group;
    }
}

TEST_F(QuantMethods, GptqBlockSizeDoesNotChangeTheResult) {
  Problem p;
  GptqOptions a, b;
  a.spec = b.spec = QuantSpec{4, 32, false};
  a.block_size = 128, b.block_size = 8;
  auto qa = gptq_quantize_linear(ctx, p.w.data(), p.rows, p.cols, p.h, a);
  auto qb = gptq_quantize_linear(ctx, p.w.data(), p.rows, p.cols, p.h, b);
  ASSERT_TRUE(qa.is_ok() && qb.is_ok());
  size_t differ = 0;
  for (size_t i = 0; i < qa->q.size(); ++i) differ += qa->q[i] != qb->q[i];
  EXPECT_LT(differ, qa->q.size() / 200);  // rounding-order ties only
}

TEST_F(QuantMethods, GptqZeroesDeadColumns) {
  Problem p;
  for (int64_t i = 0; i < p.cols; ++i) p.h[size_t(5 * p.cols + i)] = p.h[size_t(i * p.cols + 5)] = 0;
  GptqOptions opt;
  opt.spec = QuantSpec{4, 32, true};
  auto g = gptq_quantize_linear(ctx, p.w.data(), p.rows, p.cols, p.h, opt);
  ASSERT_TRUE(g.is_ok());
  const auto dq = dequantize(*g);
  for (int64_t r = 0; r < p.rows; ++r) EXPECT_EQ(dq[size_t(r * p.cols + 5)], 0.0f);
  std::vector<double> wrong(10);
  EXPECT_FALSE(gptq_quantize_linear(ctx, p.w.data(), p.rows, p.cols, wrong, opt).is_ok());
}

TEST_F(QuantMethods, AwqBeatsRtnWithOutlierChannels) {
  const int64_t rows = 64, cols = 256, n = 512;
  auto w = normal(size_t(rows * cols), 6, 0.05f);
  auto x = normal(size_t(n * cols), 7);
  const int64_t outliers[] = {3, 77, 140, 201};
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c : outliers) x[size_t(i * cols + c)] *= 50.0f;
  std::vector<float> mean_abs(size_t(cols), 0.0f);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < cols; ++c) mean_abs[size_t(c)] += std::fabs(x[size_t(i * cols + c)]) / float(n);
  const QuantSpec spec{4, 128, false};
  AwqScale s = awq_search_scale(ctx, x.data(), n, w.data(), rows, cols, mean_abs, spec, 20);
  EXPECT_GT(s.alpha, 0.0f);
  EXPECT_LT(s.loss, 0.7 * s.loss_rtn);
  EXPECT_GT(s.scale[3], s.scale[4]);  // outlier channels are protected

  // The full path: quantize W·s (with clipping search on x/s) and compare with RTN on the output.
  std::vector<float> ws = w, xs = x;
  for (size_t i = 0; i < ws.size(); ++i) ws[i] *= s.scale[i % size_t(cols)];
  for (size_t i = 0; i < xs.size(); ++i) xs[i] /= s.scale[i % size_t(cols)];
  AwqOptions opt;
  opt.spec = spec;
  auto q_awq = awq_quantize_clipped(ctx, ws.data(), rows, cols, xs.data(), n, opt, /*clip=*/true);
  auto q_rtn = quantize_rtn(w.data(), rows, cols, spec);
  ASSERT_TRUE(q_awq.is_ok() && q_rtn.is_ok());
  const double e_awq = output_error(ws, dequantize(*q_awq), xs, rows, cols);
  const double e_rtn = output_error(w, dequantize(*q_rtn), x, rows, cols);
  EXPECT_LT(e_awq, 0.7 * e_rtn);
  // Clipping never makes the searched output error worse than no clipping.
  auto q_noclip = awq_quantize_clipped(ctx, ws.data(), rows, cols, xs.data(), n, opt, /*clip=*/false);
  std::vector<float> xs_clip(xs.begin(), xs.begin() + opt.clip_rows * cols);
  EXPECT_LE(output_error(ws, dequantize(*q_awq), xs_clip, rows, cols),
            output_error(ws, dequantize(*q_noclip), xs_clip, rows, cols) * 1.0001);
}

TEST_F(QuantMethods, SmoothQuantFlattensActivationOutliers) {
  const int64_t cols = 64;
  std::vector<float> act_max(static_cast<size_t>(cols)), w_max(static_cast<size_t>(cols));
  std::mt19937 rng(8);
  std::uniform_real_distribution<float> u(0.5f, 1.5f);
  for (int64_t c = 0; c < cols; ++c) act_max[size_t(c)] = u(rng), w_max[size_t(c)] = 0.1f * u(rng);
  act_max[7] = 60.0f, act_max[30] = 45.0f;
  act_max[40] = 0.0f;  // never activated: scale stays 1
  const auto s = smoothquant_scales(act_max, w_max, 0.5);
  EXPECT_EQ(s[40], 1.0f);
  const double before = activation_outlier_ratio(act_max, {});
  const double after = activation_outlier_ratio(act_max, s);
  EXPECT_GT(before, 30.0);
  EXPECT_LT(after, before / 4);
  // alpha = 0 moves nothing into the activations' favour beyond weight balancing; alpha = 1 flattens fully.
  const auto s1 = smoothquant_scales(act_max, w_max, 1.0);
  EXPECT_NEAR(activation_outlier_ratio(act_max, s1), 1.0, 1e-5);
}

}  // namespace
}  // namespace tern
