// config.json -> ModelConfig. Both transformers generations are accepted:
//   4.x: "rope_theta" at top level, "rope_scaling" {rope_type | legacy "type", factor, ...} or null,
//        "torch_dtype";
//   5.x: "rope_parameters" {rope_theta, rope_type, factor, ...}, "dtype".
// GPT-2's older names (n_embd, n_head, n_layer, n_positions, n_inner, layer_norm_epsilon,
// activation_function) are read as aliases, as transformers' attribute_map does.
#include "formats/model_config.h"

#include <cmath>
#include <filesystem>
#include <limits>
#include <optional>

#include "core/mapped_file.h"
#include "formats/config_fields.h"
#include "formats/generation_config.h"
#include "formats/json_util.h"

namespace tern {

namespace {

using nlohmann::json;

Status parse_sizes(const ConfigFields& f, ModelConfig* c) {
  const bool gpt2_names = f.get("n_embd") != nullptr;
  int64_t v = 0;
  TERN_RETURN_IF_ERROR(f.int_field("vocab_size", 1, int64_t(1) << 24, &c->vocab_size, true));
  TERN_RETURN_IF_ERROR(f.int_field(gpt2_names ? "n_embd" : "hidden_size", 1, int64_t(1) << 20, &c->hidden_size, true));
  TERN_RETURN_IF_ERROR(f.int_field(gpt2_names ? "n_layer" : "num_hidden_layers", 1, 10000, &v, true));
  c->n_layers = int(v);
  const char* heads_key = gpt2_names ? "n_head" : "num_attention_heads";
  TERN_RETURN_IF_ERROR(f.int_field(heads_key, 1, 1 << 16, &v, true));
  c->n_heads = int(v);
  v = c->n_heads;
  TERN_RETURN_IF_ERROR(f.int_field("num_key_value_heads", 1, 1 << 16, &v, false));
  c->n_kv_heads = int(v);
  if (c->n_heads % c->n_kv_heads != 0) {
    return f.error("num_key_value_heads", std::to_string(c->n_kv_heads) + " does not divide " + heads_key + " " +
                                              std::to_string(c->n_heads));
  }

  if (f.get("intermediate_size") || !gpt2_names) {
    TERN_RETURN_IF_ERROR(f.int_field("intermediate_size", 1, int64_t(1) << 22, &c->intermediate_size, true));
  } else {
    c->intermediate_size = 4 * c->hidden_size;  // GPT-2: n_inner null means 4 × n_embd
    TERN_RETURN_IF_ERROR(f.int_field("n_inner", 1, int64_t(1) << 22, &c->intermediate_size, false));
  }

  if (f.get("head_dim")) {
    TERN_RETURN_IF_ERROR(f.int_field("head_dim", 1, 1 << 14, &v, true));
    c->head_dim = int(v);
  } else {
    if (c->hidden_size % c->n_heads != 0) {
      return f.error(gpt2_names ? "n_embd" : "hidden_size", std::to_string(c->hidden_size) + " is not divisible by " +
                                                                heads_key + " " + std::to_string(c->n_heads));
    }
    c->head_dim = int(c->hidden_size / c->n_heads);
  }
  if (c->head_dim % 2 != 0) return f.error("head_dim", std::to_string(c->head_dim) + " is odd (rope needs pairs)");

  const std::string pos_key = f.first_set({"max_position_embeddings", "n_positions"});
  if (!pos_key.empty()) {
    TERN_RETURN_IF_ERROR(f.int_field(pos_key, 1, int64_t(1) << 30, &c->max_position_embeddings, true));
  }
  return Status::ok();
}

// dtype (5.x) / torch_dtype (4.x): the checkpoint's stored precision.
Status parse_dtype(const ConfigFields& f, ModelConfig* c) {
  const std::string key = f.first_set({"dtype", "torch_dtype"});
  if (key.empty()) return Status::ok();
  std::string s;
  TERN_RETURN_IF_ERROR(f.string_field(key, &s));
  if (s == "bfloat16") c->dtype = DType::BF16;
  else if (s == "float16") c->dtype = DType::F16;
  else if (s == "float32") c->dtype = DType::F32;
  else return f.error(key, "unsupported dtype '" + s + "' (expected bfloat16, float16 or float32)");
  return Status::ok();
}

// rope_type "yarn" (DeepSeek-V3: factor 40, beta_fast 32, beta_slow 1, mscale 1, mscale_all_dim 1,
// original_max_position_embeddings 4096). As transformers: a missing factor is max_position_embeddings /
// original_max_position_embeddings, a missing original_max_position_embeddings is max_position_embeddings.
Status parse_yarn(const ConfigFields& sf, ModelConfig* c) {
  RopeConfig& r = c->rope;
  int64_t orig = c->max_position_embeddings;
  TERN_RETURN_IF_ERROR(sf.int_field("original_max_position_embeddings", 1, int64_t(1) << 30, &orig, false));
  if (orig <= 0) return sf.error("original_max_position_embeddings", "missing (and max_position_embeddings is unset)");
  r.yarn_original_max_position = double(orig);
  if (sf.get("factor")) {
    TERN_RETURN_IF_ERROR(sf.positive_number("factor", &r.yarn_factor, true));
  } else {
    if (c->max_position_embeddings <= 0) return sf.error("factor", "missing");
    r.yarn_factor = double(c->max_position_embeddings) / double(orig);
  }
  TERN_RETURN_IF_ERROR(sf.positive_number("beta_fast", &r.yarn_beta_fast));
  TERN_RETURN_IF_ERROR(sf.positive_number("beta_slow", &r.yarn_beta_slow));
  TERN_RETURN_IF_ERROR(sf.positive_number("attention_factor", &r.yarn_attention_factor));
  TERN_RETURN_IF_ERROR(sf.number_field("mscale", &r.yarn_mscale));
  TERN_RETURN_IF_ERROR(sf.number_field("mscale_all_dim", &r.yarn_mscale_all_dim));
  if (r.yarn_mscale < 0) return sf.error("mscale", "must not be negative");
  if (r.yarn_mscale_all_dim < 0) return sf.error("mscale_all_dim", "must not be negative");
  TERN_RETURN_IF_ERROR(sf.bool_field("truncate", &r.yarn_truncate));
  if (!(r.yarn_beta_fast > r.yarn_beta_slow)) return sf.error("beta_fast", "must exceed beta_slow");
  return Status::ok();
}

Status parse_rope(const ConfigFields& f, const std::string& source, ModelConfig* c) {
  RopeConfig& r = c->rope;
  double partial = 1.0;
  TERN_RETURN_IF_ERROR(f.positive_number("rope_theta", &r.theta));
  TERN_RETURN_IF_ERROR(f.positive_number("partial_rotary_factor", &partial));

  // The scaling object and the key path naming it in errors.
  const json* scaling = nullptr;
  std::string where;
  if (const json* p = f.get("rope_parameters")) {
    if (!p->is_object()) return f.type_error("rope_parameters", "an object");
    scaling = p;
    where = "rope_parameters";
    // Models with per-layer-type rope (gemma3 style) key the parameters by layer type; the
    // full-attention layers carry the model's main rope.
    if (!p->contains("rope_type") && !p->contains("rope_theta") && p->contains("full_attention")) {
      scaling = &(*p)["full_attention"];
      where = "rope_parameters.full_attention";
      if (!scaling->is_object()) {
        return f.error(where, std::string("expected an object, got ") + json_type_name(*scaling));
      }
    }
  } else if (const json* s = f.get("rope_scaling")) {
    if (!s->is_object()) return f.type_error("rope_scaling", "an object or null");
    scaling = s;
    where = "rope_scaling";
  }

  c->rope_type = "default";
  if (scaling) {
    const ConfigFields sf(*scaling, source, where + ".");
    TERN_RETURN_IF_ERROR(sf.positive_number("rope_theta", &r.theta));
    TERN_RETURN_IF_ERROR(sf.positive_number("partial_rotary_factor", &partial));
    const std::string type_key = sf.get("rope_type") ? "rope_type" : "type";  // "type" is the 4.x legacy spelling
    TERN_RETURN_IF_ERROR(sf.string_field(type_key, &c->rope_type));
    if (c->rope_type == "llama3") {
      TERN_RETURN_IF_ERROR(sf.positive_number("factor", &r.llama3_factor, true));
      TERN_RETURN_IF_ERROR(sf.positive_number("low_freq_factor", &r.llama3_low_freq_factor));
      TERN_RETURN_IF_ERROR(sf.positive_number("high_freq_factor", &r.llama3_high_freq_factor));
      int64_t orig = 0;
      TERN_RETURN_IF_ERROR(sf.int_field("original_max_position_embeddings", 1, int64_t(1) << 30, &orig, true));
      r.llama3_original_max_position = double(orig);
      if (!(r.llama3_high_freq_factor > r.llama3_low_freq_factor)) {
        return sf.error("high_freq_factor", "must exceed low_freq_factor");
      }
    } else if (c->rope_type == "linear") {
      TERN_RETURN_IF_ERROR(sf.positive_number("factor", &r.linear_factor, true));
    } else if (c->rope_type == "yarn") {
      TERN_RETURN_IF_ERROR(parse_yarn(sf, c));
    } else if (c->rope_type != "default") {
      return sf.error(type_key,
                      "unsupported rope type '" + c->rope_type + "' (tern supports default, llama3, linear, yarn)");
    }
  }
  if (partial > 1.0) return f.error("partial_rotary_factor", "must be in (0, 1]");
  r.rotary_dim = int(std::lround(c->head_dim * partial));
  if (r.rotary_dim < 2 || r.rotary_dim % 2 != 0) {
    return f.error("partial_rotary_factor", "gives rotary_dim " + std::to_string(r.rotary_dim) + " for head_dim " +
                                                std::to_string(c->head_dim) + " (must be even and positive)");
  }
  return Status::ok();
}

// sliding_window applies unless it is null or use_sliding_window is explicitly false (Qwen2 sets
// a window size but disables it).
Status parse_sliding_window(const ConfigFields& f, ModelConfig* c) {
  bool use = true;
  TERN_RETURN_IF_ERROR(f.bool_field("use_sliding_window", &use));
  int64_t w = 0;
  TERN_RETURN_IF_ERROR(f.int_field("sliding_window", 0, std::numeric_limits<int>::max(), &w, false));
  c->sliding_window = use ? int(w) : 0;
  return Status::ok();
}

// bos / eos / pad ids name rows of the embedding: each must be below vocab_size (which may exceed the tokenizer's
// count: padding rows). pad_token_id is not used by tern; a negative one is read as "none", as some configs write -1.
Status check_token_ids(const ConfigFields& f, int64_t vocab_size, ModelConfig* c) {
  auto check = [&](const char* key, const std::vector<int32_t>& ids) -> Status {
    for (int32_t id : ids) {
      if (id >= vocab_size) {
        return f.error(key, "token id " + std::to_string(id) + " is outside the vocabulary (vocab_size " +
                                std::to_string(vocab_size) + ")");
      }
    }
    return Status::ok();
  };
  TERN_RETURN_IF_ERROR(check("bos_token_id", c->bos_token_ids));
  TERN_RETURN_IF_ERROR(check("eos_token_id", c->eos_token_ids));
  if (const json* pad = f.get("pad_token_id")) {
    if (!pad->is_number_integer()) return f.type_error("pad_token_id", "an integer or null");
    if (!pad->is_number_unsigned() && pad->get<int64_t>() < 0) return Status::ok();
    if (pad->get<uint64_t>() >= uint64_t(vocab_size)) {
      return f.error("pad_token_id", "token id " + pad->dump() + " is outside the vocabulary (vocab_size " +
                                         std::to_string(vocab_size) + ")");
    }
  }
  return Status::ok();
}

}  // namespace

Result<ModelConfig> parse_model_config(const std::string& json_text, const std::string& source) {
  TERN_ASSIGN_OR_RETURN(ParsedJson parsed, parse_json(json_text, source));
  const json& root = parsed.value;
  if (!root.is_object()) {
    return Status::error(source + ": top level: expected an object, got " + json_type_name(root));
  }
  if (!parsed.duplicate_path.empty()) {
    return Status::error(source + ": " + join_key_path(parsed.duplicate_path) + ": duplicate key");
  }
  const ConfigFields f(root, source);
  ModelConfig c;
  if (const json* a = f.get("architectures")) {
    if (!a->is_array() || a->empty() || !(*a)[0].is_string()) {
      return f.error("architectures", "expected a non-empty list of strings");
    }
    c.architecture = (*a)[0].get<std::string>();
  }
  TERN_RETURN_IF_ERROR(f.string_field("model_type", &c.model_type));
  TERN_RETURN_IF_ERROR(parse_sizes(f, &c));
  TERN_RETURN_IF_ERROR(parse_moe_config(f, c.model_type, c.n_layers, &c.moe));

  const std::string eps_key = f.first_set({"rms_norm_eps", "layer_norm_epsilon", "layer_norm_eps"});
  if (!eps_key.empty()) {
    TERN_RETURN_IF_ERROR(f.positive_number(eps_key, &c.rms_norm_eps));
    if (c.rms_norm_eps >= 1.0) return f.error(eps_key, "must be below 1");
  }
  const std::string act_key = f.first_set({"hidden_act", "hidden_activation", "activation_function"});
  if (!act_key.empty()) TERN_RETURN_IF_ERROR(f.string_field(act_key, &c.hidden_act));

  TERN_RETURN_IF_ERROR(f.bool_field("tie_word_embeddings", &c.tie_word_embeddings));
  // Qwen2 attention always has q/k/v biases without saying so; qwen2_moe spells the flag qkv_bias.
  if (c.model_type == "qwen2") {
    c.attention_bias = true;
  } else {
    if (c.model_type == "qwen2_moe") c.attention_bias = true;
    TERN_RETURN_IF_ERROR(f.bool_field("qkv_bias", &c.attention_bias));
    TERN_RETURN_IF_ERROR(f.bool_field("attention_bias", &c.attention_bias));
  }
  TERN_RETURN_IF_ERROR(f.bool_field("mlp_bias", &c.mlp_bias));
  TERN_RETURN_IF_ERROR(parse_sliding_window(f, &c));
  TERN_RETURN_IF_ERROR(parse_dtype(f, &c));
  TERN_RETURN_IF_ERROR(f.token_ids("bos_token_id", &c.bos_token_ids));
  TERN_RETURN_IF_ERROR(f.token_ids("eos_token_id", &c.eos_token_ids));
  TERN_RETURN_IF_ERROR(check_token_ids(f, c.vocab_size, &c));
  TERN_RETURN_IF_ERROR(parse_rope(f, source, &c));
  TERN_RETURN_IF_ERROR(parse_mla_config(f, &c));
  return c;
}

Result<GenerationConfig> parse_generation_config(const std::string& json_text, const std::string& source,
                                                 int64_t vocab_size) {
  TERN_ASSIGN_OR_RETURN(ParsedJson parsed, parse_json(json_text, source));
  const json& root = parsed.value;
  if (!root.is_object()) {
    return Status::error(source + ": top level: expected an object, got " + json_type_name(root));
  }
  const ConfigFields f(root, source);
  GenerationConfig g;
  TERN_RETURN_IF_ERROR(f.token_ids("bos_token_id", &g.bos_token_ids));
  TERN_RETURN_IF_ERROR(f.token_ids("eos_token_id", &g.eos_token_ids));
  ModelConfig ids;
  ids.bos_token_ids = g.bos_token_ids;
  ids.eos_token_ids = g.eos_token_ids;
  TERN_RETURN_IF_ERROR(check_token_ids(f, vocab_size, &ids));
  return g;
}

Result<std::optional<GenerationConfig>> load_generation_config(const std::string& model_dir, int64_t vocab_size) {
  const std::string path = model_dir + "/generation_config.json";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::optional<GenerationConfig>();
  TERN_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  TERN_ASSIGN_OR_RETURN(GenerationConfig g, parse_generation_config(text, path, vocab_size));
  return std::optional<GenerationConfig>(std::move(g));
}

Result<ModelConfig> load_model_config(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  TERN_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  return parse_model_config(text, path);
}

}  // namespace tern
