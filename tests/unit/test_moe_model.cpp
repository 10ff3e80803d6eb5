// The MoE architectures as loaded models: which layers got the MoE block, what a decode token
// reads, and that tern quantize refuses them by name rather than leaving the experts dense.
#include <gtest/gtest.h>

#include "compress/model_linears.h"
#include "model/blocks/moe.h"
#include "model/decoder.h"
#include "model/model.h"
#include "test_support.h"

namespace tern {
namespace {

std::unique_ptr<Model> load(const char* arch) {
  auto m = Model::load(test::tiny_arch_dir(arch));
  EXPECT_TRUE(m.is_ok()) << m.status().message();
  return m.is_ok() ? std::move(*m) : nullptr;
}

TEST(MoeModel, EveryLayerOfTheTinyMoeArchsHasTheMoeBlock) {
  for (const char* arch : {"mixtral", "qwen2_moe", "qwen3_moe"}) {
    SCOPED_TRACE(arch);
    auto m = load(arch);
    ASSERT_NE(m, nullptr);
    for (const auto& l : m->weights().layers) {
      ASSERT_NE(l.moe, nullptr);
      EXPECT_EQ(l.moe->experts.size(), 4u);
      EXPECT_EQ(l.mlp.gate.rows, 0);  // no dense mlp bound beside it
    }
    const bool qwen2 = std::string(arch) == "qwen2_moe";
    EXPECT_EQ(m->weights().layers[0].moe->shared.present(), qwen2);
    EXPECT_EQ(m->weights().layers[0].moe->shared_gate.rows, qwen2 ? 1 : 0);
  }
}

TEST(MoeModel, WeightBytesPerTokenCountTopKExperts) {
  auto m = load("qwen3_moe");
  ASSERT_NE(m, nullptr);
  // f32: per layer q 128x64, k/v 64x64, o 64x128; router 4x64; 2 of 4 experts of 3 x 96x64; head 1024x64.
  const int64_t layer = (128 * 64 + 2 * 64 * 64 + 64 * 128) + 4 * 64 + 2 * 3 * 96 * 64;
  EXPECT_EQ(m->weight_bytes_per_token(), 4 * (2 * layer + 1024 * 64));
}

TEST(MoeModel, DecodeOfOneTokenReadsExactlyTopKExpertsPerLayer) {
  auto m = load("mixtral");
  ASSERT_NE(m, nullptr);
  ThreadPool pool(1);
  ExecContext ctx(pool, CpuFeatures::detect());
  Decoder dec(*m);
  SequenceKvCache kv(m->config(), 16);
  std::vector<float> hidden(size_t(m->config().hidden_size));
  const int32_t ids[3] = {5, 6, 7};
  ASSERT_TRUE(dec.forward(ctx, kv, ids, 3, 1, hidden.data()).is_ok());
  dec.moe_block()->reset_counters();
  ASSERT_TRUE(dec.forward(ctx, kv, ids, 1, 1, hidden.data()).is_ok());
  const MoeCounters& c = dec.moe_block()->counters();
  EXPECT_EQ(c.forwards, 2);  // one per layer
  EXPECT_EQ(c.expert_passes, 2 * 2);
  EXPECT_EQ(c.routed_pairs, 2 * 2);
}

// RTN, AWQ and GPTQ quantize the experts (test_quant_archs.cpp); SmoothQuant (W8A8) walks the Llama
// shape only and refuses naming the architecture.
TEST(MoeModel, SmoothQuantRefusesNamingTheArchitecture) {
  for (const char* arch : {"mixtral", "qwen2_moe", "qwen3_moe"}) {
    auto m = load(arch);
    ASSERT_NE(m, nullptr);
    const Status s = check_quantizable_architecture(*m);
    ASSERT_FALSE(s.is_ok());
    EXPECT_NE(s.message().find(m->config().architecture), std::string::npos) << s.message();
    EXPECT_TRUE(quantize_model_rtn(*m, QuantSpec{8, 0, true}).is_ok());
  }
}

}  // namespace
}  // namespace tern
