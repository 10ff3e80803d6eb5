// tern info: what a checkpoint is — architecture, shape, parameters (total and, for a mixture of
// experts, active per token), dtypes, bytes, the weight bytes one decode token reads, KV per token.
// A directory holding config.json but no weights (a published config; a model this machine cannot
// hold) is described from config.json arithmetic alone (plan/params.h), as `tern plan` prices it.
#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "formats/gguf/gguf_file.h"
#include "plan/kv_bytes.h"
#include "plan/model_source.h"
#include "plan/params.h"
#include "plan/precision.h"

namespace tern::cli {

namespace {

// What config.json arithmetic says (the planner's view): parameters total and active, and for a
// mixture of experts the bytes one decode token streams — attention, routers, the experts_per_token
// routed experts it visits, shared experts, norms and the LM head; not the other experts.
struct ShapeFacts {
  plan::ModelShape shape;
  plan::ParamCounts params;
  double total_bytes = 0;      // every weight at the checkpoint's precision (0: precision unknown)
  double bytes_per_token = 0;  // one decode token's stream (0: precision unknown)
};

Result<ShapeFacts> shape_facts(const std::string& path) {
  TERN_ASSIGN_OR_RETURN(plan::ModelSource src, plan::load_model_source(path));
  ShapeFacts f;
  f.shape = std::move(src.shape);
  f.params = plan::count_params(f.shape);
  if (f.shape.dtype_error.empty()) {
    auto p = plan::parse_weight_precision(f.shape.dtype);
    if (p.is_ok()) {
      const plan::WeightBytes b = plan::weight_bytes(f.shape, *p);
      f.total_bytes = b.total;
      f.bytes_per_token = b.streamed(1, f.shape.n_experts, f.shape.experts_per_token);
    }
  }
  return f;
}

bool has_weights(const std::string& path) {
  std::error_code ec;
  return is_gguf_file(path) || std::filesystem::exists(path + "/model.safetensors", ec) ||
         std::filesystem::exists(path + "/model.safetensors.index.json", ec);
}

// As the paged pool stores it (plan/kv_bytes.h): K and V per KV head, or MLA's one latent row.
int64_t kv_per_token(const plan::ModelShape& s, int elem_bytes) {
  return int64_t(plan::kv_bytes_per_token(s, plan::kv_precision(elem_bytes == 4 ? KvDType::F32 : KvDType::BF16)));
}

std::string experts_line(const plan::ModelShape& s) {
  std::string line = fmt::format("{} routed, {} per token, in {} of {} layers (expert intermediate {})", s.n_experts,
                                 s.experts_per_token, s.moe_layers(), s.layers, s.expert_intermediate);
  if (s.n_shared_experts > 0) line += fmt::format("; {} shared", s.n_shared_experts);
  if (s.shared_intermediate > 0) line += fmt::format("; a shared expert of intermediate {}", s.shared_intermediate);
  return line;
}

void add_shape_json(nlohmann::ordered_json& j, const ShapeFacts& f) {
  const plan::ModelShape& s = f.shape;
  j["active_parameters"] = f.params.active;
  if (s.is_moe()) {
    j["experts"] = {{"routed", s.n_experts},         {"per_token", s.experts_per_token},
                    {"shared", s.n_shared_experts},  {"shared_intermediate", s.shared_intermediate},
                    {"moe_layers", s.moe_layers()},  {"expert_intermediate", s.expert_intermediate},
                    {"routed_parameters", f.params.routed_experts}};
  }
  if (s.is_mla()) {
    j["mla"] = {{"q_lora_rank", s.q_lora_rank},
                {"kv_lora_rank", s.kv_lora_rank},
                {"qk_nope_head_dim", s.qk_nope_head_dim},
                {"qk_rope_head_dim", s.qk_rope_head_dim},
                {"v_head_dim", s.v_head_dim}};
  }
}

// 30.53 B, 0.29 M
std::string count(int64_t n) {
  return n >= 1000000000 ? fmt::format("{:.2f} B", double(n) / 1e9) : fmt::format("{:.2f} M", double(n) / 1e6);
}

void print_shape_lines(const ShapeFacts& f) {
  const plan::ModelShape& s = f.shape;
  if (s.is_moe()) {
    fmt::print("active params    {} per token ({} of {})\n", f.params.active, count(f.params.active),
               count(f.params.total()));
    fmt::print("experts          {}\n", experts_line(s));
  }
  if (s.is_mla()) {
    fmt::print("latent attention q_lora_rank {}, kv_lora_rank {}, qk dims {} + {} rope, v_head_dim {}\n", s.q_lora_rank,
               s.kv_lora_rank, s.qk_nope_head_dim, s.qk_rope_head_dim, s.v_head_dim);
  }
}

std::string kv_line(const plan::ModelShape& s) {
  const int64_t bf16 = kv_per_token(s, 2), f32 = kv_per_token(s, 4);
  std::string line = fmt::format("{} bytes in bf16 ({:.1f} KiB), {} bytes in f32", bf16, double(bf16) / 1024, f32);
  if (s.is_mla()) line += fmt::format(" (the latent: {} + {} values per layer)", s.kv_lora_rank, s.qk_rope_head_dim);
  return line;
}

// No weights: config.json only.
void info_from_config(const std::string& dir, bool json) {
  const ShapeFacts f = unwrap(shape_facts(dir));
  const plan::ModelShape& s = f.shape;
  if (json) {
    nlohmann::ordered_json j;
    j["config_only"] = true;
    j["architecture"] = s.architecture;
    j["model_type"] = s.model_type;
    j["parameters"] = f.params.total();
    add_shape_json(j, f);
    j["dtype"] = s.dtype;
    j["weight_bytes"] = f.total_bytes;
    j["weight_bytes_per_token"] = f.bytes_per_token;
    j["kv_bytes_per_token_bf16"] = kv_per_token(s, 2);
    j["kv_bytes_per_token_f32"] = kv_per_token(s, 4);
    j["layers"] = s.layers;
    j["hidden_size"] = s.hidden;
    j["intermediate_size"] = s.intermediate;
    j["heads"] = s.heads;
    j["kv_heads"] = s.kv_heads;
    j["head_dim"] = s.head_dim;
    j["vocab_size"] = s.vocab;
    j["context"] = s.max_positions;
    j["tied_embeddings"] = s.tied_embeddings;
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("model            {} (config.json only: no weights in this directory)\n", dir);
  fmt::print("architecture     {} ({})\n", s.architecture, s.model_type);
  fmt::print("parameters       {} ({:.2f} B)\n", f.params.total(), double(f.params.total()) / 1e9);
  print_shape_lines(f);
  if (f.total_bytes > 0) {
    fmt::print("weight bytes     {:.0f} ({:.2f} GiB in {})\n", f.total_bytes, f.total_bytes / (1 << 30), s.dtype);
    fmt::print("bytes per token  {:.0f} ({:.2f} GiB streamed per decode step)\n", f.bytes_per_token,
               f.bytes_per_token / (1 << 30));
  } else {
    fmt::print("weight bytes     unknown ({})\n", s.dtype_error);
  }
  fmt::print("layers           {}\n", s.layers);
  fmt::print("hidden           {}  intermediate {}\n", s.hidden, s.intermediate);
  if (s.is_mla()) {
    fmt::print("heads            {} (latent attention: qk head {}, v head {})\n", s.heads,
               s.qk_nope_head_dim + s.qk_rope_head_dim, s.v_head_dim);
  } else {
    fmt::print("heads            {} query, {} kv, head_dim {}\n", s.heads, s.kv_heads, s.head_dim);
  }
  fmt::print("vocab            {}{}\n", s.vocab, s.tied_embeddings ? " (embeddings tied to the LM head)" : "");
  fmt::print("context          {}\n", s.max_positions);
  fmt::print("KV per token     {}\n", kv_line(s));
}

void info(const std::string& dir, bool json) {
  if (!has_weights(dir)) return info_from_config(dir, json);
  auto model = unwrap(Model::load(dir));
  const ModelConfig& c = model->config();
  // The config arithmetic beside the loaded weights: active parameters, experts, latent attention.
  // A GGUF file's shape is the dense one its metadata gives; a config the planner cannot read is left out.
  auto facts = shape_facts(dir);
  const bool moe = facts.is_ok() && facts->shape.is_moe();
  const bool mla = facts.is_ok() && facts->shape.is_mla();
  // Parameters at their logical shapes, by storage format (a quantized layer's packed words, scales and
  // zero points count as bytes, not as parameters).
  const std::map<std::string, int64_t> params_by_dtype = model->parameters_by_format();
  int64_t bytes = 0;
  for (const auto& t : model->store().tensors()) bytes += int64_t(t.bytes);
  if (const GgufFile* g = model->gguf()) {
    for (const auto& t : g->tensors()) bytes += int64_t(t.bytes);
  }
  // Decode reads every bound matrix of a dense model; a mixture of experts only the experts a token
  // visits, which the planner's arithmetic prices (at the checkpoint precision).
  int64_t per_token = model->weight_bytes_per_token();
  if (moe && facts->bytes_per_token > 0) per_token = int64_t(facts->bytes_per_token);
  const int64_t kv_bf16 = mla ? kv_per_token(facts->shape, 2) : c.kv_bytes_per_token(2);
  const int64_t kv_f32 = mla ? kv_per_token(facts->shape, 4) : c.kv_bytes_per_token(4);
  if (json) {
    nlohmann::ordered_json j;
    j["architecture"] = c.architecture;
    j["model_type"] = c.model_type;
    j["parameters"] = model->parameter_count();
    if (facts.is_ok()) add_shape_json(j, *facts);
    j["dtypes"] = params_by_dtype;
    j["weight_bytes"] = bytes;
    j["weight_bytes_per_token"] = per_token;
    j["kv_bytes_per_token_bf16"] = kv_bf16;
    j["kv_bytes_per_token_f32"] = kv_f32;
    j["layers"] = c.n_layers;
    j["hidden_size"] = c.hidden_size;
    j["intermediate_size"] = c.intermediate_size;
    j["heads"] = c.n_heads;
    j["kv_heads"] = c.n_kv_heads;
    j["head_dim"] = c.head_dim;
    j["vocab_size"] = c.vocab_size;
    j["context"] = c.max_position_embeddings;
    j["tied_embeddings"] = c.tie_word_embeddings;
    j["rope_type"] = c.rope_type;
    j["rope_theta"] = c.rope.theta;
    j["sliding_window"] = c.sliding_window;
    fmt::print("{}\n", j.dump(2));
    return;
  }
  std::string dtypes;
  for (const auto& [name, n] : params_by_dtype) dtypes += fmt::format("{}{} ({} params)", dtypes.empty() ? "" : ", ", name, n);
  fmt::print("model            {}\n", dir);
  fmt::print("architecture     {} ({})\n", c.architecture, c.model_type);
  fmt::print("parameters       {} ({:.2f} M)\n", model->parameter_count(), double(model->parameter_count()) / 1e6);
  if (facts.is_ok()) print_shape_lines(*facts);
  fmt::print("dtypes           {}\n", dtypes);
  fmt::print("weight bytes     {} ({:.2f} MiB)\n", bytes, double(bytes) / (1 << 20));
  fmt::print("bytes per token  {} ({:.2f} MiB streamed per decode step{})\n", per_token, double(per_token) / (1 << 20),
             moe ? fmt::format(": {} of {} experts", facts->shape.experts_per_token, facts->shape.n_experts) : "");
  fmt::print("layers           {}\n", c.n_layers);
  fmt::print("hidden           {}  intermediate {}\n", c.hidden_size, c.intermediate_size);
  fmt::print("heads            {} query, {} kv, head_dim {}\n", c.n_heads, c.n_kv_heads, c.head_dim);
  fmt::print("vocab            {}{}\n", c.vocab_size, c.tie_word_embeddings ? " (embeddings tied to the LM head)" : "");
  fmt::print("context          {}  rope {} theta {}\n", c.max_position_embeddings, c.rope_type, c.rope.theta);
  if (c.sliding_window > 0) fmt::print("sliding window   {}\n", c.sliding_window);
  if (mla) {
    fmt::print("KV per token     {}\n", kv_line(facts->shape));
  } else {
    fmt::print("KV per token     {} bytes in bf16 ({:.1f} KiB), {} bytes in f32\n", kv_bf16, double(kv_bf16) / 1024, kv_f32);
  }
}

}  // namespace

void register_info(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("info", "describe a checkpoint (or, without weights, its config.json)");
  add_model_option(*cmd, *dir);
  cmd->add_flag("--json", *json, "print one JSON object");
  cmd->callback([dir, json] { info(*dir, *json); });
}

}  // namespace tern::cli
