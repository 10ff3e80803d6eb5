// DeepSeek-V3 (DeepseekV3ForCausalLM; also Kimi-K2's layout): per layer an RMSNorm, multi-head latent
// attention (blocks/mla_attention.h: q/kv LoRA projections, decoupled rope dims, the KV pool holds the
// latent + rope key), an RMSNorm, then a dense SwiGLU MLP for the first first_k_dense_replace layers and
// the DeepSeek mixture of experts (blocks/moe.h: sigmoid scores + e_score_correction_bias, group-limited
// top-k, routed_scaling_factor, n_shared_experts) after them.
#include <fmt/format.h>

#include <memory>

#include "model/blocks/embedding.h"
#include "model/archs/architectures.h"
#include "model/blocks/mla_attention.h"
#include "model/blocks/moe.h"

namespace tern {

namespace {

Result<NormWeights> rms(WeightBinder& b, const std::string& name, int64_t n, double eps) {
  NormWeights w;
  w.eps = float(eps);
  TERN_ASSIGN_OR_RETURN(w.weight, b.vector_f32(name, n));
  return w;
}

}  // namespace

Result<TransformerWeights> build_deepseek_v3(WeightBinder& b, const ModelConfig& cfg) {
  if (!cfg.mla.enabled()) return Status::error("DeepseekV3ForCausalLM: config.json has no kv_lora_rank");
  if (!cfg.moe.enabled()) return Status::error("DeepseekV3ForCausalLM: config.json has no n_routed_experts");
  if (cfg.hidden_act != "silu") {
    return Status::error(fmt::format("hidden_act '{}' is not supported (silu only)", cfg.hidden_act));
  }
  const int64_t H = cfg.hidden_size;
  TransformerWeights w;
  TERN_ASSIGN_OR_RETURN(w.embed, b.matrix("model.embed_tokens.weight", cfg.vocab_size, H));
  w.layers.resize(size_t(cfg.n_layers));
  for (int i = 0; i < cfg.n_layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    DecoderLayerWeights& l = w.layers[size_t(i)];
    TERN_ASSIGN_OR_RETURN(l.attn_norm, rms(b, p + "input_layernorm.weight", H, cfg.rms_norm_eps));
    TERN_ASSIGN_OR_RETURN(l.ffn_norm, rms(b, p + "post_attention_layernorm.weight", H, cfg.rms_norm_eps));
    auto mla = std::make_shared<MlaWeights>();
    TERN_RETURN_IF_ERROR(bind_mla_attention(b, cfg, p + "self_attn.", mla.get()));
    l.mla = std::move(mla);
    if (cfg.moe.is_moe_layer(i)) {
      MoeTensorNames names;
      names.shared = "shared_experts";
      TERN_ASSIGN_OR_RETURN(MoeWeights moe, bind_moe(b, cfg, p + "mlp.", names));
      l.moe = std::make_shared<const MoeWeights>(std::move(moe));
    } else {
      const int64_t I = cfg.intermediate_size;
      TERN_ASSIGN_OR_RETURN(l.mlp.gate, b.matrix(p + "mlp.gate_proj.weight", I, H));
      TERN_ASSIGN_OR_RETURN(l.mlp.up, b.matrix(p + "mlp.up_proj.weight", I, H));
      TERN_ASSIGN_OR_RETURN(l.mlp.down, b.matrix(p + "mlp.down_proj.weight", H, I));
    }
  }
  // Multi-token-prediction modules (num_nextn_predict_layers, stored as the layers after the last
  // decoder layer: model.layers.61.* in DeepSeek-V3) predict further tokens for training and
  // speculative decoding; plain decoding does not run them, so they are skipped, by name, here only.
  for (int i = 0; i < cfg.mla.nextn_predict_layers; ++i) {
    b.ignore_prefix(fmt::format("model.layers.{}.", cfg.n_layers + i));
  }
  TERN_ASSIGN_OR_RETURN(w.final_norm, rms(b, "model.norm.weight", H, cfg.rms_norm_eps));
  TERN_ASSIGN_OR_RETURN(w.lm_head, bind_lm_head(b, cfg, w.embed));
  TERN_RETURN_IF_ERROR(b.check_all_used());
  return w;
}

}  // namespace tern
