#include "formats/gguf/gguf_config.h"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

namespace tern {

namespace {

using nlohmann::json;

bool is(const GgufArch& a, const char* hf) { return std::string(a.hf) == hf; }

// Copies `<arch>.<key>` into the config JSON under `field`; a required key that is absent is an
// error naming it.
class KeyReader {
 public:
  KeyReader(const GgufFile& g, const std::string& arch, json& j) : g_(g), p_(arch + "."), j_(j) {}

  bool has(const std::string& key) const { return g_.find(p_ + key) != nullptr; }
  Result<int64_t> get(const std::string& key, int64_t lo, int64_t hi) const { return g_.get_int(p_ + key, lo, hi); }

  Status int_key(const std::string& key, const char* field, int64_t lo, int64_t hi, bool required) {
    if (!has(key)) return required ? g_.error(fmt::format("missing metadata '{}{}'", p_, key)) : Status::ok();
    TERN_ASSIGN_OR_RETURN(int64_t v, g_.get_int(p_ + key, lo, hi));
    j_[field] = v;
    return Status::ok();
  }
  Status float_key(const std::string& key, const char* field) {
    if (!has(key)) return Status::ok();
    TERN_ASSIGN_OR_RETURN(double v, g_.get_float(p_ + key));
    j_[field] = v;
    return Status::ok();
  }

 private:
  const GgufFile& g_;
  std::string p_;
  json& j_;
};

// The MoE fields (expert_count, expert_used_count, ...) as the family's config.json spells them.
Status moe_fields(const GgufFile& g, const GgufArch& a, KeyReader& k, json& j) {
  const char* count = is(a, "MixtralForCausalLM") ? "num_local_experts" : "num_experts";
  TERN_RETURN_IF_ERROR(k.int_key("expert_count", count, 1, 1 << 16, true));
  TERN_RETURN_IF_ERROR(k.int_key("expert_used_count", "num_experts_per_tok", 1, 1 << 16, true));
  if (is(a, "MixtralForCausalLM")) return Status::ok();  // intermediate_size is each expert's width
  TERN_RETURN_IF_ERROR(k.int_key("expert_feed_forward_length", "moe_intermediate_size", 1, int64_t(1) << 22, true));
  // llama.cpp's graphs: qwen3moe always renormalises the chosen weights, qwen2moe never does.
  j["norm_topk_prob"] = is(a, "Qwen3MoeForCausalLM");
  j["decoder_sparse_step"] = 1;
  if (is(a, "Qwen2MoeForCausalLM")) {
    TERN_RETURN_IF_ERROR(
        k.int_key("expert_shared_feed_forward_length", "shared_expert_intermediate_size", 1, int64_t(1) << 22, true));
  }
  // Layers stored without a router keep the dense MLP (Qwen mlp_only_layers).
  json dense = json::array();
  const int64_t layers = j["num_hidden_layers"].get<int64_t>();
  for (int64_t i = 0; i < layers; ++i) {
    if (!g.tensor(fmt::format("blk.{}.ffn_gate_inp.weight", i))) dense.push_back(i);
  }
  j["mlp_only_layers"] = dense;
  return Status::ok();
}

// DeepSeek's yarn rope scaling as llama.cpp reads it (src/llama-context.cpp): the converter stores
// 0.1 · mscale_all_dim as yarn_log_multiplier, and llama.cpp takes mscale = 1 (= mscale_all_dim when
// that is not 1, for DeepSeek-V2), which is what this config says.
Status deepseek2_yarn(const GgufFile& g, KeyReader& k, json& j) {
  if (!k.has("rope.scaling.type")) return Status::ok();
  const std::string p = "deepseek2.rope.scaling.";
  TERN_ASSIGN_OR_RETURN(std::string type, g.get_string(p + "type"));
  if (type == "none") return Status::ok();
  if (type != "yarn") return g.error(fmt::format("metadata '{}type': '{}' is not supported (none, yarn)", p, type));
  json rs = {{"type", "yarn"}};
  TERN_ASSIGN_OR_RETURN(double factor, g.get_float(p + "factor"));
  TERN_ASSIGN_OR_RETURN(int64_t orig, g.get_int(p + "original_context_length", 1, int64_t(1) << 30));
  rs["factor"] = factor, rs["original_max_position_embeddings"] = orig;
  for (const char* beta : {"beta_fast", "beta_slow"}) {
    if (!g.find(p + "yarn_" + beta)) continue;
    TERN_ASSIGN_OR_RETURN(double b, g.get_float(p + "yarn_" + beta));
    rs[beta] = b;
  }
  if (g.find(p + "yarn_log_multiplier")) {
    TERN_ASSIGN_OR_RETURN(double mul, g.get_float(p + "yarn_log_multiplier"));
    const double all = double(float(mul) / 0.1f);  // in f32, as llama.cpp undoes the converter's 0.1
    rs["mscale_all_dim"] = all;
    rs["mscale"] = all != 1.0 ? all : 1.0;
  }
  j["rope_scaling"] = rs;
  return Status::ok();
}

// DeepSeek-V3 (llama.cpp deepseek2, src/models/deepseek2.cpp): MLA sizes (key_length /
// value_length are the MQA form kv_lora + rope / kv_lora; key_length_mla / value_length_mla the per
// head q·k and v sizes), rope dims, the MoE keys (gating func 2 = sigmoid; exp_probs_b present =
// noaux_tc routing), leading dense layers. Files without key_length_mla (older converters, attn_kv_b)
// store key_length = nope + rope and value_length = v.
Status deepseek2_fields(const GgufFile& g, KeyReader& k, json& j) {
  const int64_t heads = j["num_attention_heads"].get<int64_t>();
  j["num_key_value_heads"] = heads;
  j["q_lora_rank"] = nullptr;
  TERN_RETURN_IF_ERROR(k.int_key("attention.q_lora_rank", "q_lora_rank", 1, 1 << 16, false));
  TERN_RETURN_IF_ERROR(k.int_key("attention.kv_lora_rank", "kv_lora_rank", 1, 1 << 16, true));
  TERN_ASSIGN_OR_RETURN(int64_t rope, k.get("rope.dimension_count", 2, 1 << 14));
  const bool mla = k.has("attention.key_length_mla");
  TERN_ASSIGN_OR_RETURN(int64_t qk, k.get(mla ? "attention.key_length_mla" : "attention.key_length", 1, 1 << 15));
  TERN_ASSIGN_OR_RETURN(int64_t v, k.get(mla ? "attention.value_length_mla" : "attention.value_length", 1, 1 << 14));
  if (qk <= rope) return g.error(fmt::format("metadata: q·k head size {} must exceed the rope dims {}", qk, rope));
  j["qk_rope_head_dim"] = rope, j["head_dim"] = rope, j["qk_nope_head_dim"] = qk - rope, j["v_head_dim"] = v;
  j["rope_interleave"] = true;
  TERN_RETURN_IF_ERROR(k.int_key("expert_count", "n_routed_experts", 1, 1 << 16, true));
  TERN_RETURN_IF_ERROR(k.int_key("expert_used_count", "num_experts_per_tok", 1, 1 << 16, true));
  TERN_RETURN_IF_ERROR(k.int_key("expert_feed_forward_length", "moe_intermediate_size", 1, int64_t(1) << 22, true));
  TERN_RETURN_IF_ERROR(k.int_key("expert_shared_count", "n_shared_experts", 0, 1 << 10, true));
  j["first_k_dense_replace"] = 0, j["n_group"] = 1, j["topk_group"] = 1, j["routed_scaling_factor"] = 1.0;
  TERN_RETURN_IF_ERROR(k.int_key("leading_dense_block_count", "first_k_dense_replace", 0, 10000, false));
  TERN_RETURN_IF_ERROR(k.int_key("expert_group_count", "n_group", 1, 1 << 16, false));
  TERN_RETURN_IF_ERROR(k.int_key("expert_group_used_count", "topk_group", 1, 1 << 16, false));
  TERN_RETURN_IF_ERROR(k.float_key("expert_weights_scale", "routed_scaling_factor"));
  bool norm = false;
  if (k.has("expert_weights_norm")) {
    TERN_ASSIGN_OR_RETURN(int64_t n, k.get("expert_weights_norm", 0, 1));
    norm = n != 0;
  }
  j["norm_topk_prob"] = norm;
  int64_t gating = 1;  // llama.cpp's default for files without the key: softmax
  if (k.has("expert_gating_func")) {
    TERN_ASSIGN_OR_RETURN(gating, k.get("expert_gating_func", 0, 3));
  }
  j["scoring_func"] = gating == 2 ? "sigmoid" : gating == 1 ? "softmax" : "gating function " + std::to_string(gating);
  const int64_t first_moe = j["first_k_dense_replace"].get<int64_t>();
  j["topk_method"] = g.tensor(fmt::format("blk.{}.exp_probs_b.bias", first_moe)) ? "noaux_tc" : "greedy";
  return deepseek2_yarn(g, k, j);
}

// Gemma 2 as llama.cpp's graph runs it (src/models/gemma2.cpp): sliding window 4096 unless the
// key says otherwise, on layers i % period < period - 1 (period 2: the even layers), scores scaled by
// head_dim^-0.5 (n_embd / n_head for the 46-layer 27B), embeddings by √n_embd in f32.
Status gemma2_fields(const GgufFile& g, KeyReader& k, json& j) {
  j["hidden_activation"] = "gelu_pytorch_tanh";
  j["torch_dtype"] = "float32";
  TERN_RETURN_IF_ERROR(k.float_key("attn_logit_softcapping", "attn_logit_softcapping"));
  TERN_RETURN_IF_ERROR(k.float_key("final_logit_softcapping", "final_logit_softcapping"));
  j["sliding_window"] = 4096;
  TERN_RETURN_IF_ERROR(k.int_key("attention.sliding_window", "sliding_window", 1, int64_t(1) << 30, false));
  int64_t period = 2;
  if (k.has("attention.sliding_window_pattern")) {
    TERN_ASSIGN_OR_RETURN(period, k.get("attention.sliding_window_pattern", 1, 1 << 16));
  }
  const int64_t layers = j["num_hidden_layers"].get<int64_t>(), heads = j["num_attention_heads"].get<int64_t>();
  json types = json::array();
  for (int64_t i = 0; i < layers; ++i) types.push_back(i % period < period - 1 ? "sliding_attention" : "full_attention");
  j["layer_types"] = types;
  const int64_t hd = j.contains("head_dim") ? j["head_dim"].get<int64_t>() : j["hidden_size"].get<int64_t>() / heads;
  j["query_pre_attn_scalar"] = layers == 46 ? j["hidden_size"].get<int64_t>() / heads : hd;
  (void)g;
  return Status::ok();
}

}  // namespace

Result<const GgufArch*> gguf_file_arch(const GgufFile& g) {
  TERN_ASSIGN_OR_RETURN(std::string name, g.get_string("general.architecture"));
  bool experts = false;
  if (const GgufValue* v = g.find(name + ".expert_count"); v && v->is_integer()) experts = v->i > 0;
  const GgufArch* a = gguf_arch_for_gguf(name, experts);
  if (!a) {
    return g.error(fmt::format("general.architecture '{}'{} is not supported (supported: {})", name,
                               experts ? " with experts" : "", gguf_architecture_list()));
  }
  return a;
}

Result<ModelConfig> gguf_model_config(const GgufFile& g) {
  TERN_ASSIGN_OR_RETURN(const GgufArch* a, gguf_file_arch(g));
  json j;
  j["architectures"] = json::array({a->hf});
  j["model_type"] = a->model_type;
  KeyReader k(g, a->gguf, j);
  TERN_RETURN_IF_ERROR(k.int_key("embedding_length", "hidden_size", 1, int64_t(1) << 20, true));
  TERN_RETURN_IF_ERROR(k.int_key("block_count", "num_hidden_layers", 1, 10000, true));
  TERN_RETURN_IF_ERROR(k.int_key("feed_forward_length", "intermediate_size", 1, int64_t(1) << 22, true));
  TERN_RETURN_IF_ERROR(k.int_key("attention.head_count", "num_attention_heads", 1, 1 << 16, true));
  if (is(*a, "DeepseekV3ForCausalLM")) {
    TERN_RETURN_IF_ERROR(deepseek2_fields(g, k, j));
  } else {
    TERN_RETURN_IF_ERROR(k.int_key("attention.head_count_kv", "num_key_value_heads", 1, 1 << 16, false));
    TERN_RETURN_IF_ERROR(k.int_key("attention.key_length", "head_dim", 1, 1 << 14, false));
    if (k.has("attention.value_length")) {
      TERN_ASSIGN_OR_RETURN(int64_t vd, k.get("attention.value_length", 1, 1 << 14));
      const int64_t hd = j.contains("head_dim") ? j["head_dim"].get<int64_t>()
                                                : j["hidden_size"].get<int64_t>() / j["num_attention_heads"].get<int64_t>();
      if (vd != hd) {
        return g.error(fmt::format("metadata '{}.attention.value_length' {} differs from the key length {}", a->gguf, vd, hd));
      }
    }
  }
  TERN_RETURN_IF_ERROR(k.int_key("context_length", "max_position_embeddings", 1, int64_t(1) << 30, false));
  TERN_RETURN_IF_ERROR(k.float_key("attention.layer_norm_rms_epsilon", "rms_norm_eps"));
  TERN_RETURN_IF_ERROR(k.float_key("attention.layer_norm_epsilon", "layer_norm_epsilon"));
  j["rope_theta"] = 10000.0;
  TERN_RETURN_IF_ERROR(k.float_key("rope.freq_base", "rope_theta"));
  if (k.has("rope.dimension_count") && !is(*a, "DeepseekV3ForCausalLM")) {
    const int64_t hd = j.contains("head_dim") ? j["head_dim"].get<int64_t>()
                                              : j["hidden_size"].get<int64_t>() / j["num_attention_heads"].get<int64_t>();
    TERN_ASSIGN_OR_RETURN(int64_t rot, k.get("rope.dimension_count", 2, 1 << 14));
    if (rot > hd || rot % 2 != 0) {
      return g.error(fmt::format("metadata '{}.rope.dimension_count' {} must be even and at most the head size {}",
                                 a->gguf, rot, hd));
    }
    if (rot != hd) j["partial_rotary_factor"] = double(rot) / double(hd);
  }
  if (k.has("rope.scaling.type") && !is(*a, "DeepseekV3ForCausalLM")) {
    TERN_ASSIGN_OR_RETURN(std::string type, g.get_string(std::string(a->gguf) + ".rope.scaling.type"));
    if (type == "linear") {
      TERN_ASSIGN_OR_RETURN(double f, g.get_float(std::string(a->gguf) + ".rope.scaling.factor"));
      j["rope_scaling"] = {{"type", "linear"}, {"factor", f}};
    } else if (type != "none") {
      return g.error(fmt::format("metadata '{}.rope.scaling.type': '{}' is not supported (none, linear)", a->gguf, type));
    }
  }
  // Vocabulary: the explicit key, else the embedding's rows (the converter pads the token list to them).
  if (k.has("vocab_size")) {
    TERN_RETURN_IF_ERROR(k.int_key("vocab_size", "vocab_size", 1, int64_t(1) << 24, true));
  } else if (const GgufTensor* e = g.tensor("token_embd.weight"); e && e->ne.size() == 2) {
    j["vocab_size"] = e->ne[1];
  } else if (const GgufValue* toks = g.find("tokenizer.ggml.tokens"); toks && toks->array_len > 0) {
    j["vocab_size"] = int64_t(toks->array_len);
  } else {
    return g.error("cannot tell the vocabulary size (no vocab_size, token_embd.weight or tokenizer.ggml.tokens)");
  }
  j["tie_word_embeddings"] = g.tensor("output.weight") == nullptr;
  j["attention_bias"] = g.tensor("blk.0.attn_q.bias") != nullptr;
  if (is(*a, "Qwen3MoeForCausalLM") || is(*a, "Qwen2MoeForCausalLM")) j["use_sliding_window"] = false;
  for (const char* which : {"bos", "eos"}) {
    const std::string key = fmt::format("tokenizer.ggml.{}_token_id", which);
    if (!g.find(key)) continue;
    TERN_ASSIGN_OR_RETURN(int64_t id, g.get_int(key, 0, int64_t(1) << 31));
    j[fmt::format("{}_token_id", which)] = id;
  }
  if (gguf_arch_qwen_style_moe(*a)) TERN_RETURN_IF_ERROR(moe_fields(g, *a, k, j));
  if (is(*a, "GPT2LMHeadModel")) j["activation_function"] = "gelu_new";
  if (is(*a, "Gemma2ForCausalLM")) TERN_RETURN_IF_ERROR(gemma2_fields(g, k, j));
  return parse_model_config(j.dump(), g.path() + " (its " + a->gguf + ".* metadata as config.json)");
}

}  // namespace tern
