// W8A16 decode on int16 activations (quant_gemv_w8a16.cpp): every ISA variant the host can run against
// the scalar reference on the same int16 x (exact integer block sums, so only the f32 order of the
// per-block terms differs), the reference against the exact product within the proven bound of x's
// int16 rounding, the front door's choice, and the f32-x variant (quant_gemv_w8a16_avx2, kept for m > 8
// and as the scalar host's numerics).
#include <gtest/gtest.h>

#include <algorithm>
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
  std::vector<int8_t> q;
  std::vector<float> scales, x, bias;
  WeightMatrix w;
};

// Codes over the whole int8 range (-128 included, which the packer never writes but the kernels take).
Case make_case(int64_t m, int64_t n, int64_t k, uint32_t seed) {
  Case c{m, n, k, {}, {}, {}, {}, {}};
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> code(-128, 127);
  std::normal_distribution<float> nd(0.f, 1.f);
  c.q.resize(size_t(n * k));
  for (auto& v : c.q) v = int8_t(code(rng));
  c.scales.resize(size_t(n));
  for (auto& v : c.scales) v = 0.001f + 0.01f * std::fabs(nd(rng));
  c.x.resize(size_t(m * k));
  for (auto& v : c.x) v = nd(rng);
  if (k > 3) c.x[3] = 40.0f;  // an outlier, as real activations have
  c.bias.resize(size_t(n));
  for (auto& v : c.bias) v = nd(rng);
  c.w.rows = n, c.w.cols = k, c.w.format = WeightFormat::Int8Channel, c.w.data = c.q.data();
  c.w.scales = c.scales.data();
  c.w.quant_bytes = size_t(n * k) + size_t(n) * sizeof(float);
  return c;
}

// Bound on the f32 reordering of a row's per-block terms: (terms + lanes) roundings of the largest sum.
double reorder_tol(const Case& c, const cpu::QuantActs& a, int64_t i, int64_t r) {
  const int64_t nb = (c.k + cpu::kX16Block - 1) / cpu::kX16Block;
  double mag = 0;
  for (int64_t j = 0; j < c.k; ++j)
    mag += std::fabs(double(a.xd16[i * nb + j / cpu::kX16Block]) * a.x16[i * c.k + j] * c.q[size_t(r * c.k + j)]);
  return double(nb + 40) * 1.2e-7 * mag * c.scales[size_t(r)] + 1e-6 * std::fabs(c.bias[size_t(r)]);
}

using Kernel = void (*)(const cpu::QuantActs&, const WeightMatrix&, float*, const float*, int64_t, int64_t, int64_t,
                        int64_t);

struct Variant {
  const char* name;
  bool available;
  Kernel fn;
};

std::vector<Variant> variants() {
  const CpuFeatures host = CpuFeatures::detect();
  return {{"avx2", host.avx2, cpu::quant_gemv_w8a16_x16_avx2},
          {"avxvnni", host.avx_vnni, cpu::quant_gemv_w8a16_x16_avxvnni},
          {"avx512vnni", host.avx512_vnni, cpu::quant_gemv_w8a16_x16_avx512vnni}};
}

void check_variants(int64_t m, int64_t n, int64_t k, uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << "m " << m << " n " << n << " k " << k);
  const Case c = make_case(m, n, k, seed);
  std::vector<char> scratch(cpu::quant_acts_bytes(c.w, m) + 64);
  const cpu::QuantActs a = cpu::quant_acts_prepare(c.w, c.x.data(), m, scratch.data());
  ASSERT_NE(a.x16, nullptr);
  std::vector<float> ref(size_t(m * n));
  cpu::quant_w8a16_x16_scalar(a, c.w, ref.data(), c.bias.data(), 0, m, 0, n);
  for (const Variant& v : variants()) {
    if (!v.available) continue;
    // Split the rows in two ranges, as two threads would.
    std::vector<float> y(size_t(m * n), -7.0f);
    v.fn(a, c.w, y.data(), c.bias.data(), 0, m, 0, n / 2);
    v.fn(a, c.w, y.data(), c.bias.data(), 0, m, n / 2, n);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t r = 0; r < n; ++r)
        ASSERT_NEAR(y[size_t(i * n + r)], ref[size_t(i * n + r)], reorder_tol(c, a, i, r))
            << v.name << " at " << i << "," << r;
  }
}

TEST(QuantW8A16X16, EveryVariantMatchesTheScalarReference) {
  for (int64_t k : {16, 40, 96, 255, 256, 257, 600, 2048})
    for (int64_t m : {1, 2, 3, 4, 5, 8}) check_variants(m, 37, k, uint32_t(k * 11 + m));
  // Row counts that leave 1..3 rows after the 4- and 2-stream passes.
  for (int64_t n : {1, 2, 3, 5, 6, 7, 135}) check_variants(1, n, 512, uint32_t(n));
}

// The reference against the exact product of the int8 weights and f32 x: x's int16 rounding moves each
// term by at most xd16 / 2, so |y - exact| <= scale · Σ |q| · xd16 / 2 (plus f32 summation).
TEST(QuantW8A16X16, ReferenceWithinTheInt16RoundingBound) {
  for (int64_t k : {40, 256, 1000, 4096}) {
    const int64_t m = 2, n = 9;
    const Case c = make_case(m, n, k, uint32_t(k));
    std::vector<char> scratch(cpu::quant_acts_bytes(c.w, m) + 64);
    const cpu::QuantActs a = cpu::quant_acts_prepare(c.w, c.x.data(), m, scratch.data());
    std::vector<float> y(size_t(m * n));
    cpu::quant_w8a16_x16_scalar(a, c.w, y.data(), c.bias.data(), 0, m, 0, n);
    const int64_t nb = (k + cpu::kX16Block - 1) / cpu::kX16Block;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t r = 0; r < n; ++r) {
        double exact = c.bias[size_t(r)], bound = 0, mag = std::fabs(c.bias[size_t(r)]);
        for (int64_t j = 0; j < k; ++j) {
          const double q = c.q[size_t(r * k + j)];
          exact += double(c.scales[size_t(r)]) * q * c.x[size_t(i * k + j)];
          bound += double(c.scales[size_t(r)]) * std::fabs(q) * a.xd16[i * nb + j / cpu::kX16Block] / 2;
          mag += std::fabs(double(c.scales[size_t(r)]) * q * c.x[size_t(i * k + j)]);
        }
        EXPECT_NEAR(y[size_t(i * n + r)], exact, bound + 1e-6 * mag) << k << " " << i << "," << r;
        // The bound itself is small: about 1/65534 of the block's max per term.
        EXPECT_LT(bound, 1e-3 * mag + 1e-9);
      }
  }
}

// Through the front door at every level the host has (and 2 threads): the int16-x kernel is chosen for
// m <= kX16MaxRows, the scalar f32 kernel without AVX2; they and the f32-x AVX2 GEMV (called directly)
// agree with the exact product within the int16 rounding bound.
TEST(QuantW8A16X16, FrontDoorChoosesTheVariantAndFallbacksAgree) {
  const CpuFeatures host = CpuFeatures::detect();
  const int64_t m = 3, n = 70, k = 520;
  const Case c = make_case(m, n, k, 99);
  // The exact product, and the bound of x's int16 rounding (each term off by <= amax_block / 32767 / 2).
  std::vector<double> exact(size_t(m * n)), tol(size_t(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t r = 0; r < n; ++r) {
      double s = 0, bound = 0, mag = 0;
      for (int64_t j = 0; j < k; ++j) {
        const int64_t j0 = j / cpu::kX16Block * cpu::kX16Block;
        double amax = 0;
        for (int64_t t = j0; t < std::min(k, j0 + cpu::kX16Block); ++t)
          amax = std::max(amax, std::fabs(double(c.x[size_t(i * k + t)])));
        const double q = c.q[size_t(r * k + j)];
        s += q * c.x[size_t(i * k + j)];
        bound += std::fabs(q) * amax / 32767 / 2;
        mag += std::fabs(q * c.x[size_t(i * k + j)]);
      }
      exact[size_t(i * n + r)] = s * c.scales[size_t(r)] + c.bias[size_t(r)];
      tol[size_t(i * n + r)] = (bound + 1e-5 * mag) * c.scales[size_t(r)] + 1e-5;
    }
  struct Cfg {
    std::string level;
    const char* kernel;
  };
  std::vector<Cfg> cfgs = {{"scalar", "w8a16_scalar"}};
  if (host.avx2) {
    CpuFeatures f = host.capped("avx2");
    f.avx_vnni = false;
    ThreadPool pool(1);
    ExecContext ctx(pool, f);
    EXPECT_STREQ(matmul_kernel_name(ctx, m, c.w), "w8a16_x16_avx2");
    std::vector<float> y(size_t(m * n));
    matmul(ctx, c.x.data(), m, c.w, y.data(), c.bias.data());
    for (size_t t = 0; t < y.size(); ++t) ASSERT_NEAR(y[t], exact[t], tol[t]) << "avx2 " << t;
    cpu::QuantActs a;  // the f32-x GEMV: x as given
    a.x = c.x.data(), a.m = m;
    cpu::quant_gemv_w8a16_avx2(a, c.w, y.data(), c.bias.data(), 0, m, 0, n);
    for (size_t t = 0; t < y.size(); ++t) ASSERT_NEAR(y[t], exact[t], 1e-5 * std::fabs(exact[t]) + 1e-4) << "f32x " << t;
  }
  if (host.avx_vnni) cfgs.push_back({"avx2", "w8a16_x16_avxvnni"});
  if (host.avx512_vnni) cfgs.push_back({"avx512", "w8a16_x16_avx512vnni"});
  for (const Cfg& cfg : cfgs)
    for (int threads : {1, 2}) {
      SCOPED_TRACE(cfg.level + " threads " + std::to_string(threads));
      CpuFeatures f = host.capped(cfg.level);
      ThreadPool pool(threads);
      ExecContext ctx(pool, f);
      EXPECT_STREQ(matmul_kernel_name(ctx, m, c.w), cfg.kernel);
      std::vector<float> y(size_t(m * n));
      matmul(ctx, c.x.data(), m, c.w, y.data(), c.bias.data());
      for (size_t t = 0; t < y.size(); ++t) ASSERT_NEAR(y[t], exact[t], tol[t]) << t;
    }
}

}  // namespace
}  // namespace tern
