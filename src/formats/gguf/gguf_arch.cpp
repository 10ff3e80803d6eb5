#include "formats/gguf/gguf_arch.h"

#include <cstdlib>

namespace tern {

namespace {

using Q = GgufQuirk;
using Names = std::vector<GgufTensorName>;

Names concat(std::initializer_list<Names> parts) {
  Names out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// Embedding, final norm and LM head of the "model.layers" layout.
Names ends(Q norm = Q::kNone) {
  return {{"model.embed_tokens.weight", "token_embd.weight"},
          {"model.norm.weight", "output_norm.weight", norm},
          {"lm_head.weight", "output.weight"}};
}

// Separate q/k/v/o with optional biases; `rope`: arch llama's q/k row interleave.
Names attention(bool rope, Q norm = Q::kNone) {
  const Q q = rope ? Q::kRopeQ : Q::kNone, k = rope ? Q::kRopeK : Q::kNone;
  return {{"model.layers.{L}.input_layernorm.weight", "blk.{L}.attn_norm.weight", norm},
          {"model.layers.{L}.self_attn.q_proj.weight", "blk.{L}.attn_q.weight", q},
          {"model.layers.{L}.self_attn.k_proj.weight", "blk.{L}.attn_k.weight", k},
          {"model.layers.{L}.self_attn.v_proj.weight", "blk.{L}.attn_v.weight"},
          {"model.layers.{L}.self_attn.o_proj.weight", "blk.{L}.attn_output.weight"},
          {"model.layers.{L}.self_attn.q_proj.bias", "blk.{L}.attn_q.bias", q},
          {"model.layers.{L}.self_attn.k_proj.bias", "blk.{L}.attn_k.bias", k},
          {"model.layers.{L}.self_attn.v_proj.bias", "blk.{L}.attn_v.bias"}};
}

Names qk_norm() {
  return {{"model.layers.{L}.self_attn.q_norm.weight", "blk.{L}.attn_q_norm.weight"},
          {"model.layers.{L}.self_attn.k_norm.weight", "blk.{L}.attn_k_norm.weight"}};
}

Names dense_mlp() {
  return {{"model.layers.{L}.post_attention_layernorm.weight", "blk.{L}.ffn_norm.weight"},
          {"model.layers.{L}.mlp.gate_proj.weight", "blk.{L}.ffn_gate.weight"},
          {"model.layers.{L}.mlp.up_proj.weight", "blk.{L}.ffn_up.weight"},
          {"model.layers.{L}.mlp.down_proj.weight", "blk.{L}.ffn_down.weight"}};
}

// Routed experts under model.layers.{L}.<module>. with the router <module>.gate.
Names experts(const std::string& module, const char* gate, const char* up, const char* down) {
  const std::string p = "model.layers.{L}." + module + ".";
  return {{p + "gate.weight", "blk.{L}.ffn_gate_inp.weight"},
          {p + "experts.{E}." + gate + ".weight", "blk.{L}.ffn_gate_exps.weight"},
          {p + "experts.{E}." + up + ".weight", "blk.{L}.ffn_up_exps.weight"},
          {p + "experts.{E}." + down + ".weight", "blk.{L}.ffn_down_exps.weight"}};
}

Names shared_expert(const char* module) {
  const std::string p = std::string("model.layers.{L}.mlp.") + module + ".";
  return {{p + "gate_proj.weight", "blk.{L}.ffn_gate_shexp.weight"},
          {p + "up_proj.weight", "blk.{L}.ffn_up_shexp.weight"},
          {p + "down_proj.weight", "blk.{L}.ffn_down_shexp.weight"}};
}

// Gemma 2: four RMSNorms per layer, all stored as 1 + w; tied LM head.
Names gemma2() {
  const Q p1 = Q::kNormPlusOne;
  return concat({ends(p1), attention(false, p1),
                 {{"model.layers.{L}.post_attention_layernorm.weight", "blk.{L}.post_attention_norm.weight", p1},
                  {"model.layers.{L}.pre_feedforward_layernorm.weight", "blk.{L}.ffn_norm.weight", p1},
                  {"model.layers.{L}.post_feedforward_layernorm.weight", "blk.{L}.post_ffw_norm.weight", p1},
                  {"model.layers.{L}.mlp.gate_proj.weight", "blk.{L}.ffn_gate.weight"},
                  {"model.layers.{L}.mlp.up_proj.weight", "blk.{L}.ffn_up.weight"},
                  {"model.layers.{L}.mlp.down_proj.weight", "blk.{L}.ffn_down.weight"}}});
}

// Phi-3: fused qkv and gate_up (llama.cpp keeps both fused: attn_qkv, ffn_up of 2·n_ff rows).
Names phi3() {
  return concat({ends(),
                 {{"model.layers.{L}.input_layernorm.weight", "blk.{L}.attn_norm.weight"},
                  {"model.layers.{L}.self_attn.qkv_proj.weight", "blk.{L}.attn_qkv.weight"},
                  {"model.layers.{L}.self_attn.o_proj.weight", "blk.{L}.attn_output.weight"},
                  {"model.layers.{L}.post_attention_layernorm.weight", "blk.{L}.ffn_norm.weight"},
                  {"model.layers.{L}.mlp.gate_up_proj.weight", "blk.{L}.ffn_up.weight"},
                  {"model.layers.{L}.mlp.down_proj.weight", "blk.{L}.ffn_down.weight"}}});
}

// GLM-4: q/k/v with biases, fused gate_up (ffn_up), norms after attention and after the MLP.
Names glm4() {
  return concat({ends(), attention(false),
                 {{"model.layers.{L}.post_self_attn_layernorm.weight", "blk.{L}.post_attention_norm.weight"},
                  {"model.layers.{L}.post_attention_layernorm.weight", "blk.{L}.ffn_norm.weight"},
                  {"model.layers.{L}.mlp.gate_up_proj.weight", "blk.{L}.ffn_up.weight"},
                  {"model.layers.{L}.mlp.down_proj.weight", "blk.{L}.ffn_down.weight"},
                  {"model.layers.{L}.post_mlp_layernorm.weight", "blk.{L}.post_ffw_norm.weight"}}});
}

// GPT-2 (GPT2LMHeadModel names): LayerNorms with biases, Conv1D matrices stored transposed.
Names gpt2() {
  const Q t = Q::kConv1D;
  return {{"transformer.wte.weight", "token_embd.weight"},
          {"transformer.wpe.weight", "position_embd.weight"},
          {"transformer.ln_f.weight", "output_norm.weight"},
          {"transformer.ln_f.bias", "output_norm.bias"},
          {"lm_head.weight", "output.weight"},
          {"transformer.h.{L}.ln_1.weight", "blk.{L}.attn_norm.weight"},
          {"transformer.h.{L}.ln_1.bias", "blk.{L}.attn_norm.bias"},
          {"transformer.h.{L}.attn.c_attn.weight", "blk.{L}.attn_qkv.weight", t},
          {"transformer.h.{L}.attn.c_attn.bias", "blk.{L}.attn_qkv.bias"},
          {"transformer.h.{L}.attn.c_proj.weight", "blk.{L}.attn_output.weight", t},
          {"transformer.h.{L}.attn.c_proj.bias", "blk.{L}.attn_output.bias"},
          {"transformer.h.{L}.ln_2.weight", "blk.{L}.ffn_norm.weight"},
          {"transformer.h.{L}.ln_2.bias", "blk.{L}.ffn_norm.bias"},
          {"transformer.h.{L}.mlp.c_fc.weight", "blk.{L}.ffn_up.weight", t},
          {"transformer.h.{L}.mlp.c_fc.bias", "blk.{L}.ffn_up.bias"},
          {"transformer.h.{L}.mlp.c_proj.weight", "blk.{L}.ffn_down.weight", t},
          {"transformer.h.{L}.mlp.c_proj.bias", "blk.{L}.ffn_down.bias"}};
}

// DeepSeek-V3 (llama.cpp deepseek2): multi-head latent attention, DeepSeek MoE with shared experts
// and the router's correction bias (exp_probs_b), dense leading layers. kv_b_proj is stored split
// as attn_k_b / attn_v_b by current converters (see gguf_mla.h); older files keep attn_kv_b.
Names deepseek2() {
  return concat({ends(),
                 {{"model.layers.{L}.input_layernorm.weight", "blk.{L}.attn_norm.weight"},
                  {"model.layers.{L}.self_attn.q_proj.weight", "blk.{L}.attn_q.weight"},
                  {"model.layers.{L}.self_attn.q_a_proj.weight", "blk.{L}.attn_q_a.weight"},
                  {"model.layers.{L}.self_attn.q_a_layernorm.weight", "blk.{L}.attn_q_a_norm.weight"},
                  {"model.layers.{L}.self_attn.q_b_proj.weight", "blk.{L}.attn_q_b.weight"},
                  {"model.layers.{L}.self_attn.kv_a_proj_with_mqa.weight", "blk.{L}.attn_kv_a_mqa.weight"},
                  {"model.layers.{L}.self_attn.kv_a_layernorm.weight", "blk.{L}.attn_kv_a_norm.weight"},
                  {"model.layers.{L}.self_attn.kv_b_proj.weight", "blk.{L}.attn_kv_b.weight"},
                  {"model.layers.{L}.self_attn.o_proj.weight", "blk.{L}.attn_output.weight"},
                  {"model.layers.{L}.mlp.gate.e_score_correction_bias", "blk.{L}.exp_probs_b.bias"}},
                 dense_mlp(), experts("mlp", "gate_proj", "up_proj", "down_proj"), shared_expert("shared_experts")});
}

std::vector<GgufArch> build_table() {
  std::vector<GgufArch> t;
  t.push_back({"llama", "LlamaForCausalLM", "llama", concat({ends(), attention(true), dense_mlp()})});
  t.push_back({"llama", "MistralForCausalLM", "mistral", concat({ends(), attention(true), dense_mlp()})});
  // Mixtral files from before stacked experts (early 2024) store one tensor per expert; llama.cpp
  // still reads them, tern too (export writes the stacked form: the first match wins).
  const std::string legacy = "model.layers.{L}.block_sparse_moe.experts.{E}.";
  t.push_back({"llama", "MixtralForCausalLM", "mixtral",
               concat({ends(), attention(true),
                       {{"model.layers.{L}.post_attention_layernorm.weight", "blk.{L}.ffn_norm.weight"}},
                       experts("block_sparse_moe", "w1", "w3", "w2"),
                       {{legacy + "w1.weight", "blk.{L}.ffn_gate.{E}.weight"},
                        {legacy + "w3.weight", "blk.{L}.ffn_up.{E}.weight"},
                        {legacy + "w2.weight", "blk.{L}.ffn_down.{E}.weight"}}})});
  t.push_back({"qwen2", "Qwen2ForCausalLM", "qwen2", concat({ends(), attention(false), dense_mlp()})});
  t.push_back({"qwen3", "Qwen3ForCausalLM", "qwen3", concat({ends(), attention(false), qk_norm(), dense_mlp()})});
  t.push_back({"qwen2moe", "Qwen2MoeForCausalLM", "qwen2_moe",
               concat({ends(), attention(false), dense_mlp(), experts("mlp", "gate_proj", "up_proj", "down_proj"),
                       shared_expert("shared_expert"),
                       {{"model.layers.{L}.mlp.shared_expert_gate.weight", "blk.{L}.ffn_gate_inp_shexp.weight",
                         Q::kRowVector}}})});
  t.push_back({"qwen3moe", "Qwen3MoeForCausalLM", "qwen3_moe",
               concat({ends(), attention(false), qk_norm(), dense_mlp(),
                       experts("mlp", "gate_proj", "up_proj", "down_proj")})});
  t.push_back({"gpt2", "GPT2LMHeadModel", "gpt2", gpt2()});
  t.push_back({"gemma2", "Gemma2ForCausalLM", "gemma2", gemma2()});
  t.push_back({"phi3", "Phi3ForCausalLM", "phi3", phi3()});
  t.push_back({"glm4", "Glm4ForCausalLM", "glm4", glm4()});
  t.push_back({"deepseek2", "DeepseekV3ForCausalLM", "deepseek_v3", deepseek2()});
  return t;
}

// Matches `name` against `pattern` ("{L}" / "{E}": decimal integers); fills *layer / *expert.
bool match(const std::string& pattern, const std::string& name, int* layer, int* expert) {
  const char* p = pattern.c_str();
  const char* s = name.c_str();
  while (*p) {
    if (p[0] == '{' && (p[1] == 'L' || p[1] == 'E') && p[2] == '}') {
      if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9')) return false;
      long v = 0;
      while (*s >= '0' && *s <= '9' && v < 100000000) v = v * 10 + (*s++ - '0');
      (p[1] == 'L' ? *layer : *expert) = int(v);
      p += 3;
      continue;
    }
    if (*p++ != *s++) return false;
  }
  return *s == '\0';
}

std::string fill_layer(const std::string& pattern, int layer) {
  std::string out = pattern;
  const size_t at = out.find("{L}");
  if (at != std::string::npos) out.replace(at, 3, std::to_string(layer));
  return out;
}

}  // namespace

const std::vector<GgufArch>& gguf_architectures() {
  static const std::vector<GgufArch> table = build_table();
  return table;
}

const GgufArch* gguf_arch_for_hf(const std::string& hf_architecture) {
  for (const auto& a : gguf_architectures()) {
    if (hf_architecture == a.hf) return &a;
  }
  return nullptr;
}

const GgufArch* gguf_arch_for_gguf(const std::string& gguf_architecture, bool has_experts) {
  for (const auto& a : gguf_architectures()) {
    if (gguf_architecture != a.gguf) continue;
    if (gguf_architecture == "llama" && has_experts != (std::string(a.hf) == "MixtralForCausalLM")) continue;
    return &a;
  }
  return nullptr;
}

bool gguf_arch_qwen_style_moe(const GgufArch& a) {
  const std::string hf = a.hf;
  return hf == "MixtralForCausalLM" || hf == "Qwen2MoeForCausalLM" || hf == "Qwen3MoeForCausalLM";
}

std::string gguf_architecture_list() {
  std::string out;
  for (const auto& a : gguf_architectures()) {
    if (out.find(std::string(a.gguf) + ",") != std::string::npos || out == a.gguf) continue;
    out += (out.empty() ? "" : ", ") + std::string(a.gguf);
  }
  return out;
}

bool GgufNameMatch::experts() const {
  return entry && entry->hf.find("{E}") != std::string::npos && entry->gguf.find("{E}") == std::string::npos;
}

bool gguf_name_from_hf(const GgufArch& arch, const std::string& hf, GgufNameMatch* out) {
  for (const auto& e : arch.names) {
    int layer = -1, expert = -1;
    if (!match(e.hf, hf, &layer, &expert)) continue;
    *out = {&e, layer, expert, fill_layer(e.gguf, layer)};
    return true;
  }
  return false;
}

bool hf_name_from_gguf(const GgufArch& arch, const std::string& gguf, GgufNameMatch* out) {
  for (const auto& e : arch.names) {
    int layer = -1, expert = -1;
    if (!match(e.gguf, gguf, &layer, &expert)) continue;
    std::string hf = fill_layer(e.hf, layer);
    if (expert >= 0) hf = gguf_expert_name(hf, expert);  // one expert per GGUF tensor (legacy Mixtral)
    *out = {&e, layer, expert, hf};
    return true;
  }
  return false;
}

std::string gguf_expert_name(const std::string& pattern, int expert) {
  std::string out = pattern;
  const size_t at = out.find("{E}");
  if (at != std::string::npos) out.replace(at, 3, std::to_string(expert));
  return out;
}

}  // namespace tern
