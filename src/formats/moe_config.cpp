// config.json -> MoeConfig. Semantics follow transformers' modeling_mixtral.py, modeling_qwen2_moe.py,
// modeling_qwen3_moe.py and modeling_deepseek_v3.py; defaults are their config classes' defaults
// where a field may be absent, and fields that shape the routing (expert counts, group sizes,
// the DeepSeek scaling) are required rather than guessed.
#include "formats/moe_config.h"

#include <algorithm>

#include "formats/config_fields.h"

namespace tern {

namespace {

constexpr int64_t kMaxExperts = 1 << 16;
constexpr int64_t kMaxWidth = int64_t(1) << 22;

Status read_int(const ConfigFields& f, const char* key, int64_t lo, int64_t hi, int* out, bool required) {
  int64_t v = *out;
  TERN_RETURN_IF_ERROR(f.int_field(key, lo, hi, &v, required));
  *out = int(v);
  return Status::ok();
}

// Qwen spells the expert count num_experts (transformers 4) or num_local_experts (5).
Status qwen_expert_count(const ConfigFields& f, MoeConfig* m) {
  int64_t a = -1, b = -1;
  TERN_RETURN_IF_ERROR(f.int_field("num_experts", 0, kMaxExperts, &a, false));
  TERN_RETURN_IF_ERROR(f.int_field("num_local_experts", 0, kMaxExperts, &b, false));
  if (a < 0 && b < 0) return f.error("num_experts", "missing");
  if (a >= 0 && b >= 0 && a != b) {
    return f.error("num_local_experts", std::to_string(b) + " contradicts num_experts " + std::to_string(a));
  }
  m->n_experts = int(a >= 0 ? a : b);
  return Status::ok();
}

Status parse_mlp_only_layers(const ConfigFields& f, int n_layers, MoeConfig* m) {
  const nlohmann::json* v = f.get("mlp_only_layers");
  if (!v) return Status::ok();
  if (!v->is_array()) return f.type_error("mlp_only_layers", "a list of layer indices");
  for (const nlohmann::json& x : *v) {
    if (!x.is_number_integer()) return f.error("mlp_only_layers", "expected integer layer indices");
    const int64_t l = x.get<int64_t>();
    if (l < 0 || l >= n_layers || (x.is_number_unsigned() && x.get<uint64_t>() >= uint64_t(n_layers))) {
      return f.error("mlp_only_layers", "layer " + x.dump() + " is outside [0, " + std::to_string(n_layers) + ")");
    }
    m->mlp_only_layers.push_back(int(l));
  }
  return Status::ok();
}

Status parse_mixtral(const ConfigFields& f, MoeConfig* m) {
  TERN_RETURN_IF_ERROR(read_int(f, "num_local_experts", 1, kMaxExperts, &m->n_experts, true));
  TERN_RETURN_IF_ERROR(f.int_field("intermediate_size", 1, kMaxWidth, &m->expert_intermediate, true));
  m->norm_topk_prob = true;  // MixtralSparseMoeBlock always renormalises the top-k softmax
  return Status::ok();
}

Status parse_qwen(const ConfigFields& f, bool shared_expert, int n_layers, MoeConfig* m) {
  TERN_RETURN_IF_ERROR(qwen_expert_count(f, m));
  TERN_RETURN_IF_ERROR(f.int_field("moe_intermediate_size", 1, kMaxWidth, &m->expert_intermediate, true));
  TERN_RETURN_IF_ERROR(f.bool_field("norm_topk_prob", &m->norm_topk_prob));
  TERN_RETURN_IF_ERROR(read_int(f, "decoder_sparse_step", 1, 1 << 16, &m->sparse_step, false));
  TERN_RETURN_IF_ERROR(parse_mlp_only_layers(f, n_layers, m));
  if (shared_expert) {
    TERN_RETURN_IF_ERROR(f.int_field("shared_expert_intermediate_size", 1, kMaxWidth, &m->shared_intermediate, true));
    m->shared_expert_gate = true;
  } else {
    int64_t shared = 0;
    TERN_RETURN_IF_ERROR(f.int_field("shared_expert_intermediate_size", 0, kMaxWidth, &shared, false));
    if (shared != 0) return f.error("shared_expert_intermediate_size", "Qwen3-MoE has no shared expert");
  }
  return Status::ok();
}

Status parse_deepseek(const ConfigFields& f, MoeConfig* m) {
  TERN_RETURN_IF_ERROR(read_int(f, "n_routed_experts", 1, kMaxExperts, &m->n_experts, true));
  TERN_RETURN_IF_ERROR(f.int_field("moe_intermediate_size", 1, kMaxWidth, &m->expert_intermediate, true));
  int n_shared = 0;
  TERN_RETURN_IF_ERROR(read_int(f, "n_shared_experts", 0, 1 << 10, &n_shared, true));
  m->shared_intermediate = n_shared * m->expert_intermediate;
  m->scoring = MoeScoring::kSigmoid;
  m->correction_bias = true;
  m->norm_topk_prob = true;  // DeepseekV3Config's default
  TERN_RETURN_IF_ERROR(f.bool_field("norm_topk_prob", &m->norm_topk_prob));
  TERN_RETURN_IF_ERROR(read_int(f, "n_group", 1, kMaxExperts, &m->n_group, true));
  TERN_RETURN_IF_ERROR(read_int(f, "topk_group", 1, kMaxExperts, &m->topk_group, true));
  TERN_RETURN_IF_ERROR(f.positive_number("routed_scaling_factor", &m->routed_scaling_factor, true));
  TERN_RETURN_IF_ERROR(read_int(f, "first_k_dense_replace", 0, 10000, &m->first_k_dense, true));

  std::string s;
  TERN_RETURN_IF_ERROR(f.string_field("scoring_func", &s));
  if (!s.empty() && s != "sigmoid") {
    return f.error("scoring_func", "'" + s + "' is not supported (DeepSeek-V3 scores experts with sigmoid)");
  }
  s.clear();
  TERN_RETURN_IF_ERROR(f.string_field("topk_method", &s));
  if (!s.empty() && s != "noaux_tc") {
    return f.error("topk_method", "'" + s + "' is not supported (DeepSeek-V3 routes with noaux_tc)");
  }
  int freq = 1;
  TERN_RETURN_IF_ERROR(read_int(f, "moe_layer_freq", 1, 1 << 16, &freq, false));
  if (freq != 1) {
    return f.error("moe_layer_freq", std::to_string(freq) + " is not supported (transformers ignores it; only 1 "
                                                            "means the same in both)");
  }
  return Status::ok();
}

// The constraints every family shares once the fields are read.
Status check(const ConfigFields& f, const char* experts_key, int n_layers, MoeConfig* m) {
  TERN_RETURN_IF_ERROR(read_int(f, "num_experts_per_tok", 1, kMaxExperts, &m->top_k, true));
  if (m->top_k > m->n_experts) {
    return f.error("num_experts_per_tok", std::to_string(m->top_k) + " exceeds " + experts_key + " " +
                                              std::to_string(m->n_experts));
  }
  if (m->n_experts % m->n_group != 0) {
    return f.error("n_group", std::to_string(m->n_group) + " does not divide " + experts_key + " " +
                                  std::to_string(m->n_experts));
  }
  if (m->topk_group > m->n_group) {
    return f.error("topk_group", std::to_string(m->topk_group) + " exceeds n_group " + std::to_string(m->n_group));
  }
  const int per_group = m->n_experts / m->n_group;
  // A group's score is the sum of its two best experts (transformers' topk(2)).
  if (m->n_group > 1 && per_group < 2) {
    return f.error("n_group", std::to_string(m->n_group) + " leaves fewer than 2 experts per group");
  }
  if (m->top_k > m->topk_group * per_group) {
    return f.error("num_experts_per_tok", std::to_string(m->top_k) + " exceeds the " + std::to_string(m->topk_group) +
                                              " allowed groups' " + std::to_string(m->topk_group * per_group) +
                                              " experts");
  }
  if (m->first_k_dense > n_layers) {
    return f.error("first_k_dense_replace", std::to_string(m->first_k_dense) + " exceeds num_hidden_layers " +
                                                std::to_string(n_layers));
  }
  return Status::ok();
}

}  // namespace

bool MoeConfig::is_moe_layer(int layer) const {
  if (!enabled() || layer < first_k_dense || (layer + 1) % sparse_step != 0) return false;
  return std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) == mlp_only_layers.end();
}

int MoeConfig::n_moe_layers(int n_layers) const {
  int n = 0;
  for (int l = 0; l < n_layers; ++l) n += is_moe_layer(l) ? 1 : 0;
  return n;
}

Status parse_moe_config(const ConfigFields& f, const std::string& model_type, int n_layers, MoeConfig* out) {
  MoeConfig m;
  const char* experts_key = "num_experts";
  if (model_type == "mixtral") {
    experts_key = "num_local_experts";
    TERN_RETURN_IF_ERROR(parse_mixtral(f, &m));
  } else if (model_type == "qwen2_moe" || model_type == "qwen3_moe") {
    if (!f.get("num_experts")) experts_key = "num_local_experts";
    TERN_RETURN_IF_ERROR(parse_qwen(f, model_type == "qwen2_moe", n_layers, &m));
    if (m.n_experts == 0) {  // transformers builds every layer dense then
      *out = MoeConfig{};
      return Status::ok();
    }
  } else if (model_type == "deepseek_v3") {
    experts_key = "n_routed_experts";
    TERN_RETURN_IF_ERROR(parse_deepseek(f, &m));
  } else {
    *out = MoeConfig{};
    return Status::ok();
  }
  TERN_RETURN_IF_ERROR(check(f, experts_key, n_layers, &m));
  *out = std::move(m);
  return Status::ok();
}

}  // namespace tern
