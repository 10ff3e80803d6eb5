// tern info: what a checkpoint is — architecture, shape, parameters, dtypes, bytes, KV per token.
#include <fmt/format.h>

#include <map>
#include <nlohmann/json.hpp>

#include "cli_common.h"

namespace tern::cli {

namespace {

void info(const std::string& dir, bool json) {
  auto model = unwrap(Model::load(dir));
  const ModelConfig& c = model->config();
  // Parameters at their logical shapes, by storage format (a quantized layer's packed words, scales and
  // zero points count as bytes, not as parameters).
  const std::map<std::string, int64_t> params_by_dtype = model->parameters_by_format();
  int64_t bytes = 0;
  for (const auto& t : model->store().tensors()) bytes += int64_t(t.bytes);
  if (const GgufFile* g = model->gguf()) {
    for (const auto& t : g->tensors()) bytes += int64_t(t.bytes);
  }
  const int64_t kv_bf16 = c.kv_bytes_per_token(2), kv_f32 = c.kv_bytes_per_token(4);
  if (json) {
    nlohmann::ordered_json j;
    j["architecture"] = c.architecture;
    j["model_type"] = c.model_type;
    j["parameters"] = model->parameter_count();
    j["dtypes"] = params_by_dtype;
    j["weight_bytes"] = bytes;
    j["weight_bytes_per_token"] = model->weight_bytes_per_token();
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
  fmt::print("dtypes           {}\n", dtypes);
  fmt::print("weight bytes     {} ({:.2f} MiB)\n", bytes, double(bytes) / (1 << 20));
  fmt::print("bytes per token  {} ({:.2f} MiB streamed per decode step)\n", model->weight_bytes_per_token(),
             double(model->weight_bytes_per_token()) / (1 << 20));
  fmt::print("layers           {}\n", c.n_layers);
  fmt::print("hidden           {}  intermediate {}\n", c.hidden_size, c.intermediate_size);
  fmt::print("heads            {} query, {} kv, head_dim {}\n", c.n_heads, c.n_kv_heads, c.head_dim);
  fmt::print("vocab            {}{}\n", c.vocab_size, c.tie_word_embeddings ? " (embeddings tied to the LM head)" : "");
  fmt::print("context          {}  rope {} theta {}\n", c.max_position_embeddings, c.rope_type, c.rope.theta);
  if (c.sliding_window > 0) fmt::print("sliding window   {}\n", c.sliding_window);
  fmt::print("KV per token     {} bytes in bf16 ({:.1f} KiB), {} bytes in f32\n", kv_bf16, double(kv_bf16) / 1024, kv_f32);
}

}  // namespace

void register_info(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("info", "describe a checkpoint");
  add_model_option(*cmd, *dir);
  cmd->add_flag("--json", *json, "print one JSON object");
  cmd->callback([dir, json] { info(*dir, *json); });
}

}  // namespace tern::cli
