// Layers packed at load for the bf16-dot GEMMs (model/bf16_weights.h): F16 -> bf16 rounding
// (kernels/cpu/f16_to_bf16.h), the Bf16Panels layout and its kernels (kernels/cpu/matmul_bf16_panels.h).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/f16_to_bf16.h"
#include "kernels/cpu/matmul_bf16_panels.h"
#include "model/decoder.h"
#include "model/model.h"
#include "model/synth.h"
#include "ops/matmul.h"
#include "test_support.h"

namespace tern {
namespace {

// Every F16 bit pattern (NaNs, infinities, subnormals, both zeros) at odd lengths and offsets: each
// variant gives f32_to_bf16(f16_to_f32(h)) bit for bit.
TEST(F16ToBf16, EveryInputRoundsAsTheScalarReferenceOnEveryIsa) {
  std::vector<uint16_t> src(65536 + 7);
  for (size_t i = 0; i < src.size(); ++i) src[i] = uint16_t(i * 40503u);  // odd multiplier: a permutation mod 2^16
  std::vector<uint16_t> want(src.size());
  for (size_t i = 0; i < src.size(); ++i) want[i] = f32_to_bf16(f16_to_f32(src[i]));
  const CpuFeatures host = CpuFeatures::detect();
  for (const char* level : {"scalar", "avx2"}) {
    const CpuFeatures cpu = host.capped(level);
    if (std::string(level) == "avx2" && !cpu.avx2) GTEST_SKIP() << "host lacks avx2";
    for (size_t off : {size_t(0), size_t(3)}) {
      std::vector<uint16_t> got(src.size() - off, 0xdead);
      cpu::f16_to_bf16(cpu, src.data() + off, got.data(), got.size());
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_EQ(got[i], want[i + off]) << level << " input 0x" << std::hex << src[i + off];
    }
  }
  std::vector<uint16_t> got(src.size());
  cpu::f16_to_bf16_scalar(src.data(), got.data(), src.size());
  EXPECT_EQ(got, want);
}

// Element (r, j) of a Bf16Panels matrix, read the way its layout comment says.
uint16_t panel_element(const WeightMatrix& w, int64_t r, int64_t j) {
  const auto* d = static_cast<const uint32_t*>(w.data);
  const uint32_t word = d[(r / 32) * cpu::bf16_panel_words(w.cols) + (j / 2) * 32 + r % 32];
  return uint16_t(j % 2 ? word >> 16 : word & 0xffffu);
}

struct AlignedWords {
  std::unique_ptr<uint32_t, void (*)(void*)> p{nullptr, std::free};
  explicit AlignedWords(size_t bytes) : p(static_cast<uint32_t*>(std::aligned_alloc(64, (bytes + 63) & ~size_t(63))), std::free) {}
};

// Both packers give the layout's bits at odd shapes (rows not a multiple of 32, odd cols), and every
// panel kernel this host runs agrees with the double reference of the dense matrix.
TEST(Bf16Panels, PackersAgreeAndEveryKernelMatchesTheDenseReference) {
  const CpuFeatures host = CpuFeatures::detect();
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (int64_t k : {1, 7, 31, 33, 2049, 4100}) {
    for (int64_t n : {1, 31, 33, 65, 130}) {
      std::vector<uint16_t> dense(size_t(n * k));
      for (auto& h : dense) h = f32_to_bf16(u(rng));
      const WeightMatrix w{dense.data(), DType::BF16, n, k};
      const size_t bytes = cpu::bf16_panels_bytes(n, k);
      AlignedWords a(bytes), b(bytes);
      std::memset(a.p.get(), 0xab, bytes), std::memset(b.p.get(), 0xcd, bytes);
      cpu::pack_bf16_panels_scalar(w, 0, cpu::bf16_panel_count(n), a.p.get());
      WeightMatrix pw = w;
      pw.data = a.p.get(), pw.format = WeightFormat::Bf16Panels, pw.quant_bytes = bytes;
      for (int64_t r = 0; r < cpu::bf16_panel_count(n) * 32; ++r)
        for (int64_t j = 0; j < (k + 1) / 2 * 2; ++j)
          ASSERT_EQ(panel_element(pw, r, j), r < n && j < k ? dense[size_t(r * k + j)] : 0) << n << "x" << k;
      if (host.avx512_bf16) {
        cpu::pack_bf16_panels_avx512bf16(w, 0, cpu::bf16_panel_count(n), b.p.get());
        ASSERT_EQ(std::memcmp(a.p.get(), b.p.get(), bytes), 0) << n << "x" << k;
      }
      if (k > 2049 && n > 65) continue;  // the largest shape: packing only
      for (const char* level : {"scalar", "avx2", "avx512", "avx512bf16"}) {
        const CpuFeatures cpu = host.capped(level);
        if (std::string(level) != "scalar" && !cpu.avx2) continue;
        if (std::string(level) == "avx512" && !cpu.avx512) continue;
        if (std::string(level) == "avx512bf16" && !cpu.avx512_bf16) continue;
        const bool dot = std::string(level) == "avx512bf16";
        for (int64_t m : {1, 2, 3, 4, 5, 8, 9, 16, 17}) {
          ThreadPool pool(1 + int(m % 2));
          ExecContext ctx(pool, cpu, dot ? ActivationPrecision::kBf16 : ActivationPrecision::kF32);
          std::vector<float> x(size_t(m * k)), bias(static_cast<size_t>(n)), y(size_t(m * n), std::nanf(""));
          for (auto& v : x) v = u(rng);
          for (auto& v : bias) v = u(rng);
          const bool with_bias = (m + n) % 2 == 1;
          matmul(ctx, x.data(), m, pw, y.data(), with_bias ? bias.data() : nullptr);
          // x rounded to bf16 by the dot GEMM: ~2^-8 relative per product.
          const double rel = dot && m > 8 ? 1e-2 : 1e-5;
          for (int64_t i = 0; i < m; ++i) {
            for (int64_t r = 0; r < n; ++r) {
              double ref = with_bias ? bias[size_t(r)] : 0.0, mag = with_bias ? std::fabs(bias[size_t(r)]) : 0.0;
              for (int64_t j = 0; j < k; ++j) {
                const double p = double(x[size_t(i * k + j)]) * double(bf16_to_f32(dense[size_t(r * k + j)]));
                ref += p, mag += std::fabs(p);
              }
              ASSERT_LE(std::fabs(double(y[size_t(i * n + r)]) - ref), rel * mag + 1e-6)
                  << matmul_kernel_name(ctx, m, pw) << " m=" << m << " n=" << n << " k=" << k << " [" << i << "," << r << "]";
            }
          }
        }
      }
    }
  }
}

TEST(Bf16Panels, KernelNames) {
  ThreadPool pool(1);
  CpuFeatures f;
  f.avx2 = f.avx512 = f.avx512_bf16 = true;
  WeightMatrix w{nullptr, DType::BF16, 64, 64};
  w.format = WeightFormat::Bf16Panels;
  ExecContext dot(pool, f, ActivationPrecision::kBf16), f32(pool, f), scalar(pool, f.capped("scalar"));
  EXPECT_STREQ(matmul_kernel_name(dot, 1, w), "gemv_panels_avx512_bf16");
  EXPECT_STREQ(matmul_kernel_name(dot, 512, w), "gemm_panels_avx512bf16_bf16");
  EXPECT_STREQ(matmul_kernel_name(f32, 512, w), "gemm_panels_scalar_bf16");
  EXPECT_STREQ(matmul_kernel_name(scalar, 1, w), "gemv_panels_scalar_bf16");
}

// A small llama in F16, and the same in BF16: loaded with bf16_dot_layers, their layer matrices are
// Bf16Panels holding exactly the (rounded) stored values, the embedding / LM head stay as stored,
// and the logits under bf16 activations (prefill: the bf16-dot GEMM; then a decode step: the panel
// GEMV) stay close to those of the model as stored.
TEST(Bf16Weights, LayersArePackedAtLoadAndTheModelStillAgrees) {
  for (DType dt : {DType::F16, DType::BF16}) {
    test::TempDir dir;
    SynthShape shape{"tiny", "LlamaForCausalLM", "llama", 96, 200, 300, 256, 2, 4, 2, 24};
    ThreadPool pool(2);
    ExecContext ctx(pool, CpuFeatures::detect(), ActivationPrecision::kBf16);
    SynthOptions so;
    so.out_dir = dir.file("m");
    so.dtype = dt;
    so.init_std = 0.05;
    ASSERT_TRUE(synthesize(ctx, shape, so).is_ok());
    auto stored = Model::load(so.out_dir);
    ASSERT_TRUE(stored.is_ok()) << stored.status().message();
    ModelLoadOptions lo;
    lo.bf16_dot_layers = true;
    auto packed = Model::load(so.out_dir, lo);
    ASSERT_TRUE(packed.is_ok()) << packed.status().message();
    const TransformerWeights &a = (*stored)->weights(), &b = (*packed)->weights();
    ASSERT_EQ(a.layers.size(), b.layers.size());
    int64_t padding = 0;  // decode reads the panels' zero rows too (rows rounded up to 32)
    for (size_t l = 0; l < a.layers.size(); ++l) {
      const auto& la = a.layers[l];
      const auto& lb = b.layers[l];
      const std::pair<const WeightMatrix*, const WeightMatrix*> pairs[] = {
          {&la.attn.q, &lb.attn.q},     {&la.attn.k, &lb.attn.k}, {&la.attn.v, &lb.attn.v},    {&la.attn.o, &lb.attn.o},
          {&la.mlp.gate, &lb.mlp.gate}, {&la.mlp.up, &lb.mlp.up}, {&la.mlp.down, &lb.mlp.down}};
      for (const auto& [wa, wb] : pairs) {
        ASSERT_EQ(wa->dtype, dt);
        ASSERT_EQ(wb->format, WeightFormat::Bf16Panels);
        ASSERT_EQ(wb->dtype, DType::BF16);
        ASSERT_EQ(wa->rows, wb->rows);
        ASSERT_EQ(wa->cols, wb->cols);
        padding += int64_t(cpu::bf16_panels_bytes(wa->rows, wa->cols)) - wa->rows * wa->cols * 2;
        const auto* ha = static_cast<const uint16_t*>(wa->data);
        for (int64_t r = 0; r < wa->rows; ++r)
          for (int64_t j = 0; j < wa->cols; ++j) {
            const uint16_t h = ha[r * wa->cols + j];
            ASSERT_EQ(panel_element(*wb, r, j), dt == DType::F16 ? f32_to_bf16(f16_to_f32(h)) : h) << l << " " << r << " " << j;
          }
      }
    }
    EXPECT_EQ(b.embed.dtype, dt);
    EXPECT_TRUE(b.lm_head.dense());
    EXPECT_EQ((*packed)->weight_bytes_per_token(), (*stored)->weight_bytes_per_token() + padding);

    const int64_t n = 20, vocab = shape.vocab;
    std::vector<int32_t> ids(size_t(n) + 1);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 37 + 5) % size_t(vocab));
    std::vector<float> logits[2];
    for (int which = 0; which < 2; ++which) {
      const Model& m = which == 0 ? **stored : **packed;
      Decoder dec(m);
      SequenceKvCache kv(m.config(), n + 1);
      std::vector<float> hidden(size_t(shape.hidden));
      logits[which].resize(size_t(2 * vocab));
      ASSERT_TRUE(dec.forward(ctx, kv, ids.data(), n, 1, hidden.data()).is_ok());
      ASSERT_TRUE(dec.logits(ctx, hidden.data(), 1, logits[which].data()).is_ok());
      ASSERT_TRUE(dec.forward(ctx, kv, ids.data() + n, 1, 1, hidden.data()).is_ok());
      ASSERT_TRUE(dec.logits(ctx, hidden.data(), 1, logits[which].data() + vocab).is_ok());
    }
    double max_diff = 0, max_abs = 0;
    for (size_t i = 0; i < logits[0].size(); ++i) {
      ASSERT_TRUE(std::isfinite(logits[1][i]));
      max_diff = std::max(max_diff, double(std::fabs(logits[0][i] - logits[1][i])));
      max_abs = std::max(max_abs, double(std::fabs(logits[0][i])));
    }
    // BF16: the same weights, only the summation order differs; F16: the weights' bf16 rounding too.
    EXPECT_LE(max_diff, (dt == DType::BF16 ? 1e-4 : 0.02) * max_abs + 1e-4) << dtype_name(dt) << " max |logit| " << max_abs;
  }
}

}  // namespace
}  // namespace tern
