// The small-m bf16 kernel (m = 9..64, batched decode) against a double-precision reference and
// against the scalar path: every m from 1 to 64 on a shape with odd n and a k tail, k spanning
// several k blocks, bias on/off, 1 and 2 threads; and the dispatch rules around it.
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

// y vs a double reference; the bound scales with sum |x*w| (f32 accumulation error).
int count_mismatches(const std::vector<float>& x, int64_t m, const WeightMatrix& w, const float* bias,
                     const std::vector<float>& y, const std::string& what) {
  const int64_t n = w.rows, k = w.cols;
  int bad = 0;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t r = 0; r < n; ++r) {
      double ref = bias ? bias[r] : 0.0, mag = bias ? std::fabs(bias[r]) : 0.0;
      for (int64_t j = 0; j < k; ++j) {
        const double p = double(x[size_t(i * k + j)]) * double(load_as_f32(w.data, DType::BF16, size_t(r * k + j)));
        ref += p;
        mag += std::fabs(p);
      }
      const double err = std::fabs(double(y[size_t(i * n + r)]) - ref);
      if (!(err <= 1e-5 * mag + 1e-6) && ++bad <= 3) {
        ADD_FAILURE() << what << " y[" << i << "," << r << "] = " << y[size_t(i * n + r)] << " want " << ref;
      }
    }
  }
  return bad;
}

struct Case {
  int64_t n, k;
  bool bias;
};

void run_case(const CpuFeatures& cpu, int threads, int64_t m, const Case& c, uint32_t seed) {
  ThreadPool pool(threads);
  ExecContext ctx(pool, cpu);
  const std::vector<uint16_t> wdata = random_bf16(size_t(c.n * c.k), seed);
  const WeightMatrix w{wdata.data(), DType::BF16, c.n, c.k};
  const std::vector<float> x = random_floats(size_t(m * c.k), seed + 1), b = random_floats(size_t(c.n), seed + 2);
  std::vector<float> y(size_t(m * c.n), std::nanf(""));
  matmul(ctx, x.data(), m, w, y.data(), c.bias ? b.data() : nullptr);
  const std::string what = std::string(matmul_kernel_name(ctx, m, w)) + " m=" + std::to_string(m) +
                           " n=" + std::to_string(c.n) + " k=" + std::to_string(c.k) + " t=" + std::to_string(threads);
  EXPECT_EQ(count_mismatches(x, m, w, c.bias ? b.data() : nullptr, y, what), 0) << what;
}


TEST(MatmulSmallM, EveryMOnOddShape) {
  const CpuFeatures host = CpuFeatures::detect();
  if (!host.avx2) GTEST_SKIP() << "host lacks avx2 (" << host.describe() << ")";
  // n odd (a single-row tile at the end), k = 3 full 16-blocks + a 13-element tail.
  for (int64_t m = 1; m <= 64; ++m) run_case(host.capped("avx2"), 1, m, {37, 61, m % 2 == 0}, uint32_t(m));
}

TEST(MatmulSmallM, SeveralKBlocksAndColumnBlocksBothThreadCounts) {
  const CpuFeatures host = CpuFeatures::detect();
  if (!host.avx2) GTEST_SKIP() << "host lacks avx2 (" << host.describe() << ")";
  // k = 2 * 1024 + 52 (two k blocks, a partial third, a 4-element tail); n = 2 * 64 + 3 column blocks.
  for (int64_t m : {9, 12, 16, 17, 23, 33, 64})
    for (int t : {1, 2}) run_case(host.capped("avx2"), t, m, {131, 2100, true}, uint32_t(100 + m));
  run_case(host.capped("avx2"), 2, 16, {200, 16, false}, 7);   // one 16-block, no tail
  run_case(host.capped("avx2"), 1, 10, {5, 7, true}, 8);       // k < 16: tail only
}

TEST(MatmulSmallM, MatchesScalarFallback) {
  const CpuFeatures host = CpuFeatures::detect();
  if (!host.avx2) GTEST_SKIP() << "host lacks avx2 (" << host.describe() << ")";
  ThreadPool pool(2);
  ExecContext fast(pool, host.capped("avx2")), scalar(pool, host.capped("scalar"));
  const int64_t m = 16, n = 96, k = 1040;
  const std::vector<uint16_t> wdata = random_bf16(size_t(n * k), 3);
  const WeightMatrix w{wdata.data(), DType::BF16, n, k};
  const std::vector<float> x = random_floats(size_t(m * k), 4);
  std::vector<float> a(size_t(m * n)), b(size_t(m * n));
  ASSERT_STREQ(matmul_kernel_name(fast, m, w), "smallm_avx2_bf16");
  ASSERT_STREQ(matmul_kernel_name(scalar, m, w), "gemm_scalar_bf16");
  matmul(fast, x.data(), m, w, a.data());
  matmul(scalar, x.data(), m, w, b.data());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-3f) << "element " << i;
}

TEST(MatmulSmallM, DispatchRange) {
  ThreadPool pool(1);
  CpuFeatures avx2;
  avx2.avx2 = true;
  ExecContext ctx(pool, avx2);
  WeightMatrix bf16{nullptr, DType::BF16, 64, 64}, f16{nullptr, DType::F16, 64, 64};
  EXPECT_STREQ(matmul_kernel_name(ctx, 8, bf16), "gemv_avx2_bf16");
  EXPECT_STREQ(matmul_kernel_name(ctx, 9, bf16), "smallm_avx2_bf16");
  EXPECT_STREQ(matmul_kernel_name(ctx, 64, bf16), "smallm_avx2_bf16");
  EXPECT_STREQ(matmul_kernel_name(ctx, 65, bf16), "gemm_avx2_bf16");
  EXPECT_STREQ(matmul_kernel_name(ctx, 16, f16), "gemm_avx2_f16");
  ExecContext scalar(pool, avx2.capped("scalar"));
  EXPECT_STREQ(matmul_kernel_name(scalar, 16, bf16), "gemm_scalar_bf16");
  // CPUs with AVX-512 keep their own GEMMs (the small-m kernel is AVX2 only).
  CpuFeatures wide = avx2;
  wide.avx512 = true;
  ExecContext w512(pool, wide);
  EXPECT_STREQ(matmul_kernel_name(w512, 16, bf16), "gemm_avx512_bf16");
}

}  // namespace
}  // namespace tern
