// The integer GEMMs for GGUF weights at m > kGemvMaxRows (gguf_gemm_int8_avx512.cpp with VNNI,
// gguf_gemm_int8_avx2.cpp without): with x's int8 codes as the kernel sees them each is exact up to
// float rounding, for every supported format,
// random block bytes (the whole code space, negative Q6_K scales), row tails (m not a multiple of the
// 4-row tile), partial 32-column panels and thread ranges starting at any multiple of 16.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/cpu_features.h"
#include "kernels/cpu/gguf_gemm_int8_repack8.h"
#include "kernels/cpu/gguf_kernels.h"
#include "unit/gguf_test_util.h"

namespace tern {
namespace {

class GgufGemmInt8 : public ::testing::TestWithParam<GgufType> {};

TEST_P(GgufGemmInt8, ExactWithItsOwnXCodes) {
  const CpuFeatures cpu = CpuFeatures::detect();
  if (!cpu.avx2) GTEST_SKIP() << "host has no AVX2";
  const GgufType t = GetParam();
  for (bool vnni : {false, true}) {
  if (vnni && !cpu.avx512_vnni) continue;  // said by the kernel name in failures; AVX2 ran
  const auto prepare = vnni ? cpu::gguf_gemm_int8_prepare_avx512 : cpu::gguf_gemm_int8_prepare_avx2;
  const auto gemm = vnni ? cpu::gguf_gemm_int8_avx512vnni : cpu::gguf_gemm_int8_avx2;
  const char* kernel = vnni ? "avx512vnni" : "avx2";
  const int64_t n = 75, k = 768;  // n: two full panels + 11 columns; k: 3 super-blocks / 24 blocks
  for (bool raw : {false, true}) {
    const test::Quantized qw = raw ? test::make_random_bytes(t, n, k, 5) : test::make(t, n, k, 6);
    for (int64_t m : {9, 14}) {
      auto x = test::randn(size_t(m * k), uint32_t(m));
      x[7] *= 8.f;  // an outlier: its group's codes get coarse
      const auto bias = test::randn(size_t(n), 3);
      std::vector<char> acts_buf(cpu::gguf_gemm_int8_acts_bytes(m, k) + 64);
      void* ap = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(acts_buf.data()) + 63) & ~uintptr_t(63));
      const cpu::GgufGemmActs acts = prepare(x.data(), m, k, ap);
      std::vector<char> panel(cpu::gguf_gemm_int8_panel_bytes(qw.w) + 64);
      void* pp = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(panel.data()) + 63) & ~uintptr_t(63));
      std::vector<float> y(size_t(m * n), -1.f);
      const cpu::MatmulArgs a{x.data(), m, qw.w, y.data(), bias.data()};
      for (auto [n0, n1] : {std::pair<int64_t, int64_t>{0, 16}, {16, 64}, {64, 75}})
        gemm(acts, a, pp, n0, n1);
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) {
          double ref = bias[size_t(j)], mag = 0;
          for (int64_t c = 0; c < k; ++c) {
            const double xv = double(acts.q[i * k + c]) * acts.d[i * (k / 32) + c / 32];  // x as the kernel sees it
            ref += xv * qw.deq[size_t(j * k + c)];
            mag += std::fabs(xv * qw.deq[size_t(j * k + c)]);
          }
          ASSERT_NEAR(y[size_t(i * n + j)], ref, 2e-5 * mag + 1e-5)
              << kernel << " " << gguf_traits(t).name << (raw ? " random bytes" : "") << " m=" << m << " (" << i << "," << j << ")";
        }
      }
      // The codes round x per 32 to the nearest step.
      for (int64_t c = 0; c < k; ++c) {
        const float d = acts.d[c / 32];
        ASSERT_LE(std::fabs(x[size_t(c)] - float(acts.q[c]) * d), 0.5001f * d + 1e-7f) << kernel << " column " << c;
      }
    }
  }
  }
}

// The 8-rows-at-a-time panel repack (transposes in registers) gives the per-row repack's panel byte for byte:
// full panels, a panel of 3 groups of 8, one of 13 columns (a group and 5 single rows), Q8_0 signed and not.
TEST_P(GgufGemmInt8, Repack8MatchesPerRowRepack) {
  if (!CpuFeatures::detect().avx2) GTEST_SKIP() << "host has no AVX2";
  const GgufType t = GetParam();
  const int64_t n = 77, k = 768;
  const test::Quantized qw = test::make_random_bytes(t, n, k, 8);
  const cpu::MatmulArgs a{nullptr, 1, qw.w, nullptr, nullptr};
  const size_t bytes = cpu::gguf_gemm_int8_panel_bytes(qw.w);
  for (bool signed_q8 : {false, true}) {
    for (auto [c0, cols] : {std::pair<int64_t, int>{0, 32}, {32, 32}, {64, 13}, {40, 24}}) {
      std::vector<uint8_t> p1(bytes + 64, 0xAB), p2(bytes + 64, 0xCD);
      auto* b1 = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(p1.data()) + 63) & ~uintptr_t(63));
      auto* b2 = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(p2.data()) + 63) & ~uintptr_t(63));
      const cpu::PanelView v1 = cpu::panel_view(qw.w, b1), v2 = cpu::panel_view(qw.w, b2);
      cpu::repack_panel(a, c0, cols, v1.codes, v1.s, v1.mn, signed_q8);
      cpu::repack_panel8(a, c0, cols, v2.codes, v2.s, v2.mn, signed_q8);
      // Compare the regions the tile reads (codes, s, mn), not the alignment padding between them.
      const int64_t nsub = k / cpu::sub_elems(t);
      ASSERT_EQ(0, std::memcmp(v1.codes, v2.codes, size_t(nsub) * size_t(cpu::sub_elems(t)) * cpu::kPanel))
          << gguf_traits(t).name << " codes c0=" << c0 << " cols=" << cols << " signed=" << signed_q8;
      ASSERT_EQ(0, std::memcmp(v1.s, v2.s, size_t(nsub) * cpu::kPanel * sizeof(float)))
          << gguf_traits(t).name << " scales c0=" << c0 << " cols=" << cols;
      ASSERT_EQ(0, std::memcmp(v1.mn, v2.mn, size_t(nsub) * cpu::kPanel * sizeof(float)))
          << gguf_traits(t).name << " mins c0=" << c0 << " cols=" << cols << " signed=" << signed_q8;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, GgufGemmInt8,
                         ::testing::Values(GgufType::Q8_0, GgufType::Q4_0, GgufType::Q4_K, GgufType::Q5_K,
                                           GgufType::Q6_K),
                         [](const auto& info) { return std::string(gguf_traits(info.param).name); });

}  // namespace
}  // namespace tern
