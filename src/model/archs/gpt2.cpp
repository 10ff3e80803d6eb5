// GPT-2 (GPT2LMHeadModel): learned absolute positions (wpe) instead of a rotary embedding,
// LayerNorm with bias before attention, before the MLP and at the end (ln_1, ln_2, ln_f),
// multi-head attention from one fused projection c_attn (q, k, v) with biases and an output
// projection c_proj with bias, and a plain MLP c_fc → gelu_new → c_proj with biases. Every
// matrix is a Conv1D stored [in, out], transposed at load. Tied LM head.
// Tensor names: "transformer.h.N...." (GPT2LMHeadModel) or "h.N...." (a saved GPT2Model).
#include <fmt/format.h>

#include "model/blocks/embedding.h"
#include "model/archs/architectures.h"
#include "model/llama_family.h"

namespace tern {

namespace {

Result<NormWeights> layer_norm(WeightBinder& b, const std::string& p, int64_t n, const ModelConfig& cfg) {
  NormWeights w;
  w.kind = NormKind::kLayer;
  w.eps = float(cfg.rms_norm_eps);  // layer_norm_epsilon
  TERN_ASSIGN_OR_RETURN(w.weight, b.vector_f32(p + ".weight", n));
  TERN_ASSIGN_OR_RETURN(w.bias, b.vector_f32(p + ".bias", n));
  return w;
}

// Conv1D p: weight [in, out] -> [out, in], bias [out].
Status conv1d(WeightBinder& b, const std::string& p, int64_t in, int64_t out, WeightMatrix& w,
              std::vector<float>& bias) {
  TERN_ASSIGN_OR_RETURN(auto m, b.matrix_parts(p + ".weight", {out}, in, /*transposed=*/true));
  w = m[0];
  TERN_ASSIGN_OR_RETURN(bias, b.vector_f32(p + ".bias", out));
  return Status::ok();
}

}  // namespace

Result<TransformerWeights> build_gpt2(WeightBinder& b, const ModelConfig& cfg) {
  const std::string root = b.has("transformer.wte.weight") ? "transformer." : "";
  const int64_t H = cfg.hidden_size, I = cfg.intermediate_size;
  if (cfg.n_kv_heads != cfg.n_heads) return Status::error("gpt2: num_key_value_heads must equal n_head");
  TransformerWeights w;
  TERN_ASSIGN_OR_RETURN(w.embed, b.matrix(root + "wte.weight", cfg.vocab_size, H));
  TERN_ASSIGN_OR_RETURN(w.pos_embed, b.matrix(root + "wpe.weight", cfg.max_position_embeddings, H));
  TERN_ASSIGN_OR_RETURN(const Activation act, activation_from_config(cfg));
  if (act != Activation::kGeluTanh) {
    return Status::error(fmt::format("gpt2: activation_function '{}' is not supported (gelu_new)", cfg.hidden_act));
  }
  w.layers.resize(size_t(cfg.n_layers));
  for (int i = 0; i < cfg.n_layers; ++i) {
    const std::string p = fmt::format("{}h.{}.", root, i);
    DecoderLayerWeights& l = w.layers[size_t(i)];
    TERN_ASSIGN_OR_RETURN(l.attn_norm, layer_norm(b, p + "ln_1", H, cfg));
    AttentionWeights& a = l.attn;
    TERN_ASSIGN_OR_RETURN(auto qkv, b.matrix_parts(p + "attn.c_attn.weight", {H, H, H}, H, /*transposed=*/true));
    a.q = qkv[0], a.k = qkv[1], a.v = qkv[2];
    TERN_ASSIGN_OR_RETURN(auto qkv_bias, b.vector_parts(p + "attn.c_attn.bias", {H, H, H}));
    a.q_bias = qkv_bias[0], a.k_bias = qkv_bias[1], a.v_bias = qkv_bias[2];
    TERN_RETURN_IF_ERROR(conv1d(b, p + "attn.c_proj", H, H, a.o, a.o_bias));
    a.rope = RopeLayout::kNone;
    a.scale = cfg.scale_attn_weights ? attention_scale(cfg) : 1.f;
    b.ignore_if_present(p + "attn.bias");  // the causal-mask buffer older checkpoints saved
    b.ignore_if_present(p + "attn.masked_bias");
    TERN_ASSIGN_OR_RETURN(l.ffn_norm, layer_norm(b, p + "ln_2", H, cfg));
    FeedForwardWeights& m = l.mlp;
    m.gated = false;
    m.act = act;
    TERN_RETURN_IF_ERROR(conv1d(b, p + "mlp.c_fc", H, I, m.up, m.up_bias));
    TERN_RETURN_IF_ERROR(conv1d(b, p + "mlp.c_proj", I, H, m.down, m.down_bias));
  }
  TERN_ASSIGN_OR_RETURN(w.final_norm, layer_norm(b, root + "ln_f", H, cfg));
  TERN_ASSIGN_OR_RETURN(w.lm_head, bind_lm_head(b, cfg, w.embed));
  TERN_RETURN_IF_ERROR(b.check_all_used());
  return w;
}

}  // namespace tern
