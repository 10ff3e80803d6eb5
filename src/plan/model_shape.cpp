// config.json -> ModelShape. Only sizes are read; fields the planner does not need (rope, token ids)
// are ignored, so configs tern cannot run yet (DeepSeek-V3's yarn rope, Gemma-2) can still be planned.
#include "plan/model_shape.h"

#include <fmt/format.h>

#include <filesystem>

#include "core/mapped_file.h"
#include "formats/config_fields.h"
#include "formats/json_util.h"
#include "formats/model_config.h"
#include "plan/checkpoint_precision.h"

namespace tern::plan {

namespace {

using nlohmann::json;

class Reader {
 public:
  Reader(const json& root, const std::string& source) : root_(root), source_(source) {}

  const json* get(const char* key) const {
    auto it = root_.find(key);
    return it == root_.end() || it->is_null() ? nullptr : &*it;
  }
  Status error(const char* key, const std::string& what) const {
    return Status::error(fmt::format("{}: {}: {}", source_, key, what));
  }
  // Integer in [lo, hi]; absent leaves *out as is unless required.
  template <typename T>
  Status integer(const char* key, int64_t lo, int64_t hi, T* out, bool required = false) const {
    const json* v = get(key);
    if (!v) return required ? error(key, "missing") : Status::ok();
    if (!v->is_number_integer()) return error(key, std::string("expected an integer, got ") + json_type_name(*v));
    if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(hi)) return error(key, "out of range");
    const int64_t x = v->get<int64_t>();
    if (x < lo || x > hi) return error(key, fmt::format("{} is outside [{}, {}]", x, lo, hi));
    *out = T(x);
    return Status::ok();
  }
  Status boolean(const char* key, bool* out) const {
    const json* v = get(key);
    if (!v) return Status::ok();
    if (!v->is_boolean()) return error(key, std::string("expected a boolean, got ") + json_type_name(*v));
    *out = v->get<bool>();
    return Status::ok();
  }
  Status string(const char* key, std::string* out) const {
    const json* v = get(key);
    if (!v) return Status::ok();
    if (!v->is_string()) return error(key, std::string("expected a string, got ") + json_type_name(*v));
    *out = v->get<std::string>();
    return Status::ok();
  }
  const char* first_set(std::initializer_list<const char*> keys) const {
    for (const char* k : keys) {
      if (get(k)) return k;
    }
    return nullptr;
  }

 private:
  const json& root_;
  const std::string& source_;
};

constexpr int64_t kMaxDim = int64_t(1) << 22;

Status parse_core(const Reader& r, ModelShape* s) {
  const bool gpt2 = r.get("n_embd") != nullptr;
  TERN_RETURN_IF_ERROR(r.integer("vocab_size", 1, int64_t(1) << 24, &s->vocab, true));
  TERN_RETURN_IF_ERROR(r.integer(gpt2 ? "n_embd" : "hidden_size", 1, kMaxDim, &s->hidden, true));
  TERN_RETURN_IF_ERROR(r.integer(gpt2 ? "n_layer" : "num_hidden_layers", 1, 10000, &s->layers, true));
  const char* heads_key = gpt2 ? "n_head" : "num_attention_heads";
  TERN_RETURN_IF_ERROR(r.integer(heads_key, 1, 1 << 16, &s->heads, true));
  s->kv_heads = s->heads;
  TERN_RETURN_IF_ERROR(r.integer("num_key_value_heads", 1, 1 << 16, &s->kv_heads));
  if (s->heads % s->kv_heads != 0) {
    return r.error("num_key_value_heads", fmt::format("{} does not divide {} {}", s->kv_heads, heads_key, s->heads));
  }
  if (r.get("head_dim")) {
    TERN_RETURN_IF_ERROR(r.integer("head_dim", 1, 1 << 14, &s->head_dim, true));
  } else {
    if (s->hidden % s->heads != 0) {
      return r.error(heads_key, fmt::format("{} does not divide the hidden size {}", s->heads, s->hidden));
    }
    s->head_dim = int(s->hidden / s->heads);
  }
  if (gpt2) {
    s->intermediate = 4 * s->hidden;  // n_inner null means 4 × n_embd
    TERN_RETURN_IF_ERROR(r.integer("n_inner", 1, kMaxDim, &s->intermediate));
  } else {
    TERN_RETURN_IF_ERROR(r.integer("intermediate_size", 1, kMaxDim, &s->intermediate, true));
  }
  if (const char* k = r.first_set({"max_position_embeddings", "n_positions"})) {
    TERN_RETURN_IF_ERROR(r.integer(k, 1, int64_t(1) << 30, &s->max_positions, true));
  }
  return Status::ok();
}

// Per-family facts config.json leaves implicit (they follow transformers' modeling code).
Status parse_family(const Reader& r, ModelShape* s) {
  const std::string& t = s->model_type;
  // PretrainedConfig defaults tie_word_embeddings to true; most decoder configs override it to false.
  s->tied_embeddings = t == "gpt2" || t == "gemma" || t == "gemma2" || t == "gemma3_text";
  TERN_RETURN_IF_ERROR(r.boolean("tie_word_embeddings", &s->tied_embeddings));
  if (t == "qwen2" || t == "qwen2_moe") {
    s->attention_bias = true;  // q/k/v only
    TERN_RETURN_IF_ERROR(r.boolean("qkv_bias", &s->attention_bias));
  } else {
    TERN_RETURN_IF_ERROR(r.boolean("attention_bias", &s->attention_bias));
    s->o_bias = s->attention_bias;  // Llama-style attention_bias covers o_proj too
  }
  TERN_RETURN_IF_ERROR(r.boolean("mlp_bias", &s->mlp_bias));
  s->qk_norm = t == "qwen3" || t == "qwen3_moe" || t == "gemma3_text" || t == "olmo2";
  if (t == "gemma2" || t == "gemma3_text" || t == "glm4") s->norms_per_layer = 4;
  if (t == "glm4") s->o_bias = false;  // GLM-4's attention_bias covers q/k/v only
  if (t == "gpt2") {
    s->gated_mlp = false;
    s->attention_bias = s->o_bias = s->mlp_bias = s->layer_norm_bias = true;
    s->learned_positions = s->max_positions;
  }
  std::string dtype;
  if (const char* k = r.first_set({"dtype", "torch_dtype"})) TERN_RETURN_IF_ERROR(r.string(k, &dtype));
  s->dtype = precision_of_torch_dtype(dtype);
  return Status::ok();
}

// The engine's reading of the MoE fields, as the planner's shape.
void apply_moe(const MoeConfig& m, ModelShape* s) {
  s->moe = m;
  s->n_experts = m.n_experts;
  s->experts_per_token = m.top_k;
  s->expert_intermediate = m.expert_intermediate;
  s->n_shared_experts = 0;
  s->shared_intermediate = 0;
  if (m.shared_expert_gate) {
    s->shared_intermediate = m.shared_intermediate;  // Qwen2-MoE: one gated shared expert
  } else if (m.shared_intermediate > 0 && m.expert_intermediate > 0) {
    s->n_shared_experts = int(m.shared_intermediate / m.expert_intermediate);  // DeepSeek: n_shared × width
  }
  s->first_dense_layers = m.first_k_dense;
  s->moe_every = 1;
  s->router_bias = m.correction_bias;
}

bool engine_moe_family(const std::string& t) {
  return t == "mixtral" || t == "qwen2_moe" || t == "qwen3_moe" || t == "deepseek_v3";
}

Status parse_moe(const Reader& r, const json& text, const std::string& source, ModelShape* s) {
  if (engine_moe_family(s->model_type)) {
    MoeConfig m;
    TERN_RETURN_IF_ERROR(parse_moe_config(ConfigFields(text, source), s->model_type, s->layers, &m));
    if (m.enabled()) apply_moe(m, s);
    return Status::ok();
  }
  if (const char* k = r.first_set({"num_local_experts", "n_routed_experts", "num_experts"})) {
    TERN_RETURN_IF_ERROR(r.integer(k, 0, 1 << 16, &s->n_experts, true));
  }
  if (!s->is_moe()) return Status::ok();
  TERN_RETURN_IF_ERROR(r.integer("num_experts_per_tok", 1, s->n_experts, &s->experts_per_token, true));
  s->expert_intermediate = s->intermediate;  // Mixtral: experts are full-size MLPs
  TERN_RETURN_IF_ERROR(r.integer("moe_intermediate_size", 1, kMaxDim, &s->expert_intermediate));
  TERN_RETURN_IF_ERROR(r.integer("n_shared_experts", 0, 1 << 16, &s->n_shared_experts));
  TERN_RETURN_IF_ERROR(r.integer("shared_expert_intermediate_size", 0, kMaxDim, &s->shared_intermediate));
  TERN_RETURN_IF_ERROR(r.integer("first_k_dense_replace", 0, s->layers, &s->first_dense_layers));
  const char* every = r.first_set({"moe_layer_freq", "decoder_sparse_step"});
  if (every) TERN_RETURN_IF_ERROR(r.integer(every, 1, s->layers, &s->moe_every));
  s->router_bias = s->model_type == "deepseek_v3";
  return Status::ok();
}

Status parse_mla(const Reader& r, ModelShape* s) {
  TERN_RETURN_IF_ERROR(r.integer("kv_lora_rank", 0, kMaxDim, &s->kv_lora_rank));
  if (!s->is_mla()) return Status::ok();
  TERN_RETURN_IF_ERROR(r.integer("q_lora_rank", 0, kMaxDim, &s->q_lora_rank));
  TERN_RETURN_IF_ERROR(r.integer("qk_nope_head_dim", 1, 1 << 14, &s->qk_nope_head_dim, true));
  TERN_RETURN_IF_ERROR(r.integer("qk_rope_head_dim", 1, 1 << 14, &s->qk_rope_head_dim, true));
  TERN_RETURN_IF_ERROR(r.integer("v_head_dim", 1, 1 << 14, &s->v_head_dim, true));
  return Status::ok();
}

}  // namespace

int ModelShape::moe_layers() const {
  int n = 0;
  for (int l = 0; l < layers; ++l) n += is_moe_layer(l) ? 1 : 0;
  return n;
}

Result<ModelShape> parse_model_shape(const std::string& json_text, const std::string& source) {
  TERN_ASSIGN_OR_RETURN(ParsedJson parsed, parse_json(json_text, source));
  const json& root = parsed.value;
  if (!root.is_object()) return Status::error(source + ": top level: expected an object, got " + json_type_name(root));
  // Multimodal configs (Llama-4, Gemma-3, Qwen-VL) keep the decoder under text_config.
  const json& text = root.contains("text_config") && root["text_config"].is_object() ? root["text_config"] : root;
  const Reader r(text, source);
  ModelShape s;
  s.name = source;
  if (const json* a = Reader(root, source).get("architectures")) {
    if (!a->is_array() || a->empty() || !(*a)[0].is_string()) {
      return Status::error(source + ": architectures: expected a non-empty list of strings");
    }
    s.architecture = (*a)[0].get<std::string>();
  }
  TERN_RETURN_IF_ERROR(r.string("model_type", &s.model_type));
  if (s.model_type.empty()) TERN_RETURN_IF_ERROR(Reader(root, source).string("model_type", &s.model_type));
  TERN_RETURN_IF_ERROR(parse_core(r, &s));
  TERN_RETURN_IF_ERROR(parse_family(r, &s));
  TERN_RETURN_IF_ERROR(parse_moe(r, text, source, &s));
  TERN_RETURN_IF_ERROR(parse_mla(r, &s));
  // A quantized checkpoint is planned at its stored precision; one the planner cannot price keeps the
  // reason, which is an error only when the user does not name a precision (-w) instead.
  const json* qc = Reader(root, source).get("quantization_config");
  if (!qc) qc = r.get("quantization_config");
  if (qc) {
    auto p = precision_of_quant_config(*qc, source);
    if (p.is_ok()) {
      s.dtype = *p;
    } else {
      s.dtype_error = p.status().message();
    }
  }
  return s;
}

Result<ModelShape> load_model_shape(const std::string& path) {
  std::error_code ec;
  const bool dir = std::filesystem::is_directory(path, ec);
  const std::string file = dir ? path + "/config.json" : path;
  TERN_ASSIGN_OR_RETURN(std::string text, read_text_file(file));
  return parse_model_shape(text, file);
}

ModelShape shape_from_config(const ModelConfig& c) {
  ModelShape s;
  s.architecture = c.architecture;
  s.model_type = c.model_type;
  s.dtype = c.dtype == DType::F16 ? "fp16" : c.dtype == DType::F32 ? "f32" : "bf16";
  s.vocab = c.vocab_size;
  s.hidden = c.hidden_size;
  s.intermediate = c.intermediate_size;
  s.max_positions = c.max_position_embeddings;
  s.layers = c.n_layers;
  s.heads = c.n_heads;
  s.kv_heads = c.n_kv_heads;
  s.head_dim = c.head_dim;
  s.tied_embeddings = c.tie_word_embeddings;
  s.attention_bias = c.attention_bias;
  s.o_bias = c.attention_bias && c.model_type != "qwen2" && c.model_type != "qwen2_moe";
  s.mlp_bias = c.mlp_bias;
  s.qk_norm = c.model_type == "qwen3" || c.model_type == "qwen3_moe";
  if (c.moe.enabled()) apply_moe(c.moe, &s);
  if (c.mla.enabled()) {
    s.q_lora_rank = c.mla.q_lora_rank;
    s.kv_lora_rank = c.mla.kv_lora_rank;
    s.qk_nope_head_dim = c.mla.qk_nope_head_dim;
    s.qk_rope_head_dim = c.mla.qk_rope_head_dim;
    s.v_head_dim = c.mla.v_head_dim;
  }
  return s;
}

}  // namespace tern::plan
