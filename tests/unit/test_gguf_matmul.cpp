// GGUF matmul kernels (scalar, AVX2; GEMV and GEMM, several thread counts) against dequantize +
// a plain f32 matmul, for every block format; and the embedding gather.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "kernels/cpu/gguf_kernels.h"
#include "ops/embedding.h"
#include "ops/matmul.h"
#include "unit/gguf_test_util.h"

namespace tern {
namespace {

struct Case {
  GgufType type;
};

class GgufMatmul : public ::testing::TestWithParam<GgufType> {};

using test::randn;

TEST_P(GgufMatmul, MatchesDequantizedReference) {
  const GgufType t = GetParam();
  const int64_t n = 72, k = 1280;  // n: not a multiple of the 16-column panel; k: 5 K-blocks, > kKC
  const auto wf = randn(size_t(n * k), 11);
  const size_t rb = gguf_row_bytes(t, k);
  std::vector<uint8_t> q(rb * size_t(n));
  std::vector<float> deq(static_cast<size_t>(n * k));
  for (int64_t r = 0; r < n; ++r) {
    gguf_quantize_row(t, wf.data() + r * k, q.data() + size_t(r) * rb, k);
    gguf_dequantize_row(t, q.data() + size_t(r) * rb, deq.data() + r * k, k);
  }
  WeightMatrix w;
  w.format = WeightFormat::Gguf;
  w.gguf_type = int(t);
  w.data = q.data();
  w.rows = n, w.cols = k;
  w.quant_bytes = q.size();
  const auto bias = randn(size_t(n), 5);
  for (const char* level : {"scalar", "avx2", "avx512"}) {
    const CpuFeatures cpu = CpuFeatures::detect().capped(level);
    if (std::string(level) == "avx2" && !cpu.avx2) GTEST_SKIP() << "host has no AVX2";
    if (std::string(level) == "avx512" && !cpu.avx512) continue;  // the AVX2 level already ran
    for (int threads : {1, 2}) {
      ThreadPool pool(threads);
      ExecContext ctx(pool, cpu);
      for (int64_t m : {1, 3, 4, 8, 13, 70}) {
        // Kernels that round x to int8 per 32 values (as ggml does): the m <= 8 decode paths, the small-m kernel
        // (to 16 rows) and the integer GEMMs.
        const std::string kernel = matmul_kernel_name(ctx, m, w);
        const bool int8_x = std::string(level) != "scalar" && (m <= 8 || kernel.find("int8") != std::string::npos ||
                                                               kernel.find("smallm") != std::string::npos);
        const auto x = randn(size_t(m * k), uint32_t(m));
        // x's int8 step per group: 32 values, or 256 for the m = 1 K-quant kernels (x per super-block; on
        // AVX-512 VNNI also run once per row of x for m <= 8).
        const bool kq = t == GgufType::Q4_K || t == GgufType::Q6_K;
        const int64_t xg =
            kq && (kernel.find("gemv_m1") != std::string::npos || kernel.find("smallm") != std::string::npos) ? 256 : 32;
        std::vector<double> xstep(size_t(m * (k / xg)));
        for (int64_t c = 0; c < m * k; ++c)
          xstep[size_t(c / xg)] = std::max(xstep[size_t(c / xg)], std::fabs(double(x[size_t(c)])) / 127);
        std::vector<float> y(static_cast<size_t>(m * n));
        matmul(ctx, x.data(), m, w, y.data(), bias.data());
        for (int64_t i = 0; i < m; ++i) {
          for (int64_t j = 0; j < n; ++j) {
            // Kernels that round x to int8 are off by at most half a step of x per value:
            // Σ |w| · (max|x| of its group / 127) / 2. A layout bug is off by O(sqrt(k)).
            double ref = bias[size_t(j)], bound = 0;
            for (int64_t c = 0; c < k; ++c) {
              ref += double(x[size_t(i * k + c)]) * deq[size_t(j * k + c)];
              bound += std::fabs(double(deq[size_t(j * k + c)])) * xstep[size_t((i * k + c) / xg)] / 2;
            }
            const double tol = (int8_x ? bound : 0) + 1e-4 * std::sqrt(double(k));
            ASSERT_NEAR(y[size_t(i * n + j)], ref, tol)
                << gguf_traits(t).name << " " << level << " m=" << m << " threads=" << threads << " (" << i << ","
                << j << ") kernel " << kernel;
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, GgufMatmul,
                         ::testing::Values(GgufType::Q8_0, GgufType::Q4_0, GgufType::Q4_1, GgufType::Q5_0,
                                           GgufType::Q5_1, GgufType::Q2_K, GgufType::Q3_K, GgufType::Q4_K,
                                           GgufType::Q5_K, GgufType::Q6_K),
                         [](const auto& info) { return std::string(gguf_traits(info.param).name); });

TEST(GgufMatmul, AvxDecodersEqualReference) {
  if (!CpuFeatures::detect().avx2) GTEST_SKIP() << "host has no AVX2";
  for (GgufType t : {GgufType::Q8_0, GgufType::Q4_0, GgufType::Q4_1, GgufType::Q5_0, GgufType::Q5_1, GgufType::Q2_K,
                     GgufType::Q3_K, GgufType::Q4_K, GgufType::Q5_K, GgufType::Q6_K}) {
    const int be = gguf_traits(t).block_elems;
    const auto x = randn(size_t(be), 9);
    std::vector<uint8_t> q(size_t(gguf_traits(t).block_bytes));
    gguf_quantize_row(t, x.data(), q.data(), be);
    alignas(32) float a[256], b[256];
    cpu::gguf_decoder_scalar(t)(q.data(), a);
    cpu::gguf_decoder_avx2(t)(q.data(), b);
    for (int i = 0; i < be; ++i) ASSERT_FLOAT_EQ(a[i], b[i]) << gguf_traits(t).name << " value " << i;
  }
}

// The f32-decode GEMV (kept as the AVX2 fallback) matches the reference tightly.
TEST(GgufMatmul, FloatDecodeGemvMatchesScalar) {
  if (!CpuFeatures::detect().avx2) GTEST_SKIP() << "host has no AVX2";
  const int64_t n = 20, k = 512, m = 3;
  for (GgufType t : {GgufType::Q8_0, GgufType::Q4_K, GgufType::Q6_K, GgufType::Q3_K}) {
    const auto wf = randn(size_t(n * k), 4);
    const size_t rb = gguf_row_bytes(t, k);
    std::vector<uint8_t> q(rb * size_t(n));
    for (int64_t r = 0; r < n; ++r) gguf_quantize_row(t, wf.data() + r * k, q.data() + size_t(r) * rb, k);
    WeightMatrix w;
    w.format = WeightFormat::Gguf, w.gguf_type = int(t), w.data = q.data(), w.rows = n, w.cols = k;
    const auto x = randn(size_t(m * k), 8);
    std::vector<float> y1(static_cast<size_t>(m * n)), y2(static_cast<size_t>(m * n));
    const cpu::MatmulArgs a1{x.data(), m, w, y1.data(), nullptr}, a2{x.data(), m, w, y2.data(), nullptr};
    cpu::gguf_gemv_scalar(a1, 0, n);
    cpu::gguf_gemv_avx2(a2, 0, n);
    for (size_t i = 0; i < y1.size(); ++i) ASSERT_NEAR(y1[i], y2[i], 1e-3) << gguf_traits(t).name;
  }
}

TEST(GgufMatmul, EmbeddingGathersDecodedRows) {
  const int64_t vocab = 10, d = 256;
  const auto wf = randn(size_t(vocab * d), 2);
  const size_t rb = gguf_row_bytes(GgufType::Q4_K, d);
  std::vector<uint8_t> q(rb * size_t(vocab));
  for (int64_t r = 0; r < vocab; ++r) gguf_quantize_row(GgufType::Q4_K, wf.data() + r * d, q.data() + size_t(r) * rb, d);
  WeightMatrix w;
  w.format = WeightFormat::Gguf;
  w.gguf_type = int(GgufType::Q4_K);
  w.data = q.data();
  w.rows = vocab, w.cols = d;
  ThreadPool pool(1);
  ExecContext ctx(pool, CpuFeatures::detect());
  const int32_t ids[2] = {7, 2};
  std::vector<float> out(static_cast<size_t>(2 * d)), ref(static_cast<size_t>(d));
  embedding_lookup(ctx, w, ids, 2, out.data());
  gguf_dequantize_row(GgufType::Q4_K, q.data() + 7 * rb, ref.data(), d);
  for (int64_t c = 0; c < d; ++c) EXPECT_EQ(out[size_t(c)], ref[size_t(c)]);
}

}  // namespace
}  // namespace tern
