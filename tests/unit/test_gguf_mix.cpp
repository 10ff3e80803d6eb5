// llama.cpp's GGUF mixes by name (Q4_K_M, ...): the file type each names and the per-tensor types of
// llama-quantize's rules, written out by hand here for a 16-layer model (the expected sets are not
// computed with the code under test).
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "formats/gguf/gguf_mix.h"

namespace tern {
namespace {

GgufMix mix(const std::string& name) {
  auto m = gguf_mix_from_name(name);
  EXPECT_TRUE(m.is_ok()) << name << ": " << m.status().message();
  return m.is_ok() ? *m : GgufMix{};
}

const char* type_of(const GgufMix& m, const GgufMixModel& model, const std::string& tensor, int64_t cols = 256) {
  return gguf_traits(gguf_mix_tensor_type(m, model, tensor, cols)).name;
}

std::string blk(int i, const char* t) { return "blk." + std::to_string(i) + "." + t + ".weight"; }

// 16 layers, 8 heads over 2 kv heads (GQA 4), separate output.weight.
const GgufMixModel k16{"llama", 16, 8, 2, /*tied=*/false};
// llama.cpp's "use_more_bits" layers of 16: i < 2, i >= 14, (i - 2) % 3 == 2.
const std::set<int> kMoreBits16 = {0, 1, 4, 7, 10, 13, 14, 15};

TEST(GgufMix, NamesAndFileTypes) {
  EXPECT_EQ(mix("Q4_K_M").file_type, 15u);
  EXPECT_EQ(mix("Q4_K_M").base, GgufType::Q4_K);
  EXPECT_EQ(mix("q4_k_s").file_type, 14u);
  EXPECT_EQ(mix("Q5_K_M").file_type, 17u);
  EXPECT_EQ(mix("Q5_K_S").file_type, 16u);
  EXPECT_EQ(mix("Q6_K").file_type, 18u);
  EXPECT_EQ(mix("Q3_K_S").file_type, 11u);
  EXPECT_EQ(mix("Q3_K_M").file_type, 12u);
  EXPECT_EQ(mix("Q3_K_L").file_type, 13u);
  EXPECT_EQ(mix("Q2_K").file_type, 10u);
  EXPECT_EQ(mix("Q8_0").file_type, 7u);
  EXPECT_EQ(mix("Q4_0").file_type, 2u);
  EXPECT_EQ(mix("BF16").file_type, 32u);
  // llama-quantize's aliases: the short K names are the _M mixes.
  EXPECT_EQ(mix("Q4_K").name, "Q4_K_M");
  EXPECT_EQ(mix("Q5_K").name, "Q5_K_M");
  EXPECT_EQ(mix("Q3_K").name, "Q3_K_M");
  for (const char* bad : {"IQ4_XS", "Q2_K_S", "TQ1_0"}) {
    auto m = gguf_mix_from_name(bad);
    ASSERT_FALSE(m.is_ok()) << bad;
    EXPECT_NE(m.status().message().find("not supported"), std::string::npos) << m.status().message();
  }
  auto unknown = gguf_mix_from_name("Q9_K");
  ASSERT_FALSE(unknown.is_ok());
  EXPECT_NE(unknown.status().message().find("Q4_K_M"), std::string::npos) << "lists the supported mixes";
}

TEST(GgufMix, Q4KMAndQ5KMGiveSixBitsToAttnVAndFfnDownInTheMoreBitsLayers) {
  for (const auto& [name, base] : {std::pair{"Q4_K_M", "Q4_K"}, std::pair{"Q5_K_M", "Q5_K"}}) {
    const GgufMix m = mix(name);
    for (int i = 0; i < 16; ++i) {
      const char* more = kMoreBits16.count(i) ? "Q6_K" : base;
      EXPECT_STREQ(type_of(m, k16, blk(i, "attn_v")), more) << name << " layer " << i;
      EXPECT_STREQ(type_of(m, k16, blk(i, "ffn_down")), more) << name << " layer " << i;
      for (const char* t : {"attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"})
        EXPECT_STREQ(type_of(m, k16, blk(i, t)), base) << name << " " << t << " " << i;
    }
    EXPECT_STREQ(type_of(m, k16, "output.weight"), "Q6_K");
    EXPECT_STREQ(type_of(m, k16, "token_embd.weight"), base) << "an untied embedding keeps the base type";
    GgufMixModel tied = k16;
    tied.tied_embeddings = true;
    EXPECT_STREQ(type_of(m, tied, "token_embd.weight"), "Q6_K") << "a tied embedding is the output";
  }
}

TEST(GgufMix, SmallAndThreeBitMixes) {
  const GgufMix s = mix("Q4_K_S");
  for (int i = 0; i < 16; ++i) {
    EXPECT_STREQ(type_of(s, k16, blk(i, "attn_v")), i < 4 ? "Q5_K" : "Q4_K") << i;
    EXPECT_STREQ(type_of(s, k16, blk(i, "ffn_down")), i < 2 ? "Q5_K" : "Q4_K") << i;
  }
  const GgufMix m3 = mix("Q3_K_M");
  for (int i = 0; i < 16; ++i) {
    EXPECT_STREQ(type_of(m3, k16, blk(i, "attn_v")), i < 2 ? "Q5_K" : "Q4_K") << i;
    EXPECT_STREQ(type_of(m3, k16, blk(i, "ffn_down")), i < 1 ? "Q5_K" : "Q4_K") << i;
    EXPECT_STREQ(type_of(m3, k16, blk(i, "attn_output")), "Q4_K") << i;
    EXPECT_STREQ(type_of(m3, k16, blk(i, "attn_q")), "Q3_K") << i;
    EXPECT_STREQ(type_of(m3, k16, blk(i, "ffn_up")), "Q3_K") << i;
  }
  const GgufMix l3 = mix("Q3_K_L");
  EXPECT_STREQ(type_of(l3, k16, blk(9, "attn_v")), "Q5_K");
  EXPECT_STREQ(type_of(l3, k16, blk(9, "ffn_down")), "Q5_K");
  EXPECT_STREQ(type_of(l3, k16, blk(9, "attn_output")), "Q5_K");
  EXPECT_STREQ(type_of(l3, k16, blk(9, "ffn_gate")), "Q3_K");
  EXPECT_STREQ(type_of(mix("Q3_K_S"), k16, blk(0, "attn_v")), "Q3_K");
  const GgufMix q2 = mix("Q2_K");
  EXPECT_STREQ(type_of(q2, k16, blk(3, "attn_v")), "Q4_K") << "GQA 4: attn_v at Q4_K";
  EXPECT_STREQ(type_of(q2, GgufMixModel{"llama", 16, 8, 4, false}, blk(3, "attn_v")), "Q3_K") << "GQA 2";
  EXPECT_STREQ(type_of(q2, k16, blk(3, "ffn_down")), "Q3_K");
  EXPECT_STREQ(type_of(q2, k16, blk(3, "attn_output")), "Q3_K");
  EXPECT_STREQ(type_of(q2, k16, blk(3, "attn_q")), "Q2_K");
  EXPECT_STREQ(type_of(q2, k16, "output.weight"), "Q6_K");
}

TEST(GgufMix, LegacyAndEightBitMixesOnlyRaiseTheOutput) {
  EXPECT_STREQ(type_of(mix("Q8_0"), k16, "output.weight"), "Q8_0");
  EXPECT_STREQ(type_of(mix("Q8_0"), k16, blk(0, "attn_v")), "Q8_0");
  EXPECT_STREQ(type_of(mix("Q4_0"), k16, "output.weight"), "Q6_K");
  EXPECT_STREQ(type_of(mix("Q4_0"), k16, blk(0, "attn_v")), "Q4_0");
  EXPECT_STREQ(type_of(mix("Q5_1"), k16, blk(15, "ffn_down")), "Q5_1");
  EXPECT_STREQ(type_of(mix("Q6_K"), k16, blk(3, "attn_q")), "Q6_K");
  EXPECT_STREQ(type_of(mix("F16"), k16, "output.weight"), "F16");
  // An output whose rows do not fit the base's blocks goes to Q8_0 (rows of 96 values).
  EXPECT_STREQ(type_of(mix("Q4_K_M"), k16, "output.weight", 96), "Q8_0");
}

TEST(GgufMix, RowsThatDoNotFitFallBackAsLlamaCpp) {
  const GgufMix m = mix("Q4_K_M");
  // docs-llama-28m's ffn_down rows hold 1,408 values (a multiple of 32, not of 256).
  EXPECT_STREQ(type_of(m, k16, blk(0, "ffn_down"), 1408), "Q8_0") << "Q6_K -> Q8_0";
  EXPECT_STREQ(type_of(m, k16, blk(2, "ffn_down"), 1408), "Q5_0") << "Q4_K -> Q5_0";
  EXPECT_STREQ(type_of(mix("Q5_K_S"), k16, blk(2, "ffn_down"), 1408), "Q5_1");
  EXPECT_STREQ(type_of(mix("Q3_K_S"), k16, blk(2, "ffn_down"), 1408), "Q4_0");
  EXPECT_STREQ(type_of(m, k16, blk(2, "ffn_down"), 100), "F16");
}

TEST(GgufMix, SeventyBClassGivesAttnVOneMoreStep) {
  const GgufMixModel l70{"llama", 80, 64, 8, false};
  EXPECT_STREQ(type_of(mix("Q4_K_M"), l70, blk(11, "attn_v")), "Q5_K") << "not a more-bits layer: Q4_K -> Q5_K";
  EXPECT_STREQ(type_of(mix("Q4_K_M"), l70, blk(12, "attn_v")), "Q6_K");  // (12 - 10) % 3 == 2
  EXPECT_STREQ(type_of(mix("Q4_K_M"), GgufMixModel{"llama", 80, 64, 64, false}, blk(11, "attn_v")), "Q4_K")
      << "80 layers without GQA is the 65B";
  EXPECT_STREQ(type_of(mix("Q4_K_M"), l70, blk(11, "ffn_down")), "Q4_K");
}

TEST(GgufMix, PureKeepsTheBaseEverywhere) {
  GgufMix m = mix("Q4_K_M");
  m.pure = true;
  EXPECT_STREQ(type_of(m, k16, blk(0, "attn_v")), "Q4_K");
  EXPECT_STREQ(type_of(m, k16, "output.weight"), "Q4_K");
  EXPECT_STREQ(type_of(m, k16, blk(0, "ffn_down"), 1408), "Q5_0") << "the shape fallback still applies";
}

// MoE and fused tensors, as llama.cpp's llama_tensor_get_type treats them (written out by hand):
// experts' ffn_down (and the shared expert's) follow ffn_down by the layer in their name; attn_qkv
// and attn_kv_b are attn_v-like; with exactly 8 experts attn_v / attn_k go to Q8_0 and attn_output
// to Q5_K; routers are never in the mix (the exporter keeps ffn_gate_inp in F32).
TEST(GgufMix, MoeAndFusedTensorsFollowLlamaCppRules) {
  const GgufMix q4km = mix("Q4_K_M");
  const GgufMixModel moe128{"qwen3moe", 16, 8, 2, false, 128};
  for (int i = 0; i < 16; ++i) {
    const char* want = kMoreBits16.count(i) ? "Q6_K" : "Q4_K";
    EXPECT_STREQ(type_of(q4km, moe128, blk(i, "ffn_down_exps")), want) << i;
    EXPECT_STREQ(type_of(q4km, moe128, blk(i, "ffn_down_shexp")), want) << i;
    EXPECT_STREQ(type_of(q4km, moe128, blk(i, "ffn_gate_exps")), "Q4_K") << i;
    EXPECT_STREQ(type_of(q4km, moe128, blk(i, "attn_qkv")), want) << i;
    EXPECT_STREQ(type_of(q4km, moe128, blk(i, "attn_kv_b")), want) << i;
    EXPECT_STREQ(type_of(q4km, moe128, blk(i, "attn_k")), "Q4_K") << i;
  }
  const GgufMixModel mixtral{"llama", 16, 8, 2, false, 8};
  for (const char* name : {"Q2_K", "Q3_K_M", "Q4_K_S", "Q4_K_M", "Q5_K_M"}) {
    const GgufMix m = mix(name);
    EXPECT_STREQ(type_of(m, mixtral, blk(3, "attn_v")), "Q8_0") << name;
    EXPECT_STREQ(type_of(m, mixtral, blk(3, "attn_k")), "Q8_0") << name;
  }
  EXPECT_STREQ(type_of(q4km, mixtral, blk(3, "attn_output")), "Q5_K");
  EXPECT_STREQ(type_of(mix("Q5_K_M"), mixtral, blk(3, "attn_output")), "Q5_K");  // not bumped: already 5 bits
  EXPECT_STREQ(type_of(mix("Q6_K"), mixtral, blk(3, "attn_output")), "Q6_K");
}

}  // namespace
}  // namespace tern
