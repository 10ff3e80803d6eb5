// The even/odd bf16 GEMV (kernels/cpu/matmul_gemv_evenodd_avx512.cpp, m = 2..8 on AVX-512 hosts)
// against a double-precision reference and against the scalar kernel: every m from 1 to 8 on awkward k
// (below 32, not a multiple of 16 or 32, exact multiples, several hundred), odd n, bias on and off, 1
// and 2 threads; k = 0; and the dispatch rules that route bf16 decode rows to it.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "op_test_util.h"
#include "ops/matmul.h"

namespace tern {
namespace {

std::vector<float> random_floats(size_t count, uint32_t seed) { return test::random_floats(count, -1.f, 1.f, seed); }
using test::random_bf16;

// Error bound of an f32 dot product of length k against the exact sum: scales with sum |x*w|.
bool close(double got, double ref, double mag) { return std::fabs(got - ref) <= 1e-5 * mag + 1e-6; }

struct Shape {
  int64_t n, k;
};

// Shapes around the kernel's 32-wide steps and 3/4-row stream tiles.
constexpr Shape kShapes[] = {{1, 1},   {7, 5},    {37, 20},  {33, 31}, {65, 32},  {31, 33},
                             {37, 61}, {130, 64}, {67, 100}, {97, 513}, {258, 1000}};

void check_case(const CpuFeatures& cpu, int threads, int64_t m, Shape s, bool with_bias, uint32_t seed) {
  ThreadPool pool(threads);
  ExecContext ctx(pool, cpu);
  ThreadPool one(1);
  ExecContext scalar(one, cpu.capped("scalar"));
  const std::vector<uint16_t> wdata = random_bf16(size_t(s.n * s.k), seed);
  const WeightMatrix w{wdata.data(), DType::BF16, s.n, s.k};
  const std::vector<float> x = random_floats(size_t(m * s.k), seed + 1), b = random_floats(size_t(s.n), seed + 2);
  const float* bias = with_bias ? b.data() : nullptr;
  std::vector<float> y(size_t(m * s.n), std::nanf("")), ys(size_t(m * s.n), std::nanf(""));
  matmul(ctx, x.data(), m, w, y.data(), bias);
  matmul(scalar, x.data(), m, w, ys.data(), bias);
  const std::string what = std::string(matmul_kernel_name(ctx, m, w)) + " m=" + std::to_string(m) +
                           " n=" + std::to_string(s.n) + " k=" + std::to_string(s.k) +
                           " t=" + std::to_string(threads) + (with_bias ? " bias" : "");
  int bad = 0;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t r = 0; r < s.n; ++r) {
      double ref = bias ? bias[r] : 0.0, mag = bias ? std::fabs(bias[r]) : 0.0;
      for (int64_t j = 0; j < s.k; ++j) {
        const double p = double(x[size_t(i * s.k + j)]) * double(bf16_to_f32(wdata[size_t(r * s.k + j)]));
        ref += p;
        mag += std::fabs(p);
      }
      const float got = y[size_t(i * s.n + r)], want = ys[size_t(i * s.n + r)];
      if ((!close(got, ref, mag) || !close(got, want, 2 * mag)) && ++bad <= 3)
        ADD_FAILURE() << what << " y[" << i << "," << r << "] = " << got << " scalar " << want << " exact " << ref;
    }
  }
  EXPECT_EQ(bad, 0) << what;
}

bool host_has_avx512() {
  return CpuFeatures::detect().avx512;
}

TEST(MatmulEvenOdd, EveryDecodeRowCountOnAwkwardShapesBothThreadCounts) {
  if (!host_has_avx512()) GTEST_SKIP() << "host lacks avx512 (" << CpuFeatures::detect().describe() << ")";
  const CpuFeatures cpu = CpuFeatures::detect().capped("avx512");
  uint32_t seed = 1;
  for (int threads : {1, 2})
    for (int64_t m = 1; m <= 8; ++m)
      for (const Shape& s : kShapes) check_case(cpu, threads, m, s, (m + s.k) % 2 == 0, seed++);
}

// Wide enough to split over threads in several items and to leave stream-tile remainders (n % 4, n % 3).
TEST(MatmulEvenOdd, LargeShapeSplitOverThreads) {
  if (!host_has_avx512()) GTEST_SKIP() << "host lacks avx512";
  const CpuFeatures cpu = CpuFeatures::detect().capped("avx512");
  for (int64_t m : {3, 5, 8}) check_case(cpu, 2, m, {1031, 1408}, true, uint32_t(50 + m));
}

TEST(MatmulEvenOdd, ZeroLengthRowsGiveBias) {
  if (!host_has_avx512()) GTEST_SKIP() << "host lacks avx512";
  ThreadPool pool(1);
  ExecContext ctx(pool, CpuFeatures::detect().capped("avx512"));
  const uint16_t none = 0;
  const WeightMatrix w{&none, DType::BF16, 5, 0};
  const std::vector<float> b = random_floats(5, 3);
  std::vector<float> y(size_t(4 * 5), std::nanf(""));
  const float x = 0.f;
  matmul(ctx, &x, 4, w, y.data(), b.data());
  for (int i = 0; i < 4; ++i)
    for (int r = 0; r < 5; ++r) EXPECT_EQ(y[size_t(i * 5 + r)], b[size_t(r)]);
}

// bf16 decode rows 2..8 take the even/odd GEMV on AVX-512 (both activation precisions: the GEMV
// keeps x in f32); one row (plain decode) stays on the plain GEMV; other dtypes and ISAs never take it.
TEST(MatmulEvenOdd, DispatchPicksItForBf16Rows2To8) {
  const CpuFeatures host = CpuFeatures::detect();
  if (!host.avx512) GTEST_SKIP() << "host lacks avx512";
  ThreadPool pool(1);
  const uint16_t one = 0x3f80;
  const WeightMatrix bf16{&one, DType::BF16, 1, 1};
  const WeightMatrix f32{&one, DType::F32, 1, 1}, f16{&one, DType::F16, 1, 1};
  for (ActivationPrecision act : {ActivationPrecision::kF32, ActivationPrecision::kBf16}) {
    ExecContext ctx(pool, host, act);
    for (int64_t m = 1; m <= 12; ++m) {
      const std::string name = matmul_kernel_name(ctx, m, bf16);
      if (m >= 2 && m <= 8) {
        EXPECT_EQ(name, "gemv_evenodd_avx512_bf16") << "m " << m;
      } else {
        EXPECT_NE(name, "gemv_evenodd_avx512_bf16") << "m " << m;
      }
      if (m == 1) EXPECT_EQ(name, "gemv_avx512_bf16") << "m " << m;
      EXPECT_EQ(std::string(matmul_kernel_name(ctx, m, f32)).find("evenodd"), std::string::npos);
      EXPECT_EQ(std::string(matmul_kernel_name(ctx, m, f16)).find("evenodd"), std::string::npos);
    }
  }
  ExecContext avx2(pool, host.capped("avx2"));
  for (int64_t m = 1; m <= 8; ++m) EXPECT_EQ(std::string(matmul_kernel_name(avx2, m, bf16)), "gemv_avx2_bf16");
}

}  // namespace
}  // namespace tern
