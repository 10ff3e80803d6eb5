// config.json MoE fields: the four tiny MoE checkpoints, real-model configs written out by hand
// (Mixtral-8x7B, Qwen1.5-MoE-A2.7B, Qwen3-30B-A3B, DeepSeek-V3) and the bad inputs that must be
// one-line errors naming the file and the field.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "formats/model_config.h"
#include "test_support.h"

namespace tern {
namespace {

using nlohmann::json;

json base(const char* model_type) {
  return json{{"model_type", model_type}, {"vocab_size", 1000},  {"hidden_size", 64},
              {"intermediate_size", 160}, {"num_hidden_layers", 4}, {"num_attention_heads", 4},
              {"num_key_value_heads", 2}};
}

json deepseek() {
  json j = base("deepseek_v3");
  j.update(json{{"n_routed_experts", 16}, {"num_experts_per_tok", 4}, {"moe_intermediate_size", 32},
                {"n_shared_experts", 1}, {"n_group", 4}, {"topk_group", 2}, {"routed_scaling_factor", 2.5},
                {"first_k_dense_replace", 1}, {"norm_topk_prob", true}, {"scoring_func", "sigmoid"},
                {"topk_method", "noaux_tc"}});
  // deepseek_v3 is also multi-head latent attention: its fields are required (formats/mla_config.h).
  j.update(json{{"num_key_value_heads", 4}, {"q_lora_rank", 32}, {"kv_lora_rank", 16}, {"qk_nope_head_dim", 8},
                {"qk_rope_head_dim", 8}, {"v_head_dim", 8}});
  return j;
}

MoeConfig parse_ok(const json& j) {
  auto r = parse_model_config(j.dump(), "fixture.json");
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  return r.is_ok() ? r->moe : MoeConfig{};
}

std::string parse_error(const json& j) {
  auto r = parse_model_config(j.dump(), "fixture.json");
  EXPECT_FALSE(r.is_ok());
  return r.is_ok() ? "" : r.status().message();
}

TEST(MoeConfig, TinyCheckpoints) {
  auto load = [](const char* arch) {
    auto r = load_model_config(test::tiny_arch_dir(arch));
    EXPECT_TRUE(r.is_ok()) << r.status().message();
    return r.is_ok() ? r->moe : MoeConfig{};
  };
  const MoeConfig mix = load("mixtral");
  EXPECT_EQ(mix.n_experts, 4);
  EXPECT_EQ(mix.top_k, 2);
  EXPECT_EQ(mix.expert_intermediate, 160);
  EXPECT_TRUE(mix.norm_topk_prob);
  EXPECT_EQ(mix.shared_intermediate, 0);
  EXPECT_TRUE(mix.is_moe_layer(0) && mix.is_moe_layer(1));

  const MoeConfig q2 = load("qwen2_moe");
  EXPECT_EQ(q2.n_experts, 4);
  EXPECT_EQ(q2.expert_intermediate, 96);
  EXPECT_FALSE(q2.norm_topk_prob);
  EXPECT_EQ(q2.shared_intermediate, 128);
  EXPECT_TRUE(q2.shared_expert_gate);

  const MoeConfig q3 = load("qwen3_moe");  // transformers 5 spells the count num_local_experts
  EXPECT_EQ(q3.n_experts, 4);
  EXPECT_TRUE(q3.norm_topk_prob);
  EXPECT_EQ(q3.shared_intermediate, 0);
  EXPECT_EQ(q3.scoring, MoeScoring::kSoftmax);

  const MoeConfig ds = load("deepseek_v3");
  EXPECT_EQ(ds.n_experts, 4);
  EXPECT_EQ(ds.scoring, MoeScoring::kSigmoid);
  EXPECT_TRUE(ds.correction_bias);
  EXPECT_EQ(ds.shared_intermediate, 96);
  EXPECT_DOUBLE_EQ(ds.routed_scaling_factor, 2.5);
  EXPECT_FALSE(ds.is_moe_layer(0));  // first_k_dense_replace 1
  EXPECT_TRUE(ds.is_moe_layer(1));

  auto llama = load_model_config(test::tiny_arch_dir("llama"));
  ASSERT_TRUE(llama.is_ok());
  EXPECT_FALSE(llama->moe.enabled());
  EXPECT_FALSE(llama->moe.is_moe_layer(0));
}

TEST(MoeConfig, DeepSeekV3Fields) {
  const MoeConfig m = parse_ok(deepseek());
  EXPECT_EQ(m.n_group, 4);
  EXPECT_EQ(m.topk_group, 2);
  EXPECT_EQ(m.first_k_dense, 1);
  EXPECT_EQ(m.n_moe_layers(4), 3);
  json two = deepseek();
  two["n_shared_experts"] = 2;
  EXPECT_EQ(parse_ok(two).shared_intermediate, 64);
}

TEST(MoeConfig, QwenSparseStepAndMlpOnlyLayers) {
  json j = base("qwen2_moe");
  j.update(json{{"num_experts", 8}, {"num_experts_per_tok", 2}, {"moe_intermediate_size", 32},
                {"shared_expert_intermediate_size", 64}, {"decoder_sparse_step", 2}, {"mlp_only_layers", {3}}});
  const MoeConfig m = parse_ok(j);
  // (layer + 1) % 2 == 0 -> layers 1 and 3; 3 is mlp-only.
  EXPECT_FALSE(m.is_moe_layer(0));
  EXPECT_TRUE(m.is_moe_layer(1));
  EXPECT_FALSE(m.is_moe_layer(2));
  EXPECT_FALSE(m.is_moe_layer(3));
  EXPECT_EQ(m.n_moe_layers(4), 1);
}

TEST(MoeConfig, QwenZeroExpertsIsDense) {
  json j = base("qwen3_moe");
  j.update(json{{"num_experts", 0}, {"num_experts_per_tok", 2}, {"moe_intermediate_size", 32}});
  EXPECT_FALSE(parse_ok(j).enabled());
}

TEST(MoeConfig, BadInputNamesFileAndField) {
  struct Case {
    json j;
    const char* want;
  };
  json mix = base("mixtral");
  mix.update(json{{"num_local_experts", 8}, {"num_experts_per_tok", 2}});
  std::vector<Case> cases;
  auto with = [](json j, const json& patch) {
    j.update(patch);
    return j;
  };
  cases.push_back({with(mix, {{"num_experts_per_tok", 9}}), "fixture.json: num_experts_per_tok: 9 exceeds num_local_experts 8"});
  cases.push_back({with(mix, {{"num_local_experts", nullptr}}), "fixture.json: num_local_experts: missing"});
  cases.push_back({with(mix, {{"num_experts_per_tok", "2"}}), "fixture.json: num_experts_per_tok: expected an integer"});
  cases.push_back({with(deepseek(), {{"topk_group", 5}}), "fixture.json: topk_group: 5 exceeds n_group 4"});
  cases.push_back({with(deepseek(), {{"n_group", 3}}), "fixture.json: n_group: 3 does not divide n_routed_experts 16"});
  cases.push_back({with(deepseek(), {{"n_group", 16}, {"topk_group", 4}}), "fixture.json: n_group: 16 leaves fewer than 2"});
  cases.push_back({with(deepseek(), {{"topk_group", 1}, {"num_experts_per_tok", 6}}),
                   "fixture.json: num_experts_per_tok: 6 exceeds the 1 allowed groups' 4 experts"});
  cases.push_back({with(deepseek(), {{"scoring_func", "softmax"}}), "fixture.json: scoring_func: 'softmax' is not supported"});
  cases.push_back({with(deepseek(), {{"topk_method", "group_limited_greedy"}}), "fixture.json: topk_method: 'group_limited_greedy'"});
  cases.push_back({with(deepseek(), {{"routed_scaling_factor", 0}}), "fixture.json: routed_scaling_factor: must be positive"});
  cases.push_back({with(deepseek(), {{"first_k_dense_replace", 5}}), "fixture.json: first_k_dense_replace: 5 exceeds"});
  cases.push_back({with(deepseek(), {{"moe_layer_freq", 2}}), "fixture.json: moe_layer_freq: 2 is not supported"});
  cases.push_back({with(deepseek(), {{"n_group", nullptr}}), "fixture.json: n_group: missing"});
  json q = base("qwen2_moe");
  q.update(json{{"num_experts", 8}, {"num_experts_per_tok", 2}, {"moe_intermediate_size", 32},
                {"shared_expert_intermediate_size", 64}});
  cases.push_back({with(q, {{"mlp_only_layers", {4}}}), "fixture.json: mlp_only_layers: layer 4 is outside [0, 4)"});
  cases.push_back({with(q, {{"mlp_only_layers", 1}}), "fixture.json: mlp_only_layers: expected a list"});
  cases.push_back({with(q, {{"decoder_sparse_step", 0}}), "fixture.json: decoder_sparse_step: 0 is outside"});
  cases.push_back({with(q, {{"shared_expert_intermediate_size", nullptr}}), "fixture.json: shared_expert_intermediate_size: missing"});
  cases.push_back({with(q, {{"num_local_experts", 4}}), "fixture.json: num_local_experts: 4 contradicts num_experts 8"});
  cases.push_back({with(q, {{"moe_intermediate_size", nullptr}}), "fixture.json: moe_intermediate_size: missing"});
  json q3 = base("qwen3_moe");
  q3.update(json{{"num_local_experts", 8}, {"num_experts_per_tok", 2}, {"moe_intermediate_size", 32}});
  cases.push_back({with(q3, {{"num_experts_per_tok", 10}}), "fixture.json: num_experts_per_tok: 10 exceeds num_local_experts 8"});
  cases.push_back({with(q3, {{"shared_expert_intermediate_size", 64}}), "fixture.json: shared_expert_intermediate_size: Qwen3-MoE has no"});
  for (const Case& c : cases) {
    const std::string msg = parse_error(c.j);
    EXPECT_EQ(msg.rfind(c.want, 0), 0u) << "got: " << msg << "\nwant prefix: " << c.want;
    EXPECT_EQ(msg.find('\n'), std::string::npos);
  }
}

}  // namespace
}  // namespace tern
