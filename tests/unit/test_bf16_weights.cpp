// F16 -> bf16 weights at load for the bf16-dot GEMMs (model/bf16_weights.h, kernels/cpu/f16_to_bf16.h).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/f16_to_bf16.h"
#include "model/decoder.h"
#include "model/model.h"
#include "model/synth.h"
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

// A small llama in F16: loaded with f16_layers_as_bf16, its layer matrices are bf16 with exactly the
// rounded values, the embedding / LM head stay F16, and the logits under bf16 activations stay close
// to those of the F16 model.
TEST(Bf16Weights, F16LayersAreRoundedAtLoadAndTheModelStillAgrees) {
  test::TempDir dir;
  SynthShape shape{"f16tiny", "LlamaForCausalLM", "llama", 96, 200, 300, 256, 2, 4, 2, 24};
  ThreadPool pool(2);
  ExecContext ctx(pool, CpuFeatures::detect(), ActivationPrecision::kBf16);
  SynthOptions so;
  so.out_dir = dir.file("m");
  so.dtype = DType::F16;
  so.init_std = 0.05;
  ASSERT_TRUE(synthesize(ctx, shape, so).is_ok());
  auto stored = Model::load(so.out_dir);
  ASSERT_TRUE(stored.is_ok()) << stored.status().message();
  ModelLoadOptions lo;
  lo.f16_layers_as_bf16 = true;
  auto rounded = Model::load(so.out_dir, lo);
  ASSERT_TRUE(rounded.is_ok()) << rounded.status().message();
  const TransformerWeights &a = (*stored)->weights(), &b = (*rounded)->weights();
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t l = 0; l < a.layers.size(); ++l) {
    const auto& la = a.layers[l];
    const auto& lb = b.layers[l];
    const std::pair<const WeightMatrix*, const WeightMatrix*> pairs[] = {
        {&la.attn.q, &lb.attn.q}, {&la.attn.k, &lb.attn.k},   {&la.attn.v, &lb.attn.v}, {&la.attn.o, &lb.attn.o},
        {&la.mlp.gate, &lb.mlp.gate}, {&la.mlp.up, &lb.mlp.up}, {&la.mlp.down, &lb.mlp.down}};
    for (const auto& [wa, wb] : pairs) {
      ASSERT_EQ(wa->dtype, DType::F16);
      ASSERT_EQ(wb->dtype, DType::BF16);
      ASSERT_EQ(wa->rows, wb->rows);
      ASSERT_EQ(wa->cols, wb->cols);
      const auto* ha = static_cast<const uint16_t*>(wa->data);
      const auto* hb = static_cast<const uint16_t*>(wb->data);
      for (int64_t i = 0; i < wa->rows * wa->cols; ++i) ASSERT_EQ(hb[i], f32_to_bf16(f16_to_f32(ha[i]))) << l << " " << i;
    }
  }
  EXPECT_EQ(b.embed.dtype, DType::F16);
  EXPECT_EQ(b.lm_head.dtype, DType::F16);
  EXPECT_EQ((*rounded)->weight_bytes_per_token(), (*stored)->weight_bytes_per_token());

  // 20 prompt tokens (the bf16-dot GEMM where the CPU has it), then one decode step (the GEMV).
  const int64_t n = 20, vocab = shape.vocab;
  std::vector<int32_t> ids(size_t(n) + 1);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 37 + 5) % size_t(vocab));
  std::vector<float> logits[2];
  for (int which = 0; which < 2; ++which) {
    const Model& m = which == 0 ? **stored : **rounded;
    Decoder dec(m);
    SequenceKvCache kv(m.config(), n + 1);
    std::vector<float> hidden(size_t(shape.hidden));
    logits[which].resize(size_t(2 * vocab));
    ASSERT_TRUE(dec.forward(ctx, kv, ids.data(), n, 1, hidden.data()).is_ok());
    dec.logits(ctx, hidden.data(), 1, logits[which].data());
    ASSERT_TRUE(dec.forward(ctx, kv, ids.data() + n, 1, 1, hidden.data()).is_ok());
    dec.logits(ctx, hidden.data(), 1, logits[which].data() + vocab);
  }
  double max_diff = 0, max_abs = 0;
  for (size_t i = 0; i < logits[0].size(); ++i) {
    ASSERT_TRUE(std::isfinite(logits[1][i]));
    max_diff = std::max(max_diff, double(std::fabs(logits[0][i] - logits[1][i])));
    max_abs = std::max(max_abs, double(std::fabs(logits[0][i])));
  }
  EXPECT_LE(max_diff, 0.02 * max_abs + 1e-3) << "max |logit| " << max_abs;
}

}  // namespace
}  // namespace tern
