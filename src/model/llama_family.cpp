#include "model/llama_family.h"

#include <fmt/format.h>

namespace tern {

namespace {

Result<NormWeights> rms(WeightBinder& b, const std::string& name, int64_t n, double eps) {
  NormWeights w;
  w.eps = float(eps);
  TERN_ASSIGN_OR_RETURN(w.weight, b.vector_f32(name, n));
  return w;
}

Status bind_attention(WeightBinder& b, const ModelConfig& cfg, const LlamaFamilyOptions& opt, const std::string& p,
                      AttentionWeights& a) {
  const int64_t hidden = cfg.hidden_size, q_dim = int64_t(cfg.n_heads) * cfg.head_dim,
                kv_dim = int64_t(cfg.n_kv_heads) * cfg.head_dim;
  TERN_ASSIGN_OR_RETURN(a.q, b.matrix(p + "q_proj.weight", q_dim, hidden));
  TERN_ASSIGN_OR_RETURN(a.k, b.matrix(p + "k_proj.weight", kv_dim, hidden));
  TERN_ASSIGN_OR_RETURN(a.v, b.matrix(p + "v_proj.weight", kv_dim, hidden));
  TERN_ASSIGN_OR_RETURN(a.o, b.matrix(p + "o_proj.weight", hidden, q_dim));
  if (opt.qkv_bias) {
    TERN_ASSIGN_OR_RETURN(a.q_bias, b.vector_f32(p + "q_proj.bias", q_dim));
    TERN_ASSIGN_OR_RETURN(a.k_bias, b.vector_f32(p + "k_proj.bias", kv_dim));
    TERN_ASSIGN_OR_RETURN(a.v_bias, b.vector_f32(p + "v_proj.bias", kv_dim));
  }
  if (opt.qk_norm) {
    TERN_ASSIGN_OR_RETURN(a.q_norm, rms(b, p + "q_norm.weight", cfg.head_dim, cfg.rms_norm_eps));
    TERN_ASSIGN_OR_RETURN(a.k_norm, rms(b, p + "k_norm.weight", cfg.head_dim, cfg.rms_norm_eps));
  }
  b.ignore_if_present(p + "rotary_emb.inv_freq");  // a buffer some old checkpoints saved
  a.sliding_window = opt.sliding_window ? cfg.sliding_window : 0;
  return Status::ok();
}

Status bind_mlp(WeightBinder& b, const ModelConfig& cfg, const std::string& p, FeedForwardWeights& m) {
  TERN_ASSIGN_OR_RETURN(m.gate, b.matrix(p + "gate_proj.weight", cfg.intermediate_size, cfg.hidden_size));
  TERN_ASSIGN_OR_RETURN(m.up, b.matrix(p + "up_proj.weight", cfg.intermediate_size, cfg.hidden_size));
  TERN_ASSIGN_OR_RETURN(m.down, b.matrix(p + "down_proj.weight", cfg.hidden_size, cfg.intermediate_size));
  return Status::ok();
}

}  // namespace

Result<TransformerWeights> bind_llama_family(WeightBinder& b, const ModelConfig& cfg,
                                             const LlamaFamilyOptions& opt) {
  if (cfg.hidden_act != "silu") {
    return Status::error(fmt::format("hidden_act '{}' is not supported (silu only)", cfg.hidden_act));
  }
  if (cfg.mlp_bias) return Status::error("mlp_bias=true is not supported");
  TransformerWeights w;
  TERN_ASSIGN_OR_RETURN(w.embed, b.matrix("model.embed_tokens.weight", cfg.vocab_size, cfg.hidden_size));
  // embedding_lookup reads dense, GGUF and int8-per-row tables; a 4-bit embedding has no lookup kernel.
  if (w.embed.format != WeightFormat::Dense && w.embed.format != WeightFormat::Gguf &&
      w.embed.format != WeightFormat::Int8Channel)
    return Status::error("model.embed_tokens: only an int8 per-row quantized embedding is supported");
  w.layers.resize(size_t(cfg.n_layers));
  for (int i = 0; i < cfg.n_layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    DecoderLayerWeights& l = w.layers[size_t(i)];
    TERN_ASSIGN_OR_RETURN(l.attn_norm, rms(b, p + "input_layernorm.weight", cfg.hidden_size, cfg.rms_norm_eps));
    TERN_ASSIGN_OR_RETURN(l.ffn_norm, rms(b, p + "post_attention_layernorm.weight", cfg.hidden_size, cfg.rms_norm_eps));
    TERN_RETURN_IF_ERROR(bind_attention(b, cfg, opt, p + "self_attn.", l.attn));
    TERN_RETURN_IF_ERROR(bind_mlp(b, cfg, p + "mlp.", l.mlp));
  }
  TERN_ASSIGN_OR_RETURN(w.final_norm, rms(b, "model.norm.weight", cfg.hidden_size, cfg.rms_norm_eps));
  // Tied checkpoints usually omit lm_head.weight; some save it anyway (then it must be used, not ignored).
  if (cfg.tie_word_embeddings && !b.has("lm_head.weight")) {
    w.lm_head = w.embed;
  } else {
    TERN_ASSIGN_OR_RETURN(w.lm_head, b.matrix("lm_head.weight", cfg.vocab_size, cfg.hidden_size));
  }
  TERN_RETURN_IF_ERROR(b.check_all_used());
  return w;
}

}  // namespace tern
