// The small-m GGUF GEMV (batched decode, m = 1..16 rows of x; gguf_gemv_smallm_*.cpp) for Q4_0 / Q8_0 / Q4_K /
// Q5_K / Q6_K: the scalar reference against the f32 dequantized product within x's int8 rounding; the AVX2 and
// AVX-512 VNNI kernels against the reference within float summation order, for every m (odd m: quads
// with 1..3 rows), ragged column counts and uneven thread column ranges; the front door's choice.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/cpu_features.h"
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

struct Aligned {
  std::vector<char> buf;
  void* p;
  explicit Aligned(size_t bytes) : buf(bytes + 64) {
    p = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t(63));
  }
};

// Σ_c |w·x| per output, the scale of float rounding.
std::vector<double> magnitudes(const Quantized& qw, const std::vector<float>& x, int64_t m) {
  const int64_t n = qw.w.rows, k = qw.w.cols;
  std::vector<double> mag(size_t(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t c = 0; c < k; ++c)
        mag[size_t(i * n + j)] += std::fabs(double(x[size_t(i * k + c)]) * qw.deq[size_t(j * k + c)]);
  return mag;
}

class GgufGemvSmallm : public ::testing::TestWithParam<GgufType> {};

TEST_P(GgufGemvSmallm, KernelsMatchReference) {
  const CpuFeatures cpu = CpuFeatures::detect();
  if (!cpu.avx2) GTEST_SKIP() << "host has no AVX2 (the activation prepare needs it)";
  const GgufType t = GetParam();
  const bool kq = t != GgufType::Q4_0 && t != GgufType::Q8_0;
  // n = 37: not a multiple of 4, 16 or 32; k: 3 super-blocks (K-quants) / 12 pairs of 32-blocks (Q4_0 / Q8_0),
  // and 2304 values, past the kernels' k chunk of 2048 (a full chunk and a ragged one).
  const int64_t n = 37, xg = kq ? 256 : 32;
  for (int64_t k : {768, 2304}) {
  ASSERT_TRUE(cpu::gguf_gemv_smallm_supported(t, k));
  for (bool raw : {false, true}) {
    const Quantized qw = raw ? make_random_bytes(t, n, k, 41) : make(t, n, k, 17);
    for (int64_t m = 1; m <= cpu::kGgufSmallmMaxRows; ++m) {
      auto x = randn(size_t(m * k), uint32_t(100 + m));
      x[size_t((m - 1) * k + 7)] *= 8.f;  // an outlier in the last row: its group's codes get coarse
      const auto bias = randn(size_t(n), 5);
      Aligned scratch(cpu::gguf_smallm_acts_bytes(t, m, k));
      const cpu::GgufSmallmActs acts = cpu::gguf_smallm_prepare(t, x.data(), m, k, scratch.p);
      std::vector<float> yref(size_t(m * n)), y2(size_t(m * n), -7.f), y5(size_t(m * n), -7.f);
      cpu::gguf_gemv_smallm_ref(acts, {x.data(), m, qw.w, yref.data(), bias.data()}, 0, n);
      const auto mag = magnitudes(qw, x, m);
      const std::string what =
          std::string(gguf_traits(t).name) + (raw ? " raw" : "") + " k=" + std::to_string(k) + " m=" + std::to_string(m);
      // The reference against the exact f32 product: x's codes are off by at most half a step each.
      for (int64_t i = 0; i < m; ++i) {
        std::vector<double> dx(size_t(k / xg));
        for (int64_t c = 0; c < k; ++c)
          dx[size_t(c / xg)] = std::max(dx[size_t(c / xg)], std::fabs(double(x[size_t(i * k + c)])) / 127);
        for (int64_t j = 0; j < n; ++j) {
          double ref = bias[size_t(j)], bound = 0;
          for (int64_t c = 0; c < k; ++c) {
            const double w = qw.deq[size_t(j * k + c)];
            ref += double(x[size_t(i * k + c)]) * w;
            bound += std::fabs(w) * dx[size_t(c / xg)] / 2;
          }
          ASSERT_NEAR(yref[size_t(i * n + j)], ref, bound + 1e-5 * mag[size_t(i * n + j)]) << what << " row " << i << " col " << j;
        }
      }
      // The kernels against the reference: the same integer sums, only the float order differs.
      const cpu::MatmulArgs a2{x.data(), m, qw.w, y2.data(), bias.data()};
      for (auto [n0, n1] : {std::pair<int64_t, int64_t>{0, 5}, {5, 22}, {22, 37}}) cpu::gguf_gemv_smallm_avx2(acts, a2, n0, n1);
      for (int64_t e = 0; e < m * n; ++e)
        ASSERT_NEAR(y2[size_t(e)], yref[size_t(e)], 1e-5 * mag[size_t(e)] + 1e-6) << what << " avx2 at " << e;
      if (cpu.avx512_vnni) {
        const cpu::MatmulArgs a5{x.data(), m, qw.w, y5.data(), bias.data()};
        for (auto [n0, n1] : {std::pair<int64_t, int64_t>{0, 16}, {16, 19}, {19, 37}}) cpu::gguf_gemv_smallm_avx512vnni(acts, a5, n0, n1);
        for (int64_t e = 0; e < m * n; ++e)
          ASSERT_NEAR(y5[size_t(e)], yref[size_t(e)], 1e-5 * mag[size_t(e)] + 1e-6) << what << " avx512 at " << e;
      }
    }
  }
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, GgufGemvSmallm, ::testing::Values(GgufType::Q4_0, GgufType::Q8_0, GgufType::Q4_K, GgufType::Q5_K, GgufType::Q6_K),
                         [](const auto& info) { return std::string(gguf_traits(info.param).name); });

// Through matmul(): m = 2..16 (Q5_K: 1..16) takes the small-m kernel on AVX2 (forced with capped("avx2")) and on the
// host's best ISA, with 1 and 2 threads, and agrees with the scalar path within x's int8 rounding; a k
// the kernel does not take (Q4_0 with an odd number of 32-blocks) falls back to another kernel.
TEST(GgufGemvSmallmFrontDoor, DispatchAndResults) {
  if (!CpuFeatures::detect().avx2) GTEST_SKIP() << "host has no AVX2";
  ThreadPool pool1(1);
  ExecContext scalar(pool1, CpuFeatures::detect().capped("scalar"));
  for (GgufType t : {GgufType::Q4_0, GgufType::Q8_0, GgufType::Q4_K, GgufType::Q5_K, GgufType::Q6_K}) {
    const int64_t n = 70, k = 512;
    const Quantized qw = make(t, n, k, 3);
    for (int64_t m : {2, 3, 5, 8, 9, 13, 16}) {
      const auto x = randn(size_t(m * k), uint32_t(m));
      std::vector<float> ys(size_t(m * n)), yv(size_t(m * n));
      matmul(scalar, x.data(), m, qw.w, ys.data(), nullptr);
      const auto mag = magnitudes(qw, x, m);
      for (const char* isa : {"avx2", ""}) {
        for (int threads : {1, 2}) {
          ThreadPool pool(threads);
          ExecContext ctx(pool, *isa ? CpuFeatures::detect().capped(isa) : CpuFeatures::detect());
          const bool vnni = ctx.cpu().avx512_vnni;
          // On VNNI, Q4_0 / Q8_0 past 12 rows take the int8 GEMM (ops/matmul_gguf.cpp, measured).
          const bool gemm = vnni && m > 12 && (t == GgufType::Q4_0 || t == GgufType::Q8_0);
          EXPECT_STREQ(matmul_kernel_name(ctx, m, qw.w), gemm ? "gguf_gemm_int8_avx512vnni"
                                                         : vnni ? "gguf_gemv_smallm_avx512vnni" : "gguf_gemv_smallm_avx2");
          matmul(ctx, x.data(), m, qw.w, yv.data(), nullptr);
          for (int64_t e = 0; e < m * n; ++e)
            ASSERT_NEAR(yv[size_t(e)], ys[size_t(e)], 1e-2 * mag[size_t(e)])
                << gguf_traits(t).name << " m=" << m << " isa=" << isa << " threads=" << threads << " at " << e;
        }
      }
    }
  }
  const Quantized odd = make(GgufType::Q4_0, 40, 96, 9);  // 3 blocks of 32: no pairs
  const Quantized odd8 = make(GgufType::Q8_0, 40, 96, 9);
  ThreadPool pool(1);
  ExecContext ctx(pool, CpuFeatures::detect());
  // Q5_K has no m = 1 kernel of its own and takes this one at m = 1 too; the others keep theirs.
  const Quantized q5 = make(GgufType::Q5_K, 40, 256, 2), q4 = make(GgufType::Q4_K, 40, 256, 2);
  const bool vnni = ctx.cpu().avx512_vnni;
  EXPECT_STREQ(matmul_kernel_name(ctx, 1, q5.w), vnni ? "gguf_gemv_smallm_avx512vnni" : "gguf_gemv_smallm_avx2");
  EXPECT_STRNE(matmul_kernel_name(ctx, 1, q4.w), vnni ? "gguf_gemv_smallm_avx512vnni" : "gguf_gemv_smallm_avx2");
  EXPECT_FALSE(cpu::gguf_gemv_smallm_supported(GgufType::Q4_0, 96));
  EXPECT_FALSE(cpu::gguf_gemv_smallm_supported(GgufType::Q8_0, 96));
  EXPECT_STRNE(matmul_kernel_name(ctx, 4, odd8.w), "gguf_gemv_smallm_avx2");
  EXPECT_STRNE(matmul_kernel_name(ctx, 4, odd8.w), "gguf_gemv_smallm_avx512vnni");
  // Q8_0 keeps its own m = 1 kernel.
  const Quantized q8 = make(GgufType::Q8_0, 40, 256, 2);
  EXPECT_STREQ(matmul_kernel_name(ctx, 1, q8.w), "gguf_gemv_m1_avx2");
  EXPECT_STRNE(matmul_kernel_name(ctx, 4, odd.w), "gguf_gemv_smallm_avx2");
  EXPECT_STRNE(matmul_kernel_name(ctx, 4, odd.w), "gguf_gemv_smallm_avx512vnni");
  // Past kGgufSmallmMaxRows rows the integer GEMM takes over; 9..16 rows of a k the kernel does not take too,
  // and on VNNI 9..16 rows at k > 4096 (x's 16 rows past L1) except for Q6_K.
  const char* gemm = vnni ? "gguf_gemm_int8_avx512vnni" : "gguf_gemm_int8_avx2";
  EXPECT_STREQ(matmul_kernel_name(ctx, cpu::kGgufSmallmMaxRows + 1, q8.w), gemm);
  EXPECT_STREQ(matmul_kernel_name(ctx, 12, odd8.w), gemm);
  const Quantized wide4 = make(GgufType::Q4_K, 8, 8192, 2), wide6 = make(GgufType::Q6_K, 8, 8192, 2);
  EXPECT_STREQ(matmul_kernel_name(ctx, 9, wide4.w), vnni ? gemm : "gguf_gemv_smallm_avx2");
  EXPECT_STREQ(matmul_kernel_name(ctx, 16, wide6.w), vnni ? "gguf_gemv_smallm_avx512vnni" : "gguf_gemv_smallm_avx2");
}

// Q8_0 at the ends of the code ranges: weight codes −128 / 127 and x codes ±127 (every group's values equal in
// magnitude), in sign patterns that put the largest pair sums into AVX2's vpmaddubsw (|w| = 128 × |xq| = 127
// twice: 32512, just below int16's limit) and VNNI's vpdpbusd (x + 128 = 255 × −128). Each kernel gives the
// reference's exact integer sums: with d = 1 and x = ±127 (x's scale 1) every sum is an integer below 2^24,
// exact in float, so all agree exactly.
TEST(GgufGemvSmallmQ8_0, ExtremeCodes) {
  const CpuFeatures cpu = CpuFeatures::detect();
  if (!cpu.avx2) GTEST_SKIP() << "host has no AVX2";
  const int64_t n = 6, k = 128, m = cpu::kGgufSmallmMaxRows;
  Quantized qw;
  const size_t rb = gguf_row_bytes(GgufType::Q8_0, k);
  qw.q.resize(rb * size_t(n));
  const uint16_t one = f32_to_f16(1.f);
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t b = 0; b < k / 32; ++b) {
      uint8_t* blk = qw.q.data() + size_t(j) * rb + size_t(b) * 34;
      std::memcpy(blk, &one, 2);
      for (int v = 0; v < 32; ++v) {  // rows: all −128, all 127, alternating, halves, and two mixed patterns
        const int8_t c = j == 0 ? -128 : j == 1 ? 127 : j == 2 ? (v % 2 ? 127 : -128) : j == 3 ? (v < 16 ? -128 : 127)
                         : j == 4 ? ((v / 2) % 2 ? -128 : 127) : int8_t((v * 37 + int(b) * 11) % 256 - 128);
        blk[2 + v] = uint8_t(c);
      }
    }
  }
  qw.w.format = WeightFormat::Gguf, qw.w.gguf_type = int(GgufType::Q8_0), qw.w.data = qw.q.data();
  qw.w.rows = n, qw.w.cols = k, qw.w.quant_bytes = qw.q.size();
  std::vector<float> x(size_t(m * k));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t c = 0; c < k; ++c)  // row 0 all +1, row 1 all −1, then sign patterns per value / pair / half
      x[size_t(i * k + c)] = i == 0 ? 127.f : i == 1 ? -127.f : (((c >> ((i - 2) % 7)) ^ (i / 9)) & 1) ? -127.f : 127.f;
  for (int64_t rows = 1; rows <= m; ++rows) {
    Aligned scratch(cpu::gguf_smallm_acts_bytes(GgufType::Q8_0, rows, k));
    const cpu::GgufSmallmActs acts = cpu::gguf_smallm_prepare(GgufType::Q8_0, x.data(), rows, k, scratch.p);
    std::vector<float> yref(size_t(rows * n)), y2(size_t(rows * n), -7.f), y5(size_t(rows * n), -7.f);
    cpu::gguf_gemv_smallm_ref(acts, {x.data(), rows, qw.w, yref.data(), nullptr}, 0, n);
    cpu::gguf_gemv_smallm_avx2(acts, {x.data(), rows, qw.w, y2.data(), nullptr}, 0, n);
    if (cpu.avx512_vnni) cpu::gguf_gemv_smallm_avx512vnni(acts, {x.data(), rows, qw.w, y5.data(), nullptr}, 0, n);
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double exact = 0;
        for (int64_t c = 0; c < k; ++c)
          exact += double(int8_t(qw.q[size_t(j) * rb + size_t(c / 32) * 34 + 2 + size_t(c % 32)])) * x[size_t(i * k + c)];
        const size_t e = size_t(i * n + j);
        ASSERT_EQ(yref[e], float(exact)) << "ref rows=" << rows << " row " << i << " col " << j;
        ASSERT_EQ(y2[e], yref[e]) << "avx2 rows=" << rows << " row " << i << " col " << j;
        if (cpu.avx512_vnni) {
          ASSERT_EQ(y5[e], yref[e]) << "avx512 rows=" << rows << " row " << i << " col " << j;
        }
      }
    }
  }
}

}  // namespace
}  // namespace tern
