#include "model/llama_family.h"

#include <fmt/format.h>

#include <cmath>

#include "model/blocks/embedding.h"

namespace tern {

Result<Activation> activation_from_config(const ModelConfig& cfg) {
  if (cfg.hidden_act == "silu") return Activation::kSilu;
  if (cfg.hidden_act == "gelu_pytorch_tanh" || cfg.hidden_act == "gelu_new") return Activation::kGeluTanh;
  return Status::error(
      fmt::format("hidden_act '{}' is not supported (silu, gelu_pytorch_tanh, gelu_new)", cfg.hidden_act));
}

int layer_sliding_window(const ModelConfig& cfg, int layer, bool everywhere) {
  if (!cfg.layer_types.empty()) return cfg.layer_types[size_t(layer)] == "sliding_attention" ? cfg.sliding_window : 0;
  return everywhere ? cfg.sliding_window : 0;
}

float attention_scale(const ModelConfig& cfg) {
  // transformers: scaling = x ** -0.5 in Python (double), applied to fp32 scores as a float.
  const double x = cfg.query_pre_attn_scalar > 0 ? cfg.query_pre_attn_scalar : double(cfg.head_dim);
  return float(std::pow(x, -0.5));
}

namespace {

Result<NormWeights> rms(WeightBinder& b, const std::string& name, int64_t n, const ModelConfig& cfg, bool plus_one) {
  NormWeights w;
  w.eps = float(cfg.rms_norm_eps);
  TERN_ASSIGN_OR_RETURN(w.weight, b.vector_f32(name, n));
  if (plus_one) {  // Gemma: x · (1 + w), with 1 + w in f32 as Gemma2RMSNorm computes it
    for (float& x : w.weight) x = 1.f + x;
    w.stored_offset = 1.f;
  }
  return w;
}

Status bind_attention(WeightBinder& b, const ModelConfig& cfg, const LlamaFamilyOptions& opt, const std::string& p,
                      int layer, AttentionWeights& a) {
  const int64_t hidden = cfg.hidden_size, q_dim = int64_t(cfg.n_heads) * cfg.head_dim,
                kv_dim = int64_t(cfg.n_kv_heads) * cfg.head_dim;
  if (opt.fused_qkv) {
    TERN_ASSIGN_OR_RETURN(auto qkv, b.matrix_parts(p + "qkv_proj.weight", {q_dim, kv_dim, kv_dim}, hidden));
    a.q = qkv[0], a.k = qkv[1], a.v = qkv[2];
    if (opt.qkv_bias) {
      TERN_ASSIGN_OR_RETURN(auto bias, b.vector_parts(p + "qkv_proj.bias", {q_dim, kv_dim, kv_dim}));
      a.q_bias = bias[0], a.k_bias = bias[1], a.v_bias = bias[2];
    }
  } else {
    TERN_ASSIGN_OR_RETURN(a.q, b.matrix(p + "q_proj.weight", q_dim, hidden));
    TERN_ASSIGN_OR_RETURN(a.k, b.matrix(p + "k_proj.weight", kv_dim, hidden));
    TERN_ASSIGN_OR_RETURN(a.v, b.matrix(p + "v_proj.weight", kv_dim, hidden));
    if (opt.qkv_bias) {
      TERN_ASSIGN_OR_RETURN(a.q_bias, b.vector_f32(p + "q_proj.bias", q_dim));
      TERN_ASSIGN_OR_RETURN(a.k_bias, b.vector_f32(p + "k_proj.bias", kv_dim));
      TERN_ASSIGN_OR_RETURN(a.v_bias, b.vector_f32(p + "v_proj.bias", kv_dim));
    }
  }
  TERN_ASSIGN_OR_RETURN(a.o, b.matrix(p + "o_proj.weight", hidden, q_dim));
  if (opt.qk_norm) {
    TERN_ASSIGN_OR_RETURN(a.q_norm, rms(b, p + "q_norm.weight", cfg.head_dim, cfg, false));
    TERN_ASSIGN_OR_RETURN(a.k_norm, rms(b, p + "k_norm.weight", cfg.head_dim, cfg, false));
  }
  b.ignore_if_present(p + "rotary_emb.inv_freq");  // a buffer some old checkpoints saved
  a.rope = opt.rope;
  a.scale = attention_scale(cfg);
  a.softcap = float(cfg.attn_logit_softcapping);
  a.sliding_window = layer_sliding_window(cfg, layer, opt.sliding_window);
  return Status::ok();
}

Status bind_mlp(WeightBinder& b, const ModelConfig& cfg, const LlamaFamilyOptions& opt, const std::string& p,
                FeedForwardWeights& m) {
  const int64_t hidden = cfg.hidden_size, inter = cfg.intermediate_size;
  TERN_ASSIGN_OR_RETURN(m.act, activation_from_config(cfg));
  if (opt.fused_gate_up) {
    TERN_ASSIGN_OR_RETURN(auto gu, b.matrix_parts(p + "gate_up_proj.weight", {inter, inter}, hidden));
    m.gate = gu[0], m.up = gu[1];
  } else {
    TERN_ASSIGN_OR_RETURN(m.gate, b.matrix(p + "gate_proj.weight", inter, hidden));
    TERN_ASSIGN_OR_RETURN(m.up, b.matrix(p + "up_proj.weight", inter, hidden));
  }
  TERN_ASSIGN_OR_RETURN(m.down, b.matrix(p + "down_proj.weight", hidden, inter));
  return Status::ok();
}

}  // namespace

Result<TransformerWeights> bind_llama_family(WeightBinder& b, const ModelConfig& cfg, const LlamaFamilyOptions& opt) {
  if (cfg.mlp_bias) return Status::error("mlp_bias=true is not supported");
  if (cfg.moe.enabled() && !opt.moe) {
    return Status::error(fmt::format("architecture {} has no mixture-of-experts layers, but config.json "
                                     "describes experts", cfg.architecture));
  }
  TransformerWeights w;
  TERN_ASSIGN_OR_RETURN(w.embed, b.matrix("model.embed_tokens.weight", cfg.vocab_size, cfg.hidden_size));
  // embedding_lookup reads dense, GGUF and int8-per-row tables; a 4-bit embedding has no lookup kernel.
  if (w.embed.format != WeightFormat::Dense && w.embed.format != WeightFormat::Gguf &&
      w.embed.format != WeightFormat::Int8Channel)
    return Status::error("model.embed_tokens: only an int8 per-row quantized embedding is supported");
  w.embed_scale = opt.embed_scale;
  const bool p1 = opt.norm_plus_one;
  const int64_t H = cfg.hidden_size;
  w.layers.resize(size_t(cfg.n_layers));
  for (int i = 0; i < cfg.n_layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    DecoderLayerWeights& l = w.layers[size_t(i)];
    TERN_ASSIGN_OR_RETURN(l.attn_norm, rms(b, p + "input_layernorm.weight", H, cfg, p1));
    TERN_RETURN_IF_ERROR(bind_attention(b, cfg, opt, p + "self_attn.", i, l.attn));
    if (opt.attn_out_norm) {
      TERN_ASSIGN_OR_RETURN(l.attn_out_norm, rms(b, p + opt.attn_out_norm + ".weight", H, cfg, p1));
    }
    TERN_ASSIGN_OR_RETURN(l.ffn_norm, rms(b, p + opt.ffn_norm + ".weight", H, cfg, p1));
    if (opt.moe && cfg.moe.is_moe_layer(i)) {
      TERN_ASSIGN_OR_RETURN(MoeWeights moe, bind_moe(b, cfg, p + opt.moe_module + ".", *opt.moe));
      l.moe = std::make_shared<const MoeWeights>(std::move(moe));
    } else {
      TERN_RETURN_IF_ERROR(bind_mlp(b, cfg, opt, p + "mlp.", l.mlp));
    }
    if (opt.ffn_out_norm) {
      TERN_ASSIGN_OR_RETURN(l.ffn_out_norm, rms(b, p + opt.ffn_out_norm + ".weight", H, cfg, p1));
    }
  }
  TERN_ASSIGN_OR_RETURN(w.final_norm, rms(b, "model.norm.weight", H, cfg, p1));
  TERN_ASSIGN_OR_RETURN(w.lm_head, bind_lm_head(b, cfg, w.embed));
  w.final_logit_softcap = float(cfg.final_logit_softcapping);
  TERN_RETURN_IF_ERROR(b.check_all_used());
  return w;
}

}  // namespace tern
