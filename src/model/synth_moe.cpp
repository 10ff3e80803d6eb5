#include "model/synth_moe.h"

#include <fmt/format.h>

namespace tern {

void add_moe_synth_shapes(std::vector<SynthShape>& s) {
  // Published configs: Mixtral-8x7B-v0.1, Qwen3-30B-A3B, DeepSeek-V3.
  SynthShape mix{"mixtral-8x7b", "MixtralForCausalLM", "mixtral", 4096, 14336, 32000, 32768, 32, 32, 8, 128};
  mix.rope_theta = 1e6, mix.n_experts = 8, mix.top_k = 2, mix.moe_intermediate = 14336;
  s.push_back(mix);

  SynthShape q3{"qwen3-30b-a3b", "Qwen3MoeForCausalLM", "qwen3_moe", 2048, 6144, 151936, 40960, 48, 32, 4, 128};
  q3.rope_theta = 1e6, q3.rms_eps = 1e-6, q3.qk_norm = true, q3.bos = 151643, q3.eos = 151645;
  q3.n_experts = 128, q3.top_k = 8, q3.moe_intermediate = 768, q3.norm_topk = true;
  s.push_back(q3);
  // The same widths (attention, 128 experts of 768, top-8, vocabulary) in 4 layers: 3.1B parameters,
  // 6.2 GB in bf16, which fits this host; a token reads 0.54B of them (2 KV heads' worth of
  // attention, 8 of 128 experts, router, head).
  SynthShape q3s = q3;
  q3s.name = "qwen3-30b-a3b-4l", q3s.layers = 4;
  s.push_back(q3s);

  SynthShape ds{"deepseek-v3", "DeepseekV3ForCausalLM", "deepseek_v3", 7168, 18432, 129280, 163840, 61, 128, 128, 0};
  ds.rms_eps = 1e-6, ds.bos = 0, ds.eos = 1;
  ds.n_experts = 256, ds.top_k = 8, ds.moe_intermediate = 2048, ds.n_shared_experts = 1, ds.norm_topk = true;
  ds.first_k_dense = 3, ds.n_group = 8, ds.topk_group = 4, ds.routed_scaling = 2.5;
  ds.q_lora_rank = 1536, ds.kv_lora_rank = 512, ds.qk_nope_dim = 128, ds.qk_rope_dim = 64, ds.v_head_dim = 128;
  s.push_back(ds);
}

void add_moe_config_fields(const SynthShape& s, nlohmann::ordered_json& j) {
  if (s.n_experts > 0) {
    j["num_experts_per_tok"] = s.top_k;
    if (s.model_type == "mixtral") {
      j["num_local_experts"] = s.n_experts;
      j["router_aux_loss_coef"] = 0.02;
      j["sliding_window"] = nullptr;
    } else if (s.model_type == "qwen2_moe" || s.model_type == "qwen3_moe") {
      j["num_experts"] = s.n_experts;
      j["moe_intermediate_size"] = s.moe_intermediate;
      j["norm_topk_prob"] = s.norm_topk;
      j["decoder_sparse_step"] = 1;
      j["mlp_only_layers"] = nlohmann::ordered_json::array();
      if (s.model_type == "qwen2_moe") j["shared_expert_intermediate_size"] = s.shared_intermediate;
      j["use_sliding_window"] = false;
    } else if (s.model_type == "deepseek_v3") {
      j["n_routed_experts"] = s.n_experts;
      j["n_shared_experts"] = s.n_shared_experts;
      j["moe_intermediate_size"] = s.moe_intermediate;
      j["n_group"] = s.n_group;
      j["topk_group"] = s.topk_group;
      j["routed_scaling_factor"] = s.routed_scaling;
      j["first_k_dense_replace"] = s.first_k_dense;
      j["norm_topk_prob"] = s.norm_topk;
      j["scoring_func"] = "sigmoid";
      j["topk_method"] = "noaux_tc";
      j["moe_layer_freq"] = 1;
    }
  }
  if (s.kv_lora_rank > 0) {
    j.erase("head_dim");  // DeepSeek's config has none: the head dims are the three below
    j["q_lora_rank"] = s.q_lora_rank;
    j["kv_lora_rank"] = s.kv_lora_rank;
    j["qk_nope_head_dim"] = s.qk_nope_dim;
    j["qk_rope_head_dim"] = s.qk_rope_dim;
    j["v_head_dim"] = s.v_head_dim;
    j["rope_scaling"] = {{"type", "yarn"},
                         {"factor", 40},
                         {"beta_fast", 32},
                         {"beta_slow", 1},
                         {"mscale", 1.0},
                         {"mscale_all_dim", 1.0},
                         {"original_max_position_embeddings", 4096}};
  }
}

bool add_mla_tensors(const SynthShape& s, const std::string& p, std::vector<SynthTensor>& t) {
  if (s.kv_lora_rank <= 0) return false;
  const int64_t h = s.heads;
  if (s.q_lora_rank > 0) {
    t.push_back({p + "self_attn.q_a_proj.weight", {s.q_lora_rank, s.hidden}});
    t.push_back({p + "self_attn.q_a_layernorm.weight", {s.q_lora_rank}, true});
    t.push_back({p + "self_attn.q_b_proj.weight", {h * (s.qk_nope_dim + s.qk_rope_dim), s.q_lora_rank}});
  } else {
    t.push_back({p + "self_attn.q_proj.weight", {h * (s.qk_nope_dim + s.qk_rope_dim), s.hidden}});
  }
  t.push_back({p + "self_attn.kv_a_proj_with_mqa.weight", {s.kv_lora_rank + s.qk_rope_dim, s.hidden}});
  t.push_back({p + "self_attn.kv_a_layernorm.weight", {s.kv_lora_rank}, true});
  t.push_back({p + "self_attn.kv_b_proj.weight", {h * (s.qk_nope_dim + s.v_head_dim), s.kv_lora_rank}});
  t.push_back({p + "self_attn.o_proj.weight", {s.hidden, h * s.v_head_dim}});
  return true;
}

bool add_moe_tensors(const SynthShape& s, int layer, const std::string& p, std::vector<SynthTensor>& t) {
  if (s.n_experts <= 0 || layer < s.first_k_dense) return false;
  const bool mixtral = s.model_type == "mixtral";
  const std::string moe = p + (mixtral ? "block_sparse_moe." : "mlp.");
  const char* gate = mixtral ? "w1" : "gate_proj";
  const char* up = mixtral ? "w3" : "up_proj";
  const char* down = mixtral ? "w2" : "down_proj";
  auto mlp = [&](const std::string& q, int64_t inter) {
    t.push_back({fmt::format("{}{}.weight", q, gate), {inter, s.hidden}});
    t.push_back({fmt::format("{}{}.weight", q, up), {inter, s.hidden}});
    t.push_back({fmt::format("{}{}.weight", q, down), {s.hidden, inter}});
  };
  t.push_back({moe + "gate.weight", {s.n_experts, s.hidden}});
  if (s.model_type == "deepseek_v3") t.push_back({moe + "gate.e_score_correction_bias", {s.n_experts}});
  for (int e = 0; e < s.n_experts; ++e) mlp(fmt::format("{}experts.{}.", moe, e), s.moe_intermediate);
  if (s.shared_intermediate > 0) {
    mlp(moe + "shared_expert.", s.shared_intermediate);
    t.push_back({moe + "shared_expert_gate.weight", {1, s.hidden}});
  }
  if (s.n_shared_experts > 0) mlp(moe + "shared_experts.", s.n_shared_experts * s.moe_intermediate);
  return true;
}

}  // namespace tern
