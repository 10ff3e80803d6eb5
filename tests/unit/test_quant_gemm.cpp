// The integer GEMMs for tern's int8 (W8A16) and int4-group weights at m > kGemvMaxRows
// (quant_gemm_w8a16.cpp, quant_gemm_int4.cpp): every ISA variant the host can run (AVX2 always where
// present, AVX-512 VNNI where present) against the scalar references on the same prepared x (exact
// integer block / group sums, so only the f32 order of the per-block terms differs), over row tails
// (m not a multiple of the 4-row tile), partial 32-column panels, thread ranges starting at multiples of
// 32, k not a multiple of the 64-column x16 block, every int4 group size, with and without zero points;
// and the front door's choice and result at every level, 1 and 2 threads.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/quant_kernels.h"
#include "ops/matmul.h"

namespace tern {
namespace {

struct Case {
  int64_t m, n, k;
  std::vector<uint8_t> codes;
  std::vector<float> scales, zeros, x, bias;
  WeightMatrix w;
};

// W8A16: codes over the whole int8 range; int4: random packed bytes, scales of both signs, zero points
// in [0, 15] (or none: symmetric, zero 8).
Case make_case(WeightFormat f, int64_t m, int64_t n, int64_t k, int group, bool zeros, uint32_t seed) {
  Case c{m, n, k, {}, {}, {}, {}, {}, {}};
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  const int64_t ng = f == WeightFormat::Int4Group ? k / group : 1;
  c.codes.resize(size_t(f == WeightFormat::Int4Group ? n * k / 2 : n * k));
  for (auto& v : c.codes) v = uint8_t(rng());
  c.scales.resize(size_t(n * ng));
  for (auto& v : c.scales) v = 0.01f * nd(rng);
  if (zeros) {
    c.zeros.resize(size_t(n * ng));
    for (auto& v : c.zeros) v = float(rng() % 16);
  }
  c.x.resize(size_t(m * k));
  for (auto& v : c.x) v = nd(rng);
  if (k > 3) c.x[3] = 40.0f;  // an outlier, as real activations have
  c.bias.resize(size_t(n));
  for (auto& v : c.bias) v = nd(rng);
  c.w.rows = n, c.w.cols = k, c.w.format = f, c.w.data = c.codes.data(), c.w.scales = c.scales.data();
  c.w.zeros = zeros ? c.zeros.data() : nullptr;
  c.w.group = f == WeightFormat::Int4Group ? group : 0;
  c.w.quant_bytes = c.codes.size() + c.scales.size() * sizeof(float) + c.zeros.size() * sizeof(float);
  return c;
}

// Σ of the magnitudes of every term the kernels add for (i, r), in the same units as y: the f32
// reordering of (blocks + lanes) additions moves y by at most that many roundings of it.
double term_mag(const Case& c, const cpu::QuantActs& a, int64_t i, int64_t r) {
  const int64_t k = c.k;
  double mag = std::fabs(c.bias[size_t(r)]);
  if (c.w.format == WeightFormat::Int8Channel) {
    const int64_t nb = (k + cpu::kX16Block - 1) / cpu::kX16Block;
    const auto* q = reinterpret_cast<const int8_t*>(c.codes.data());
    for (int64_t j = 0; j < k; ++j)
      mag += std::fabs(double(a.xd16[i * nb + j / cpu::kX16Block]) * a.x16[i * k + j] * q[r * k + j] * c.scales[size_t(r)]);
    return mag;
  }
  const int64_t gs = c.w.group, ng = k / gs;
  for (int64_t g = 0; g < ng; ++g) {
    double dot = 0;
    for (int64_t j = g * gs; j < (g + 1) * gs; ++j) {
      const uint8_t byte = c.codes[size_t(r * (k / 2) + (j / 32) * 16 + (j % 16))];
      dot += std::fabs(double((j % 32) < 16 ? (byte & 0xf) : (byte >> 4)) * a.xq[i * k + j]);
    }
    const double s = std::fabs(c.scales[size_t(r * ng + g)]), z = c.zeros.empty() ? 8.0 : c.zeros[size_t(r * ng + g)];
    mag += s * (a.xd[i * ng + g] * dot + z * std::fabs(a.xs[i * ng + g]));
  }
  return mag;
}

struct Variant {
  const char* name;
  bool available;
  cpu::QuantGemmFn fn;
};

std::vector<Variant> variants(WeightFormat f) {
  const CpuFeatures host = CpuFeatures::detect();
  if (f == WeightFormat::Int8Channel)
    return {{"avx2", host.avx2, cpu::quant_gemm_w8a16_avx2}, {"avx512vnni", host.avx512_vnni, cpu::quant_gemm_w8a16_avx512vnni}};
  return {{"avx2", host.avx2, cpu::quant_gemm_int4_avx2}, {"avx512vnni", host.avx512_vnni, cpu::quant_gemm_int4_avx512vnni}};
}

void check_variants(const Case& c) {
  SCOPED_TRACE(::testing::Message() << "m " << c.m << " n " << c.n << " k " << c.k << " group " << c.w.group
                                    << (c.w.zeros ? " zeros" : ""));
  const int64_t m = c.m, n = c.n;
  std::vector<char> scratch(cpu::quant_acts_bytes(c.w, m) + 64);
  const cpu::QuantActs a = cpu::quant_acts_prepare(c.w, c.x.data(), m, scratch.data());
  std::vector<float> ref(size_t(m * n));
  if (c.w.format == WeightFormat::Int8Channel) {
    ASSERT_NE(a.x16, nullptr);
    cpu::quant_w8a16_x16_scalar(a, c.w, ref.data(), c.bias.data(), 0, m, 0, n);
  } else {
    cpu::quant_int4_scalar(a, c.w, ref.data(), c.bias.data(), 0, m, 0, n);
  }
  const size_t panel_bytes = c.w.format == WeightFormat::Int8Channel ? cpu::quant_gemm_w8a16_panel_bytes(c.w)
                                                                     : cpu::quant_gemm_int4_panel_bytes(c.w);
  std::vector<char> panel(panel_bytes + 64);
  void* pp = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(panel.data()) + 63) & ~uintptr_t(63));
  int ran = 0;
  for (const Variant& v : variants(c.w.format)) {
    if (!v.available) continue;
    ++ran;
    std::vector<float> y(size_t(m * n), -7.0f);
    // Ranges as threads get them: multiples of 32, the last one partial.
    for (int64_t b = 0; b < n; b += 64) v.fn(a, c.w, y.data(), c.bias.data(), b, std::min(n, b + 64), pp);
    const int64_t nb = (c.k + cpu::kX16Block - 1) / cpu::kX16Block;
    const int64_t terms = c.w.format == WeightFormat::Int8Channel ? nb : 2 * (c.k / c.w.group);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t r = 0; r < n; ++r)
        ASSERT_NEAR(y[size_t(i * n + r)], ref[size_t(i * n + r)], double(terms + 40) * 1.2e-7 * term_mag(c, a, i, r))
            << v.name << " at " << i << "," << r;
  }
  if (ran == 0) GTEST_SKIP() << "host has no AVX2";
}

TEST(QuantGemm, W8A16EveryVariantMatchesTheScalarReference) {
  for (int64_t k : {64, 96, 258, 704, 2048})
    for (int64_t m : {9, 12, 14, 17}) check_variants(make_case(WeightFormat::Int8Channel, m, 75, k, 0, false, uint32_t(k + m)));
  check_variants(make_case(WeightFormat::Int8Channel, 16, 32, 512, 0, false, 5));  // exactly one panel
  check_variants(make_case(WeightFormat::Int8Channel, 9, 7, 128, 0, false, 6));    // fewer columns than a half
}

TEST(QuantGemm, Int4EveryVariantMatchesTheScalarReference) {
  for (int group : {32, 64, 128})
    for (bool zeros : {false, true})
      for (int64_t m : {9, 14, 16})
        check_variants(make_case(WeightFormat::Int4Group, m, 75, 512, group, zeros, uint32_t(group + m + zeros)));
  check_variants(make_case(WeightFormat::Int4Group, 17, 40, 2048, 128, true, 8));
}

// The front door at every level the host has, 1 and 2 threads: the GEMM is chosen for m > 8 and agrees
// with the scalar reference kernels (which the scalar level runs) on the same prepared x.
TEST(QuantGemm, FrontDoorChoosesTheGemm) {
  const CpuFeatures host = CpuFeatures::detect();
  for (WeightFormat f : {WeightFormat::Int8Channel, WeightFormat::Int4Group}) {
    const bool int8 = f == WeightFormat::Int8Channel;
    const Case c = make_case(f, 21, 136, 768, 128, !int8, 77);
    const int64_t m = c.m, n = c.n;
    std::vector<char> scratch(cpu::quant_acts_bytes(c.w, m) + 64);
    const cpu::QuantActs a = cpu::quant_acts_prepare(c.w, c.x.data(), m, scratch.data());
    std::vector<float> ref(size_t(m * n));
    int8 ? cpu::quant_w8a16_x16_scalar(a, c.w, ref.data(), c.bias.data(), 0, m, 0, n)
         : cpu::quant_int4_scalar(a, c.w, ref.data(), c.bias.data(), 0, m, 0, n);
    struct Cfg {
      std::string level;
      const char* kernel;
    };
    std::vector<Cfg> cfgs;
    if (host.avx2) cfgs.push_back({"avx2", int8 ? "w8a16_gemm_avx2" : "int4_gemm_avx2"});
    if (host.avx512_vnni) cfgs.push_back({"avx512", int8 ? "w8a16_gemm_avx512vnni" : "int4_gemm_avx512vnni"});
    for (const Cfg& cfg : cfgs)
      for (int threads : {1, 2}) {
        SCOPED_TRACE(cfg.level + " threads " + std::to_string(threads) + (int8 ? " int8" : " int4"));
        CpuFeatures feats = host.capped(cfg.level);
        feats.avx_vnni = false;
        ThreadPool pool(threads);
        ExecContext ctx(pool, feats);
        EXPECT_STREQ(matmul_kernel_name(ctx, m, c.w), cfg.kernel);
        std::vector<float> y(size_t(m * n));
        matmul(ctx, c.x.data(), m, c.w, y.data(), c.bias.data());
        for (int64_t i = 0; i < m; ++i)
          for (int64_t r = 0; r < n; ++r)
            ASSERT_NEAR(y[size_t(i * n + r)], ref[size_t(i * n + r)], 60 * 1.2e-7 * term_mag(c, a, i, r)) << i << "," << r;
      }
  }
}

}  // namespace
}  // namespace tern
