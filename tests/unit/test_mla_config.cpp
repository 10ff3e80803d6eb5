// MLA (DeepSeek) fields of config.json: the tiny checkpoint (transformers 5.x form), DeepSeek-V3's
// published config (4.x form, yarn rope scaling), and malformed variants that must name file and field.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "formats/model_config.h"
#include "model/model.h"
#include "test_support.h"

namespace tern {
namespace {

using nlohmann::json;

// deepseek-ai/DeepSeek-V3 config.json (the fields tern reads; quantization_config left out).
json deepseek_v3_json() {
  return json::parse(R"({
    "architectures": ["DeepseekV3ForCausalLM"], "attention_bias": false, "bos_token_id": 0, "eos_token_id": 1,
    "first_k_dense_replace": 3, "hidden_act": "silu", "hidden_size": 7168, "intermediate_size": 18432,
    "kv_lora_rank": 512, "max_position_embeddings": 163840, "model_type": "deepseek_v3",
    "moe_intermediate_size": 2048, "moe_layer_freq": 1, "n_group": 8, "n_routed_experts": 256,
    "n_shared_experts": 1, "norm_topk_prob": true, "num_attention_heads": 128, "num_experts_per_tok": 8,
    "num_hidden_layers": 61, "num_key_value_heads": 128, "num_nextn_predict_layers": 1, "q_lora_rank": 1536,
    "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "rms_norm_eps": 1e-06,
    "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0,
                     "original_max_position_embeddings": 4096, "type": "yarn"},
    "rope_theta": 10000, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid", "tie_word_embeddings": false,
    "topk_group": 4, "topk_method": "noaux_tc", "torch_dtype": "bfloat16", "v_head_dim": 128,
    "vocab_size": 129280})");
}

std::string parse_error(const json& j) {
  auto r = parse_model_config(j.dump(), "fixture.json");
  EXPECT_FALSE(r.is_ok());
  return r.is_ok() ? "" : r.status().message();
}

TEST(MlaConfig, TinyCheckpoint) {
  auto r = load_model_config(test::tiny_arch_dir("deepseek_v3"));
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  const ModelConfig& c = *r;
  ASSERT_TRUE(c.mla.enabled());
  EXPECT_EQ(c.mla.q_lora_rank, 32);
  EXPECT_EQ(c.mla.kv_lora_rank, 32);
  EXPECT_EQ(c.mla.qk_nope_head_dim, 16);
  EXPECT_EQ(c.mla.qk_rope_head_dim, 8);
  EXPECT_EQ(c.mla.v_head_dim, 16);
  EXPECT_TRUE(c.mla.rope_interleave);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.rope.rotary_dim, 8);
  EXPECT_DOUBLE_EQ(c.mla.softmax_scale, 1.0 / std::sqrt(24.0));
  EXPECT_EQ(c.mla.kv_row(), 40);
  EXPECT_EQ(c.kv_bytes_per_token(4), 2 * 40 * 4);  // 2 layers × (latent 32 + rope key 8) × f32
}

TEST(MlaConfig, DeepSeekV3PublishedConfigWithYarn) {
  auto r = parse_model_config(deepseek_v3_json().dump(), "config.json");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  const ModelConfig& c = *r;
  EXPECT_EQ(c.rope_type, "yarn");
  EXPECT_DOUBLE_EQ(c.rope.yarn_factor, 40.0);
  EXPECT_DOUBLE_EQ(c.rope.yarn_original_max_position, 4096.0);
  EXPECT_EQ(c.rope.rotary_dim, 64);
  EXPECT_EQ(c.mla.q_lora_rank, 1536);
  EXPECT_EQ(c.mla.kv_row(), 576);
  EXPECT_TRUE(c.mla.rope_interleave);  // absent: transformers' default
  // 192^-0.5 · (0.1 ln 40 + 1)² = 0.0721688 · 1.8738542
  EXPECT_NEAR(c.mla.softmax_scale, 0.1352337788608801, 1e-12);
  EXPECT_EQ(c.kv_bytes_per_token(2), int64_t(61) * 576 * 2);
}

TEST(MlaConfig, NullQLoraRankIsAPlainQProj) {
  json j = deepseek_v3_json();
  j["q_lora_rank"] = nullptr;
  auto r = parse_model_config(j.dump(), "config.json");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->mla.q_lora_rank, 0);
}

TEST(MlaConfig, ErrorsNameFileAndField) {
  struct Case {
    const char* key;
    json value;  // null: erase the key
    const char* expect;
  } cases[] = {
      {"kv_lora_rank", nullptr, "fixture.json: kv_lora_rank: missing"},
      {"q_lora_rank", nullptr, "fixture.json: q_lora_rank: missing"},
      {"qk_rope_head_dim", 63, "fixture.json: qk_rope_head_dim: 63 is odd"},
      {"qk_rope_head_dim", nullptr, "fixture.json: qk_rope_head_dim: missing"},
      {"v_head_dim", nullptr, "fixture.json: v_head_dim: missing"},
      {"qk_head_dim", 96, "fixture.json: qk_head_dim: 96 is not qk_nope_head_dim + qk_rope_head_dim"},
      {"head_dim", 32, "fixture.json: head_dim: 32 differs from qk_rope_head_dim 64"},
      {"num_key_value_heads", 16, "fixture.json: num_key_value_heads: 16 differs"},
      {"rope_interleave", "yes", "fixture.json: rope_interleave: expected a boolean"},
  };
  for (const auto& c : cases) {
    json j = deepseek_v3_json();
    if (c.value.is_null()) j.erase(c.key);
    else j[c.key] = c.value;
    EXPECT_NE(parse_error(j).find(c.expect), std::string::npos) << c.key << ": " << parse_error(j);
  }
}

TEST(MlaConfig, UnknownRopeTypeStaysAnError) {
  json j = deepseek_v3_json();
  j["rope_scaling"]["type"] = "longrope";
  EXPECT_NE(parse_error(j).find("fixture.json: rope_scaling.type: unsupported rope type 'longrope'"),
            std::string::npos);
  j = deepseek_v3_json();
  j["rope_scaling"]["beta_fast"] = 0.5;
  EXPECT_NE(parse_error(j).find("fixture.json: rope_scaling.beta_fast: must exceed beta_slow"), std::string::npos);
}

TEST(MlaConfig, DenseConfigsAreUntouched) {
  auto r = load_model_config(test::tiny_arch_dir("llama"));
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_FALSE(r->mla.enabled());
}

}  // namespace
}  // namespace tern

namespace tern {
namespace {

// yarn's attention factor (here 0.1·ln 4 + 1) is applied by the MLA block only: a dense model with
// it is refused at load, naming the field, rather than run with unscaled rotations.
TEST(MlaConfig, YarnAttentionFactorOnADenseModelIsRefusedAtLoad) {
  test::TempDir dir;
  const std::string src = test::tiny_arch_dir("llama");
  json j = json::parse(*read_text_file(src + "/config.json"));
  j.erase("rope_parameters");
  j["rope_theta"] = 10000.0;
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 256}};
  test::write_file(dir.file("config.json"), j.dump());
  std::filesystem::create_symlink(src + "/model.safetensors", dir.file("model.safetensors"));
  auto m = Model::load(dir.path());
  ASSERT_FALSE(m.is_ok());
  EXPECT_NE(m.status().message().find("config.json: rope_scaling: yarn with attention factor"), std::string::npos)
      << m.status().message();
}

}  // namespace
}  // namespace tern
