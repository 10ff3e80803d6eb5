// The m = 1 GGUF decode kernels (Q4_0 / Q8_0 / Q4_K / Q6_K, gguf_gemv_m1*_avx2.cpp): against the scalar
// f32 reference within the worst case of x's int8 rounding (Σ |w| · step / 2), against the generic int8 kernel (same x codes) within
// float reordering, for odd row counts (4-row groups + tail rows) and arbitrary thread row ranges;
// and the x quantization itself.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/cpu/gguf_kernels.h"
#include "ops/matmul.h"
#include "unit/gguf_test_util.h"

namespace tern {
namespace {

using test::make;
using test::make_random_bytes;
using test::Quantized;
using test::randn;

size_t aligned_floats(size_t bytes) { return bytes / sizeof(float) + 16; }

TEST(GgufGemvM1, QuantizesXPer32) {
  if (!CpuFeatures::detect().avx2) GTEST_SKIP() << "host has no AVX2";
  const int64_t k = 96;
  auto x = randn(size_t(k), 3);
  x[40] = 0.f;
  for (int j = 64; j < 96; ++j) x[size_t(j)] = 0.f;  // an all-zero group: scale 0, codes 0
  std::vector<float> buf(aligned_floats(cpu::gguf_acts_bytes(k)));
  void* p = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t(63));
  const cpu::GgufActs a = cpu::gguf_acts_prepare_avx2(x.data(), k, p);
  for (int64_t g = 0; g < k / 32; ++g) {
    float amax = 0.f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[size_t(g * 32 + j)]));
    const float d = amax / 127.f;
    int32_t half[2] = {0, 0};
    for (int j = 0; j < 32; ++j) {
      const int want = d > 0 ? int(std::lrintf(x[size_t(g * 32 + j)] / d)) : 0;
      ASSERT_NEAR(a.q[g * 32 + j], want, 1) << "group " << g << " column " << j;  // x/d vs x·(1/d)
      half[j / 16] += a.q[g * 32 + j];
    }
    for (int l = 0; l < 8; ++l) {
      EXPECT_EQ(a.d8[g * 8 + l], d);
      EXPECT_EQ(a.corr[g * 8 + l], 8 * half[l / 4]);
    }
  }
}

class GgufGemvM1Types : public ::testing::TestWithParam<GgufType> {};

TEST_P(GgufGemvM1Types, MatchesReferenceWithinXRounding) {
  if (!CpuFeatures::detect().avx2) GTEST_SKIP() << "host has no AVX2";
  const GgufType t = GetParam();
  const bool kq = cpu::gguf_gemv_m1_k_supported(t);
  // n: 9 groups of 4 rows + 3 tail rows; k: an odd number of blocks (17 of 32 / 3 of 256).
  const int64_t n = 39, k = kq ? 768 : 544, xg = kq ? 256 : 32;
  for (bool raw : {false, true}) {
  const Quantized qw = raw ? make_random_bytes(t, n, k, 33) : make(t, n, k, 21);
  auto x = randn(size_t(k), 7);
  x[5] *= 6.f;  // an outlier: its group's codes get coarse
  const auto bias = randn(size_t(n), 8);
  const size_t bytes = kq ? cpu::gguf_acts_k_bytes(k) : cpu::gguf_acts_bytes(k);
  std::vector<float> buf(aligned_floats(bytes));
  void* p = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t(63));
  const cpu::GgufActs acts =
      kq ? cpu::gguf_acts_k_prepare_avx2(x.data(), k, p) : cpu::gguf_acts_prepare_avx2(x.data(), k, p);
  std::vector<float> y(static_cast<size_t>(n)), y_int8(static_cast<size_t>(n));
  const cpu::MatmulArgs a{x.data(), 1, qw.w, y.data(), bias.data()}, b{x.data(), 1, qw.w, y_int8.data(), bias.data()};
  // Uneven thread ranges: [0, 5), [5, 22), [22, 39) (1 + 4·part rows, tails of 1..3 rows).
  for (auto [n0, n1] : {std::pair<int64_t, int64_t>{0, 5}, {5, 22}, {22, 39}}) {
    kq ? cpu::gguf_gemv_m1_k_avx2(acts, a, n0, n1) : cpu::gguf_gemv_m1_avx2(acts, a, n0, n1);
  }
  cpu::gguf_gemv_int8_avx2(b, 0, n);
  std::vector<double> dx(size_t(k / xg));  // x's int8 step per group: max|x| / 127
  for (int64_t c = 0; c < k; ++c) dx[size_t(c / xg)] = std::max(dx[size_t(c / xg)], std::fabs(double(x[size_t(c)])) / 127);
  for (int64_t j = 0; j < n; ++j) {
    double ref = bias[size_t(j)], ref_xq = bias[size_t(j)], bound = 0, mag = 0;
    for (int64_t c = 0; c < k; ++c) {
      const double w = qw.deq[size_t(j * k + c)];
      ref += double(x[size_t(c)]) * w;
      const double step = kq ? acts.d256[c / 256] : acts.d8[c / 32 * 8];
      ref_xq += double(acts.q[c]) * step * w;  // x as the kernel sees it
      bound += std::fabs(w) * dx[size_t(c / xg)] / 2;  // each x value is off by at most half a step
      mag += std::fabs(double(x[size_t(c)]) * w);
    }
    ASSERT_NEAR(y[size_t(j)], ref, bound + 1e-5 * mag) << gguf_traits(t).name << " row " << j;
    // With x's codes as given, the kernel is exact up to float rounding (a wrong scale or block is not).
    ASSERT_NEAR(y[size_t(j)], ref_xq, 1e-5 * mag) << gguf_traits(t).name << " row " << j;
    // The generic int8 kernel rounds x per 32 too: only the float summation order differs.
    if (!kq) {
      ASSERT_NEAR(y[size_t(j)], y_int8[size_t(j)], 1e-4 * mag) << gguf_traits(t).name << " row " << j;
    }
  }
  // The AVX-512 VNNI K-quant kernel does the same integer sums and float epilogue: bit-identical.
  if (kq && CpuFeatures::detect().avx512_vnni) {
    std::vector<float> y512(static_cast<size_t>(n), -1.f);
    const cpu::MatmulArgs c{x.data(), 1, qw.w, y512.data(), bias.data()};
    for (auto [n0, n1] : {std::pair<int64_t, int64_t>{0, 7}, {7, 30}, {30, 39}}) cpu::gguf_gemv_m1_k_avx512vnni(acts, c, n0, n1);
    for (int64_t j = 0; j < n; ++j) ASSERT_EQ(y512[size_t(j)], y[size_t(j)]) << gguf_traits(t).name << " row " << j;
  }
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, GgufGemvM1Types,
                         ::testing::Values(GgufType::Q4_0, GgufType::Q8_0, GgufType::Q4_K, GgufType::Q6_K),
                         [](const auto& info) { return std::string(gguf_traits(info.param).name); });

// The front door takes the m = 1 kernel on AVX2 only, and the scalar path under capped("scalar");
// both agree within x's int8 rounding, with 1 and 2 threads.
TEST(GgufGemvM1, FrontDoorDispatch) {
  const int64_t n = 70, k = 256;
  const Quantized qw = make(GgufType::Q4_0, n, k, 5);
  const auto x = randn(size_t(k), 9);
  std::vector<float> ys(static_cast<size_t>(n)), yv(static_cast<size_t>(n));
  ThreadPool pool1(1);
  ExecContext scalar(pool1, CpuFeatures::detect().capped("scalar"));
  EXPECT_STREQ(matmul_kernel_name(scalar, 1, qw.w), "gguf_gemv_scalar");
  matmul(scalar, x.data(), 1, qw.w, ys.data(), nullptr);
  if (!CpuFeatures::detect().avx2) GTEST_SKIP() << "host has no AVX2";
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    ExecContext ctx(pool, CpuFeatures::detect().capped("avx2"));
    EXPECT_STREQ(matmul_kernel_name(ctx, 1, qw.w), "gguf_gemv_m1_avx2");
    EXPECT_STRNE(matmul_kernel_name(ctx, 2, qw.w), "gguf_gemv_m1_avx2");
    matmul(ctx, x.data(), 1, qw.w, yv.data(), nullptr);
    for (int64_t j = 0; j < n; ++j) {
      double mag = 0;  // Σ|w·x|: the bound of x's int8 rounding, as in the test above
      for (int64_t c = 0; c < k; ++c) mag += std::fabs(double(x[size_t(c)]) * qw.deq[size_t(j * k + c)]);
      ASSERT_NEAR(yv[size_t(j)], ys[size_t(j)], 1e-2 * mag) << "row " << j << " threads " << threads;
    }
  }
}

}  // namespace
}  // namespace tern
