// gguf_config.h, the export half: a ModelConfig as the <arch>.* keys llama.cpp reads.
#include <fmt/format.h>

#include "formats/gguf/gguf_config.h"

namespace tern {

namespace {

bool is(const GgufArch& a, const char* hf) { return std::string(a.hf) == hf; }

// Writes the keys; `p` is "<arch>.".
class KeyWriter {
 public:
  KeyWriter(const std::string& arch, GgufMetadata* kv) : p_(arch + "."), kv_(kv) {}
  void u32(const std::string& key, int64_t v) { kv_->emplace_back(p_ + key, GgufValue::make_u32(uint32_t(v))); }
  void f32(const std::string& key, double v) { kv_->emplace_back(p_ + key, GgufValue::make_f32(float(v))); }
  void str(const std::string& key, const std::string& v) { kv_->emplace_back(p_ + key, GgufValue::make_string(v)); }
  void flag(const std::string& key, bool v) { kv_->emplace_back(p_ + key, GgufValue::make_bool(v)); }

 private:
  std::string p_;
  GgufMetadata* kv_;
};

Status moe_metadata(const ModelConfig& c, const GgufArch& a, const std::string& src, KeyWriter& w) {
  const MoeConfig& m = c.moe;
  if (!m.enabled()) return Status::error(fmt::format("{}: {} without experts cannot be exported", src, a.hf));
  auto refuse = [&](const std::string& what) {
    return Status::error(fmt::format("{}: GGUF export: {} (llama.cpp's {} graph has no such setting)", src, what, a.gguf));
  };
  if (is(a, "Qwen3MoeForCausalLM") && !m.norm_topk_prob) return refuse("norm_topk_prob=false");
  if (is(a, "Qwen2MoeForCausalLM") && m.norm_topk_prob) return refuse("norm_topk_prob=true");
  if (m.n_moe_layers(c.n_layers) != c.n_layers) return refuse("dense layers between MoE layers (mlp_only_layers, decoder_sparse_step)");
  w.u32("expert_count", m.n_experts);
  w.u32("expert_used_count", m.top_k);
  if (!is(a, "MixtralForCausalLM")) w.u32("expert_feed_forward_length", m.expert_intermediate);
  if (is(a, "Qwen2MoeForCausalLM")) {
    if (m.shared_intermediate <= 0 || !m.shared_expert_gate) return refuse("a Qwen2-MoE without its gated shared expert");
    w.u32("expert_shared_feed_forward_length", m.shared_intermediate);
  }
  return Status::ok();
}

// Gemma 2's soft-caps, window and the layer pattern / score scale llama.cpp assumes.
Status gemma2_metadata(const ModelConfig& c, const std::string& src, KeyWriter& w) {
  for (int i = 0; i < c.n_layers; ++i) {
    const bool sliding = c.layer_types.empty() ? i % 2 == 0 : c.layer_types[size_t(i)] == "sliding_attention";
    if (sliding != (i % 2 == 0)) {
      return Status::error(fmt::format("{}: GGUF export: layer_types must alternate sliding / full from layer 0 "
                                       "(llama.cpp's gemma2 pattern)", src));
    }
  }
  const double scale = c.n_layers == 46 ? double(c.hidden_size / c.n_heads) : double(c.head_dim);
  if (c.query_pre_attn_scalar > 0 && c.query_pre_attn_scalar != scale) {
    return Status::error(fmt::format("{}: GGUF export: query_pre_attn_scalar {} differs from the {} llama.cpp's gemma2 "
                                     "graph uses", src, c.query_pre_attn_scalar, scale));
  }
  w.f32("attn_logit_softcapping", c.attn_logit_softcapping);
  w.f32("final_logit_softcapping", c.final_logit_softcapping);
  w.u32("attention.sliding_window", c.sliding_window > 0 ? c.sliding_window : 4096);
  return Status::ok();
}

// yarn as llama.cpp's deepseek2 graph can reproduce it: mscale_all_dim stored (as 0.1 · it), mscale
// implied (1, or mscale_all_dim when that is not 1), no explicit attention_factor, truncated ranges.
Status deepseek2_yarn_metadata(const ModelConfig& c, const std::string& src, KeyWriter& w) {
  if (c.rope_type == "default") return Status::ok();
  const RopeConfig& r = c.rope;
  auto refuse = [&](const std::string& what) {
    return Status::error(fmt::format("{}: GGUF export: {} (llama.cpp's deepseek2 graph cannot reproduce it)", src, what));
  };
  if (c.rope_type != "yarn") return refuse("rope type " + c.rope_type);
  if (r.yarn_attention_factor > 0) return refuse("rope_scaling.attention_factor");
  if (!r.yarn_truncate) return refuse("rope_scaling.truncate=false");
  if (!(r.yarn_mscale_all_dim > 0)) return refuse("yarn without mscale_all_dim");
  const double mscale = r.yarn_mscale > 0 ? r.yarn_mscale : 1.0;
  const double implied = r.yarn_mscale_all_dim != 1.0 ? r.yarn_mscale_all_dim : 1.0;
  if (mscale != implied) return refuse(fmt::format("rope_scaling.mscale {} with mscale_all_dim {}", mscale, r.yarn_mscale_all_dim));
  w.str("rope.scaling.type", "yarn");
  w.f32("rope.scaling.factor", r.yarn_factor);
  w.u32("rope.scaling.original_context_length", int64_t(r.yarn_original_max_position));
  w.f32("rope.scaling.yarn_beta_fast", r.yarn_beta_fast);
  w.f32("rope.scaling.yarn_beta_slow", r.yarn_beta_slow);
  w.f32("rope.scaling.yarn_log_multiplier", 0.1 * r.yarn_mscale_all_dim);
  return Status::ok();
}

// The keys llama.cpp's converter writes for DeepSeek-V3 (MLA in its absorbed MQA form).
Status deepseek2_metadata(const ModelConfig& c, const std::string& src, KeyWriter& w) {
  const MlaConfig& a = c.mla;
  const MoeConfig& m = c.moe;
  TERN_RETURN_IF_ERROR(deepseek2_yarn_metadata(c, src, w));
  if (!a.rope_interleave) return Status::error(src + ": GGUF export: rope_interleave=false is not supported (llama.cpp's deepseek2 rope is interleaved)");
  if (m.expert_intermediate <= 0 || m.shared_intermediate % m.expert_intermediate != 0) {
    return Status::error(src + ": GGUF export: the shared expert width is not a multiple of moe_intermediate_size");
  }
  w.u32("attention.head_count_kv", 1);
  w.u32("attention.key_length", a.kv_lora_rank + a.qk_rope_head_dim);
  w.u32("attention.value_length", a.kv_lora_rank);
  w.u32("attention.key_length_mla", a.qk_head_dim());
  w.u32("attention.value_length_mla", a.v_head_dim);
  w.f32("rope.freq_base", c.rope.theta);
  w.u32("rope.dimension_count", a.qk_rope_head_dim);
  w.f32("attention.layer_norm_rms_epsilon", c.rms_norm_eps);
  w.u32("vocab_size", c.vocab_size);
  w.u32("leading_dense_block_count", m.first_k_dense);
  if (a.q_lora_rank > 0) w.u32("attention.q_lora_rank", a.q_lora_rank);
  w.u32("attention.kv_lora_rank", a.kv_lora_rank);
  w.u32("expert_feed_forward_length", m.expert_intermediate);
  w.u32("expert_count", m.n_experts);
  w.u32("expert_used_count", m.top_k);
  w.u32("expert_shared_count", m.shared_intermediate / m.expert_intermediate);
  w.f32("expert_weights_scale", m.routed_scaling_factor);
  if (m.norm_topk_prob) w.flag("expert_weights_norm", true);
  w.u32("expert_gating_func", m.scoring == MoeScoring::kSigmoid ? 2 : 1);
  w.u32("expert_group_count", m.n_group);
  w.u32("expert_group_used_count", m.topk_group);
  return Status::ok();
}

}  // namespace

Status gguf_config_metadata(const ModelConfig& c, const GgufArch& a, const std::string& src, GgufMetadata* kv) {
  const bool gemma2 = is(a, "Gemma2ForCausalLM"), gpt2 = is(a, "GPT2LMHeadModel");
  if (c.sliding_window > 0 && !gemma2) {
    return Status::error(src + ": GGUF export of sliding-window attention is not supported (llama.cpp's " + a.gguf +
                         " graph has none)");
  }
  if (gpt2 && !c.scale_attn_weights) return Status::error(src + ": GGUF export: scale_attn_weights=false is not supported");
  if (c.attn_logit_softcapping > 0 && !gemma2) return Status::error(src + ": GGUF export: attn_logit_softcapping is not supported");
  const bool deepseek_yarn = is(a, "DeepseekV3ForCausalLM") && c.rope_type == "yarn";  // deepseek2_yarn_metadata
  if (c.rope_type != "default" && c.rope_type != "llama3" && c.rope_type != "linear" && !deepseek_yarn) {
    return Status::error(fmt::format("{}: GGUF export: rope type {} is not supported", src, c.rope_type));
  }
  if (c.mlp_bias) return Status::error(src + ": GGUF export: mlp_bias=true is not supported");
  kv->emplace_back("general.architecture", GgufValue::make_string(a.gguf));
  KeyWriter w(a.gguf, kv);
  w.u32("context_length", c.max_position_embeddings > 0 ? c.max_position_embeddings : 4096);
  w.u32("embedding_length", c.hidden_size);
  w.u32("block_count", c.n_layers);
  w.u32("feed_forward_length", c.intermediate_size);
  w.u32("attention.head_count", c.n_heads);
  if (is(a, "DeepseekV3ForCausalLM")) return deepseek2_metadata(c, src, w);
  w.u32("attention.head_count_kv", c.n_kv_heads);
  w.u32("attention.key_length", c.head_dim);
  w.u32("attention.value_length", c.head_dim);
  if (gpt2) {
    w.f32("attention.layer_norm_epsilon", c.rms_norm_eps);
  } else {
    w.f32("rope.freq_base", c.rope.theta);
    w.u32("rope.dimension_count", c.rope.rotary_dim);
    w.f32("attention.layer_norm_rms_epsilon", c.rms_norm_eps);
  }
  w.u32("vocab_size", c.vocab_size);
  if (c.rope_type == "linear") {
    w.str("rope.scaling.type", "linear");
    w.f32("rope.scaling.factor", c.rope.linear_factor);
  }
  if (gguf_arch_qwen_style_moe(a)) TERN_RETURN_IF_ERROR(moe_metadata(c, a, src, w));
  if (gemma2) TERN_RETURN_IF_ERROR(gemma2_metadata(c, src, w));
  return Status::ok();
}

}  // namespace tern
