// Quantized matmul kernels (Int8Channel W8A16 / W8A8, Int4Group sym / asym, FP8) against the scalar
// reference on random data and awkward shapes, on every ISA path the host can run (the others are
// skipped with a message), and the scalar reference against a dense matmul of the dequantized weights.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "formats/quant/pack_weights.h"
#include "formats/quant/quantized_linear.h"
#include "ops/matmul.h"
#include "ops/matmul_quant.h"

namespace tern {
namespace {

struct Level {
  std::string name;
  std::string missing;  // why the host cannot run it ("" = it can)
  CpuFeatures cpu;
};

Level level(const std::string& name) {
  const CpuFeatures host = CpuFeatures::detect();
  Level l{name, "", host};
  if (name == "scalar" || name == "avx2") {
    l.cpu = host.capped(name);
    if (name == "avx2" && !host.avx2) l.missing = "avx2";
  } else if (name == "avxvnni") {
    l.cpu = host.capped("avx512");
    l.cpu.avx512 = l.cpu.avx512_vnni = false;
    if (!host.avx_vnni) l.missing = "avx_vnni";
  } else if (name == "avx512vnni") {
    l.cpu = host.capped("avx512");
    if (!host.avx512_vnni) l.missing = "avx512_vnni";
  } else if (name == "amx") {
    if (!host.amx_int8) l.missing = "amx_int8";
  }
  return l;
}

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

enum class Fmt { W8A16, W8A8, Int4Sym, Int4Asym, Fp8 };

QuantizedLinear make(Fmt f, const std::vector<float>& w, int64_t n, int64_t k, int group) {
  switch (f) {
    case Fmt::W8A16:
    case Fmt::W8A8: return quantize_rtn(w.data(), n, k, 8, 0, true).value();
    case Fmt::Int4Sym: return quantize_rtn(w.data(), n, k, 4, group, true).value();
    case Fmt::Int4Asym: return quantize_rtn(w.data(), n, k, 4, group, false).value();
    case Fmt::Fp8: return quantize_fp8(w.data(), n, k);
  }
  return {};
}

const char* kernel_prefix(Fmt f) {
  switch (f) {
    case Fmt::W8A16: return "w8a16_";
    case Fmt::W8A8: return "w8a8_";
    case Fmt::Fp8: return "fp8_";
    default: return "int4_";
  }
}

// y = x · wᵀ + bias in double over dequantized weights.
std::vector<float> dense_ref(const std::vector<float>& x, int64_t m, const std::vector<float>& w, int64_t n, int64_t k,
                             const std::vector<float>& bias) {
  std::vector<float> y(size_t(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t r = 0; r < n; ++r) {
      double s = bias[size_t(r)];
      for (int64_t j = 0; j < k; ++j) s += double(x[size_t(i * k + j)]) * w[size_t(r * k + j)];
      y[size_t(i * n + r)] = float(s);
    }
  return y;
}

void run_case(Fmt f, int64_t m, int64_t n, int64_t k, int group, uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << "fmt " << int(f) << " m " << m << " n " << n << " k " << k << " g " << group);
  const auto w = randn(size_t(n * k), seed, 0.05f);
  auto x = randn(size_t(m * k), seed + 1);
  x[0] = 8.0f;  // an outlier, as real activations have
  const auto bias = randn(size_t(n), seed + 2);
  const QuantizedLinear ql = make(f, w, n, k, group);
  WeightArena arena;
  auto packed = pack_for_kernels(ql, f == Fmt::W8A8, arena, "layer");
  ASSERT_TRUE(packed.is_ok()) << packed.status().message();
  const WeightMatrix wm = *packed;

  ThreadPool pool1(1);
  ExecContext ref_ctx(pool1, CpuFeatures::detect().capped("scalar"));
  std::vector<float> y_ref(size_t(m * n));
  matmul(ref_ctx, x.data(), m, wm, y_ref.data(), bias.data());

  // The reference itself against a dense product of the dequantized weights; integer-activation
  // formats also carry int8 rounding of x (relative ~1/254 of the largest |x| in a row or group).
  const auto yd = dense_ref(x, m, dequantize(ql), n, k, bias);
  const bool int_x = f != Fmt::W8A16 && f != Fmt::Fp8;
  for (int64_t i = 0; i < m; ++i) {
    // int8 rounding of x: uniform error of std d / sqrt(12), d = max|x| / 127, against weights of std 0.05.
    double amax = 0;
    for (int64_t j = 0; j < k; ++j) amax = std::max(amax, std::fabs(double(x[size_t(i * k + j)])));
    const double tol = int_x ? 6.0 * std::sqrt(double(k)) * 0.05 * (amax / 127) / std::sqrt(12.0) + 1e-4
                             : 1e-4 * std::sqrt(double(k)) + 1e-4;
    for (int64_t r = 0; r < n; ++r)
      ASSERT_NEAR(y_ref[size_t(i * n + r)], yd[size_t(i * n + r)], tol) << "at " << i << "," << r;
  }

  for (const char* name : {"avx2", "avxvnni", "avx512vnni", "amx"}) {
    const Level l = level(name);
    if (!l.missing.empty()) continue;  // reported by HostPaths below
    for (int threads : {1, 2}) {
      ThreadPool pool(threads);
      ExecContext ctx(pool, l.cpu);
      const std::string kname = matmul_kernel_name(ctx, m, wm);
      EXPECT_EQ(kname.rfind(kernel_prefix(f), 0), 0u) << kname;
      std::vector<float> y(size_t(m * n), -7.0f);
      matmul(ctx, x.data(), m, wm, y.data(), bias.data());
      if (kname.find("panel_gemm") != std::string::npos) {
        // Prefill through the dense GEMM on widened weight panels: x stays f32, so it matches the
        // dense product of the dequantized weights, not the int8-x reference.
        for (size_t i = 0; i < y.size(); ++i)
          ASSERT_NEAR(y[i], yd[i], 1e-4f * std::sqrt(float(k)) * (1.0f + std::fabs(yd[i]))) << name << " " << kname << " at " << i;
        continue;
      }
      if (kname.find("x16") != std::string::npos || kname.find("w8a16_gemm") != std::string::npos) {
        // W8A16 on int16 x, decode GEMV or GEMM (test_quant_w8a16_x16.cpp / test_quant_gemm.cpp check them
        // exactly): x rounded to 1/32767 of a
        // block's max, uniform error of std d / sqrt(12) per term against weights of std 0.05.
        for (int64_t i = 0; i < m; ++i) {
          double amax = 0;
          for (int64_t j = 0; j < k; ++j) amax = std::max(amax, std::fabs(double(x[size_t(i * k + j)])));
          const double tol = 6.0 * std::sqrt(double(k)) * 0.05 * (amax / 32767) / std::sqrt(12.0) + 1e-4;
          for (int64_t r = 0; r < n; ++r)
            ASSERT_NEAR(y[size_t(i * n + r)], y_ref[size_t(i * n + r)], tol + 1e-4 * std::fabs(y_ref[size_t(i * n + r)]))
                << name << " " << kname << " at " << i << "," << r;
        }
        continue;
      }
      for (size_t i = 0; i < y.size(); ++i)
        ASSERT_NEAR(y[i], y_ref[i], 1e-4f * (1.0f + std::fabs(y_ref[i]))) << name << " " << kname << " at " << i;
    }
  }
}

TEST(QuantKernels, HostPaths) {
  std::string skipped;
  for (const char* name : {"avx2", "avxvnni", "avx512vnni", "amx"})
    if (!level(name).missing.empty()) skipped += std::string(" ") + name + " (no " + level(name).missing + ")";
  if (!skipped.empty()) GTEST_SKIP() << "kernel paths this host cannot run, not exercised:" << skipped;
}

TEST(QuantKernels, Int8W8A16MatchesReference) {
  for (int64_t k : {32, 40, 96, 257})
    for (int64_t m : {1, 3, 8, 21}) run_case(Fmt::W8A16, m, 37, k, 0, uint32_t(k * 7 + m));
}

TEST(QuantKernels, Int8W8A8MatchesReference) {
  for (int64_t k : {32, 40, 96, 257})
    for (int64_t m : {1, 3, 8, 21, 40}) run_case(Fmt::W8A8, m, 37, k, 0, uint32_t(k * 5 + m));
}

TEST(QuantKernels, Int4SymmetricMatchesReference) {
  for (int group : {32, 64, 128})
    for (int64_t m : {1, 2, 8, 19}) run_case(Fmt::Int4Sym, m, 35, 256, group, uint32_t(group + m));
}

TEST(QuantKernels, Int4AsymmetricMatchesReference) {
  for (int group : {32, 64, 128})
    for (int64_t m : {1, 5, 8, 33}) run_case(Fmt::Int4Asym, m, 70, 384, group, uint32_t(group * 3 + m));
}

// Groups longer than 256 columns: the AVX2 GEMV widens its int16 partial sums every 256 columns.
TEST(QuantKernels, Int4LongGroupsMatchReference) {
  for (int64_t m : {1, 4, 7}) {
    run_case(Fmt::Int4Sym, m, 41, 512, 512, uint32_t(500 + m));
    run_case(Fmt::Int4Asym, m, 23, 640, 320, uint32_t(600 + m));
  }
}

// Row counts that leave a remainder after the 4-stream blocks, per thread, for every m of the GEMV.
TEST(QuantKernels, GemvRowRemaindersForEveryM) {
  for (int64_t m = 1; m <= 8; ++m) {
    run_case(Fmt::W8A16, m, 135, 96, 0, uint32_t(700 + m));
    run_case(Fmt::W8A8, m, 135, 96, 0, uint32_t(800 + m));
    run_case(Fmt::Int4Sym, m, 135, 128, 64, uint32_t(900 + m));
  }
}

// The m = 1 int4 decode kernel (x in pair order, 4 row streams reduced together per group): row
// counts that leave 1..3 remainder rows per thread, several groups, group 128 (unrolled) and others.
TEST(QuantKernels, Int4DecodeM1MatchesReference) {
  for (int64_t n : {4, 67, 130})
    for (int group : {64, 128, 192}) {
      run_case(Fmt::Int4Asym, 1, n, 1152, group, uint32_t(1000 + n + group));
      run_case(Fmt::Int4Sym, 1, n, 768, group, uint32_t(2000 + n + group));
    }
}

// The int4 small-batch kernel (m = 2..8, group 128): pairs of (x row, weight row) reduced four at a
// time, 2 row streams up to m = 4, remainder rows per thread.
TEST(QuantKernels, Int4DecodeBatchMatchesReference) {
  for (int64_t m = 2; m <= 8; ++m) {
    run_case(Fmt::Int4Asym, m, 37, 512, 128, uint32_t(3000 + m));
    run_case(Fmt::Int4Sym, m, 70, 384, 128, uint32_t(3100 + m));
  }
}

TEST(QuantKernels, Fp8MatchesReference) {
  for (int64_t k : {16, 40, 100})
    for (int64_t m : {1, 4, 8, 12}) run_case(Fmt::Fp8, m, 33, k, 0, uint32_t(k + m));
}

TEST(QuantKernels, LargeEnoughToSplitOverThreads) {
  run_case(Fmt::Int4Sym, 1, 256, 1024, 128, 11);
  run_case(Fmt::W8A8, 64, 96, 512, 0, 12);
}

TEST(QuantKernels, PackRejectsShapesTheKernelsCannotRun) {
  WeightArena arena;
  const auto w = randn(2 * 96, 3);
  // k = 96 is not a multiple of group 64: rejected by the spec check, before any packing.
  EXPECT_FALSE(quantize_rtn(w.data(), 2, 96, 4, 64, true).is_ok());
  // int4 per channel with k = 40: groups must be multiples of 32.
  const auto w40 = randn(2 * 40, 4);
  auto ql = quantize_rtn(w40.data(), 2, 40, 4, 0, true).value();
  auto r = pack_for_kernels(ql, false, arena, "model.layers.0.mlp.up_proj");
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("model.layers.0.mlp.up_proj"), std::string::npos);
  // Grouped int8 and asymmetric int8.
  auto g8 = quantize_rtn(w.data(), 2, 96, 8, 32, true).value();
  EXPECT_FALSE(pack_for_kernels(g8, false, arena, "x").is_ok());
  auto a8 = quantize_rtn(w.data(), 2, 96, 8, 0, false).value();
  EXPECT_FALSE(pack_for_kernels(a8, false, arena, "x").is_ok());
  // 3-bit, unfolded smoothing, act-order.
  auto b3 = quantize_rtn(w.data(), 2, 96, 3, 32, true).value();
  EXPECT_FALSE(pack_for_kernels(b3, false, arena, "x").is_ok());
  auto sm = quantize_rtn(w.data(), 2, 96, 4, 32, true).value();
  sm.smooth.assign(96, 2.0f);
  EXPECT_FALSE(pack_for_kernels(sm, false, arena, "x").is_ok());
  // Act-order whose groups are not all `group` columns wide.
  auto ao = quantize_rtn(w.data(), 2, 96, 4, 32, true).value();
  ao.g_idx.assign(96, 0);
  for (int c = 0; c < 96; ++c) ao.g_idx[size_t(c)] = c < 40 ? 0 : c < 64 ? 1 : 2;
  EXPECT_FALSE(pack_for_kernels(ao, false, arena, "x").is_ok());
}

// GPTQ act-order (desc_act): columns belong to groups through g_idx, not by position. The packer stores
// them in group order and the matmul gathers x the same way: the result is the dequantized product.
TEST(QuantKernels, ActOrderInt4MatchesTheDequantizedWeights) {
  const int64_t n = 24, k = 256, group = 64, m = 3;
  const auto w = randn(size_t(n * k), 11, 0.05f);
  const auto x = randn(size_t(m * k), 12);
  const std::vector<float> bias(size_t(n), 0.f);
  for (bool symmetric : {true, false}) {
    QuantizedLinear ql = quantize_rtn(w.data(), n, k, 4, group, symmetric).value();
    ql.g_idx.resize(size_t(k));
    for (int64_t c = 0; c < k; ++c) ql.g_idx[size_t(c)] = int32_t((c * 5) % (k / group));  // interleaved groups
    WeightArena arena;
    auto packed = pack_for_kernels(ql, false, arena, "layer");
    ASSERT_TRUE(packed.is_ok()) << packed.status().message();
    ASSERT_NE(packed->col_perm, nullptr);
    const auto yd = dense_ref(x, m, dequantize(ql), n, k, bias);
    for (const char* name : {"scalar", "avx2"}) {
      const Level l = level(name);
      if (!l.missing.empty()) GTEST_SKIP() << "host lacks " << l.missing;
      ThreadPool pool(2);
      ExecContext ctx(pool, l.cpu);
      std::vector<float> y(size_t(m * n));
      matmul(ctx, x.data(), m, *packed, y.data(), nullptr);
      for (int64_t i = 0; i < m; ++i) {
        double amax = 0;
        for (int64_t j = 0; j < k; ++j) amax = std::max(amax, std::fabs(double(x[size_t(i * k + j)])));
        const double tol = 6.0 * std::sqrt(double(k)) * 0.05 * (amax / 127) / std::sqrt(12.0) + 1e-4;
        for (int64_t r = 0; r < n; ++r)
          ASSERT_NEAR(y[size_t(i * n + r)], yd[size_t(i * n + r)], tol) << name << " sym " << symmetric << " at " << i << "," << r;
      }
    }
  }
}

}  // namespace
}  // namespace tern
