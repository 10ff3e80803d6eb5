// config.json -> MlaConfig. Transformers' DeepseekV3Config fills absent MLA fields with DeepSeek-V3's
// sizes; tern asks for them instead (a missing rank is far more likely a wrong file than a wish for
// the defaults), except rope_interleave, which DeepSeek's own configs predate (default true, as
// transformers').
#include "formats/mla_config.h"

#include <cmath>
#include <string>

#include "formats/config_fields.h"
#include "formats/model_config.h"

namespace tern {

Status parse_mla_config(const ConfigFields& f, ModelConfig* c) {
  const bool deepseek = c->model_type == "deepseek_v2" || c->model_type == "deepseek_v3";
  if (!deepseek && !f.get("kv_lora_rank")) return Status::ok();
  MlaConfig& m = c->mla;
  int64_t v = 0;
  TERN_RETURN_IF_ERROR(f.int_field("kv_lora_rank", 1, 1 << 16, &m.kv_lora_rank, true));
  // null means a plain q_proj; absent is an error (transformers would silently use 1536).
  if (!f.has_key("q_lora_rank")) return f.error("q_lora_rank", "missing (null for a plain q_proj)");
  TERN_RETURN_IF_ERROR(f.int_field("q_lora_rank", 1, 1 << 16, &m.q_lora_rank, false));
  TERN_RETURN_IF_ERROR(f.int_field("qk_nope_head_dim", 0, 1 << 14, &v, true));
  m.qk_nope_head_dim = int(v);
  TERN_RETURN_IF_ERROR(f.int_field("qk_rope_head_dim", 2, 1 << 14, &v, true));
  m.qk_rope_head_dim = int(v);
  if (m.qk_rope_head_dim % 2 != 0) {
    return f.error("qk_rope_head_dim", std::to_string(m.qk_rope_head_dim) + " is odd (rope needs pairs)");
  }
  TERN_RETURN_IF_ERROR(f.int_field("v_head_dim", 1, 1 << 14, &v, true));
  m.v_head_dim = int(v);
  if (f.get("qk_head_dim")) {
    TERN_RETURN_IF_ERROR(f.int_field("qk_head_dim", 1, 1 << 15, &v, true));
    if (v != m.qk_head_dim()) {
      return f.error("qk_head_dim", std::to_string(v) + " is not qk_nope_head_dim + qk_rope_head_dim = " +
                                        std::to_string(m.qk_nope_head_dim) + " + " +
                                        std::to_string(m.qk_rope_head_dim) + " (qk_rope_head_dim larger than the head?)");
    }
  }
  // transformers sets head_dim = qk_rope_head_dim: it is the rotary dimension.
  if (f.get("head_dim") && c->head_dim != m.qk_rope_head_dim) {
    return f.error("head_dim", std::to_string(c->head_dim) + " differs from qk_rope_head_dim " +
                                   std::to_string(m.qk_rope_head_dim) + " (MLA rotates qk_rope_head_dim dims)");
  }
  if (c->rope.rotary_dim != c->head_dim) return f.error("partial_rotary_factor", "is not supported with MLA");
  if (c->n_kv_heads != c->n_heads) {
    return f.error("num_key_value_heads", std::to_string(c->n_kv_heads) + " differs from num_attention_heads " +
                                              std::to_string(c->n_heads) + " (MLA has one latent for all heads)");
  }
  TERN_RETURN_IF_ERROR(f.bool_field("rope_interleave", &m.rope_interleave));
  TERN_RETURN_IF_ERROR(f.int_field("num_nextn_predict_layers", 0, 64, &v, false));
  if (f.get("num_nextn_predict_layers")) m.nextn_predict_layers = int(v);
  c->head_dim = m.qk_rope_head_dim;
  c->rope.rotary_dim = m.qk_rope_head_dim;

  m.softmax_scale = std::pow(double(m.qk_head_dim()), -0.5);
  if (c->rope.yarn_factor > 0 && c->rope.yarn_mscale_all_dim > 0) {
    const double mscale = yarn_get_mscale(c->rope.yarn_factor, c->rope.yarn_mscale_all_dim);
    m.softmax_scale *= mscale * mscale;
  }
  return Status::ok();
}

}  // namespace tern
