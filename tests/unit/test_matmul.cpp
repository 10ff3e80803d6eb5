// matmul against a double-precision reference: every dtype, awkward shapes, bias on/off,
// 1 and 2 threads, every ISA level this host can run (the others are skipped with a message).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ops/matmul.h"

namespace tern {
namespace {

struct Stored {
  std::vector<uint16_t> half;
  std::vector<float> full;
  WeightMatrix w;
};

// Random weights [n, k] stored as `dt`; values are exactly representable in dt.
Stored make_weights(DType dt, int64_t n, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  Stored s;
  const size_t count = size_t(n * k);
  if (dt == DType::F32) {
    s.full.resize(count + 1);
    for (size_t i = 0; i < count; ++i) s.full[i] = u(rng);
    s.w.data = s.full.data();
  } else {
    s.half.resize(count + 1);
    for (size_t i = 0; i < count; ++i) s.half[i] = dt == DType::BF16 ? f32_to_bf16(u(rng)) : f32_to_f16(u(rng));
    s.w.data = s.half.data();
  }
  s.w.dtype = dt;
  s.w.rows = n;
  s.w.cols = k;
  return s;
}

// Checks y against a double reference; `rel` scales with sum |x*w| (the accumulation's error bound).
void expect_close(const std::vector<float>& x, int64_t m, const WeightMatrix& w, const float* bias,
                  const std::vector<float>& y, double rel, const std::string& what) {
  const int64_t n = w.rows, k = w.cols;
  int failures = 0;
  for (int64_t i = 0; i < m && failures < 5; ++i) {
    for (int64_t r = 0; r < n && failures < 5; ++r) {
      double ref = bias ? bias[r] : 0.0, mag = bias ? std::fabs(bias[r]) : 0.0;
      for (int64_t j = 0; j < k; ++j) {
        const double p = double(x[i * k + j]) * double(load_as_f32(w.data, w.dtype, size_t(r * k + j)));
        ref += p;
        mag += std::fabs(p);
      }
      const double err = std::fabs(double(y[i * n + r]) - ref);
      if (!(err <= rel * mag + 1e-6)) {
        ++failures;
        ADD_FAILURE() << what << " y[" << i << "," << r << "] = " << y[i * n + r] << " want " << ref
                      << " (err " << err << ", bound " << rel * mag + 1e-6 << ")";
      }
    }
  }
}

std::vector<float> random_vector(size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> v(count);
  for (auto& f : v) f = u(rng);
  return v;
}

struct Level {
  const char* name;
  CpuFeatures cpu;
  bool runnable;
  // The bf16-dot levels only run when the context allows bf16 activations.
  ActivationPrecision activations = ActivationPrecision::kF32;
};

std::vector<Level> levels() {
  const CpuFeatures host = CpuFeatures::detect();
  return {{"scalar", host.capped("scalar"), true},
          {"avx2", host.capped("avx2"), host.avx2},
          {"avx512", host.capped("avx512"), host.avx512},
          {"avx512bf16", host.capped("avx512bf16"), host.avx512_bf16, ActivationPrecision::kBf16},
          {"amx", host.capped("amx"), host.amx_bf16, ActivationPrecision::kBf16}};
}

// The bf16-dot kernels round x to bf16 (8 significant bits): relative error ~2^-8 per product.
double tolerance_for(const char* kernel) {
  const std::string k = kernel;
  return k.find("amx") != std::string::npos || k.find("avx512bf16") != std::string::npos ? 1e-2 : 1e-5;
}

void run_case(const Level& lv, DType dt, int64_t m, int64_t n, int64_t k, bool with_bias, int threads) {
  ThreadPool pool(threads);
  ExecContext ctx(pool, lv.cpu, lv.activations);
  Stored s = make_weights(dt, n, k, uint32_t(n * 131 + k * 7 + m));
  const auto x = random_vector(size_t(m * k), uint32_t(m + 17 * k));
  const auto bias = random_vector(size_t(n), uint32_t(n));
  std::vector<float> y(size_t(m * n), std::nanf(""));
  matmul(ctx, x.data(), m, s.w, y.data(), with_bias ? bias.data() : nullptr);
  const char* kernel = matmul_kernel_name(ctx, m, s.w);
  expect_close(x, m, s.w, with_bias ? bias.data() : nullptr, y, tolerance_for(kernel),
               std::string(kernel) + " m=" + std::to_string(m) + " n=" + std::to_string(n) +
                   " k=" + std::to_string(k) + " bias=" + std::to_string(with_bias) +
                   " threads=" + std::to_string(threads));
}

class MatmulLevel : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    lv_ = levels()[size_t(GetParam())];
    if (!lv_.runnable) GTEST_SKIP() << "host CPU lacks " << lv_.name << " (" << CpuFeatures::detect().describe() << ")";
  }
  Level lv_{};
};

TEST_P(MatmulLevel, AwkwardShapesAllDtypes) {
  for (DType dt : {DType::F32, DType::F16, DType::BF16})
    for (int64_t k : {1, 7, 33, 100, 2051})
      for (int64_t n : {1, 5, 17, 300})
        for (int64_t m : {1, 3, 9, 17})
          run_case(lv_, dt, m, n, k, (m + n) % 2 == 0, 1 + int((n + k) % 2));
}

TEST_P(MatmulLevel, EveryBatchSizeBothThreadCounts) {
  for (DType dt : {DType::F32, DType::F16, DType::BF16})
    for (int64_t m : {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 64, 130})
      for (int threads : {1, 2}) run_case(lv_, dt, m, 300, 100, m % 2 == 1, threads);
}

TEST_P(MatmulLevel, LargeEnoughToSplitBothWays) {
  // Wide n splits columns across threads; narrow n with many rows splits the rows of x.
  for (int threads : {1, 2}) {
    run_case(lv_, DType::BF16, 1, 1000, 2051, true, threads);
    run_case(lv_, DType::BF16, 8, 700, 512, false, threads);
    run_case(lv_, DType::BF16, 130, 300, 600, true, threads);
    run_case(lv_, DType::F16, 200, 40, 300, false, threads);
  }
}

// The bf16-dot GEMM's blocking edges (2048 inputs x 64 columns per block, 8-row tiles, 32-column
// panels): k one short of / past a block and odd, n around the panel and block widths, every
// partial row tile.
TEST_P(MatmulLevel, BlockEdgesOfTheGemms) {
  for (int64_t k : {31, 2047, 2049, 4100})
    for (int64_t n : {31, 33, 65, 130})
      for (int64_t m : {1, 9, 10, 11, 12, 13, 14, 15, 16, 17})
        run_case(lv_, DType::BF16, m, n, k, (m + n) % 2 == 1, 1 + int(m % 2));
}

TEST_P(MatmulLevel, ThreadCountOnlyChangesRounding) {
  const int64_t m = 37, n = 600, k = 700;
  Stored s = make_weights(DType::BF16, n, k, 5);
  const auto x = random_vector(size_t(m * k), 6);
  std::vector<float> y1(size_t(m * n)), y2(size_t(m * n));
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    ExecContext ctx(pool, lv_.cpu);
    matmul(ctx, x.data(), m, s.w, (threads == 1 ? y1 : y2).data());
    matmul(ctx, x.data(), 1, s.w, (threads == 1 ? y1 : y2).data());  // GEMV over row 0 too
  }
  for (size_t i = 0; i < y1.size(); ++i) ASSERT_NEAR(y1[i], y2[i], 1e-4f * (1.f + std::fabs(y1[i]))) << i;
}

TEST_P(MatmulLevel, ZeroInputsGiveBias) {
  ThreadPool pool(2);
  ExecContext ctx(pool, lv_.cpu);
  Stored s = make_weights(DType::BF16, 20, 0, 1);  // k = 0
  const auto bias = random_vector(20, 2);
  std::vector<float> y(3 * 20, std::nanf(""));
  matmul(ctx, nullptr, 3, s.w, y.data(), bias.data());
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t r = 0; r < 20; ++r) EXPECT_EQ(y[size_t(i * 20 + r)], bias[size_t(r)]);
  std::vector<float> y16(16 * 20, std::nanf(""));
  matmul(ctx, nullptr, 16, s.w, y16.data(), nullptr);
  for (float v : y16) EXPECT_EQ(v, 0.f);
}

INSTANTIATE_TEST_SUITE_P(Isa, MatmulLevel, ::testing::Range(0, 5), [](const auto& info) {
  return std::string(levels()[size_t(info.param)].name);
});

TEST(MatmulKernelName, FollowsShapeAndCpu) {
  ThreadPool pool(1);
  const CpuFeatures host = CpuFeatures::detect();
  WeightMatrix w{nullptr, DType::BF16, 64, 64};
  ExecContext scalar(pool, host.capped("scalar"));
  EXPECT_STREQ(matmul_kernel_name(scalar, 1, w), "gemv_scalar_bf16");
  EXPECT_STREQ(matmul_kernel_name(scalar, 9, w), "gemm_scalar_bf16");
  if (!host.avx2) GTEST_SKIP() << "host lacks avx2";
  ExecContext avx2(pool, host.capped("avx2"));
  EXPECT_STREQ(matmul_kernel_name(avx2, 8, w), "gemv_avx2_bf16");
  w.dtype = DType::F16;
  EXPECT_STREQ(matmul_kernel_name(avx2, 512, w), "gemm_avx2_f16");
}

// Dispatch alone (no kernel runs), so it is checked for CPUs this host is not.
TEST(MatmulKernelName, PrefersAmxThenBf16DotThenAvx512ForBf16Prefill) {
  ThreadPool pool(1);
  CpuFeatures f;
  f.avx2 = f.avx512 = f.avx512_bf16 = f.amx_bf16 = true;
  WeightMatrix bf16{nullptr, DType::BF16, 64, 64}, f16{nullptr, DType::F16, 64, 64}, f32{nullptr, DType::F32, 64, 64};
  const auto kBf16 = ActivationPrecision::kBf16;
  ExecContext amx(pool, f, kBf16);
  EXPECT_STREQ(matmul_kernel_name(amx, 9, bf16), "gemm_amx_bf16");
  EXPECT_STREQ(matmul_kernel_name(amx, 8, bf16), "gemv_evenodd_avx512_bf16");
  EXPECT_STREQ(matmul_kernel_name(amx, 1, bf16), "gemv_avx512_bf16");
  EXPECT_STREQ(matmul_kernel_name(amx, 512, f16), "gemm_avx512_f16");
  ExecContext dot(pool, f.capped("avx512bf16"), kBf16);
  EXPECT_STREQ(matmul_kernel_name(dot, 512, bf16), "gemm_avx512bf16_bf16");
  EXPECT_STREQ(matmul_kernel_name(dot, 512, f32), "gemm_avx512_f32");
  ExecContext avx512(pool, f.capped("avx512"));
  EXPECT_STREQ(matmul_kernel_name(avx512, 512, bf16), "gemm_avx512_bf16");
  EXPECT_STREQ(matmul_kernel_name(avx512, 1, f32), "gemv_avx512_f32");
}

// By default x stays f32 at every m (exact against fp32 references, batch-invariant): the bf16-dot
// GEMMs are never chosen, even on a CPU that has them.
TEST(MatmulKernelName, DefaultContextKeepsF32Activations) {
  ThreadPool pool(1);
  CpuFeatures f;
  f.avx2 = f.avx512 = f.avx512_bf16 = f.amx_bf16 = true;
  WeightMatrix bf16{nullptr, DType::BF16, 64, 64};
  ExecContext ctx(pool, f);
  EXPECT_STREQ(matmul_kernel_name(ctx, 9, bf16), "gemm_avx512_bf16");
  EXPECT_STREQ(matmul_kernel_name(ctx, 512, bf16), "gemm_avx512_bf16");
}

}  // namespace
}  // namespace tern
