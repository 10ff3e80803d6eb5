#include <gtest/gtest.h>

#include "formats/config_fields.h"
#include "formats/model_config.h"
#include "model/synth.h"

namespace tern {
namespace {

// Parameter counts published for the real checkpoints (Hugging Face model cards / safetensors totals).
TEST(Synth, ShapesHaveThePublishedParameterCounts) {
  const std::vector<std::pair<std::string, int64_t>> published = {
      {"llama-3.2-1b", 1235814400},  // tied embeddings
      {"llama-3.1-8b", 8030261248},
      {"qwen2.5-0.5b", 494032768},   // tied, qkv biases
      {"qwen3-8b", 8190735360},      // q/k norms, untied
      {"mistral-7b", 7241732096},
      {"mixtral-8x7b", 46702792704},    // 8 experts of 3 × 4096 × 14336 per layer
      {"qwen3-30b-a3b", 30532122624},   // 128 experts of 3 × 2048 × 768, q/k norms
      {"deepseek-v3", 671026419200},    // MLA, 3 dense + 58 MoE layers (256 + 1 shared), no MTP layer
  };
  for (const auto& [name, params] : published) {
    const SynthShape* s = find_synth_shape(name);
    ASSERT_NE(s, nullptr) << name;
    EXPECT_EQ(synth_parameter_count(*s), params) << name;
  }
}

TEST(Synth, ConfigsParseBackToTheirShape) {
  for (const SynthShape& s : synth_shapes()) {
    if (s.kv_lora_rank > 0) continue;  // DeepSeek's yarn rope and MLA dims: its own test below
    auto cfg = parse_model_config(synth_config_json(s), s.name);
    ASSERT_TRUE(cfg.is_ok()) << cfg.status().message();
    EXPECT_EQ(cfg->architecture, s.architecture);
    EXPECT_EQ(cfg->hidden_size, s.hidden);
    EXPECT_EQ(cfg->n_layers, s.layers);
    EXPECT_EQ(cfg->n_heads, s.heads);
    EXPECT_EQ(cfg->n_kv_heads, s.kv_heads);
    EXPECT_EQ(cfg->head_dim, s.head_dim);
    EXPECT_EQ(cfg->vocab_size, s.vocab);
    EXPECT_EQ(cfg->tie_word_embeddings, s.tied);
    EXPECT_EQ(cfg->dtype, DType::BF16);
    EXPECT_EQ(cfg->sliding_window, s.sliding_window);
    EXPECT_EQ(cfg->rope.llama3_factor, s.llama3_factor);
    EXPECT_EQ(cfg->moe.n_experts, s.n_experts) << s.name;
    EXPECT_EQ(cfg->moe.top_k, s.top_k) << s.name;
    if (s.n_experts > 0) EXPECT_EQ(cfg->moe.expert_intermediate, s.moe_intermediate) << s.name;
  }
}

// The MoE fields of every MoE shape read back through the config parser's MoE part (DeepSeek's
// included, whose rope scaling the Llama-shape parser may not take).
TEST(Synth, MoeConfigsParseBack) {
  for (const SynthShape& s : synth_shapes()) {
    if (s.n_experts == 0) continue;
    const auto j = nlohmann::json::parse(synth_config_json(s));
    const ConfigFields f(j, s.name);
    MoeConfig m;
    ASSERT_TRUE(parse_moe_config(f, s.model_type, s.layers, &m).is_ok()) << s.name;
    EXPECT_EQ(m.n_experts, s.n_experts);
    EXPECT_EQ(m.top_k, s.top_k);
    EXPECT_EQ(m.expert_intermediate, s.moe_intermediate);
    EXPECT_EQ(m.n_group, s.n_group);
    EXPECT_EQ(m.topk_group, s.topk_group);
    EXPECT_EQ(m.shared_intermediate, s.shared_intermediate + s.n_shared_experts * s.moe_intermediate);
    EXPECT_EQ(m.n_moe_layers(s.layers), s.layers - s.first_k_dense);
  }
}

TEST(Synth, KvBytesPerTokenOfLlama31_8BIs128KiB) {
  auto cfg = parse_model_config(synth_config_json(*find_synth_shape("llama-3.1-8b")), "x");
  ASSERT_TRUE(cfg.is_ok());
  EXPECT_EQ(cfg->kv_bytes_per_token(2), 128 * 1024);  // 2 * 32 layers * 8 kv heads * 128 * 2 bytes
}

}  // namespace
}  // namespace tern
