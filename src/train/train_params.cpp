#include "train/train_params.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/dtype.h"
#include "core/mapped_file.h"

namespace tern::train {

Result<LlamaShape> llama_shape(const ModelConfig& c, const std::string& src) {
  auto bad = [&](const std::string& field, const std::string& why) {
    return Status::error(fmt::format("{}: {}: {} (tern distill trains the Llama family: LlamaForCausalLM, "
                                     "MistralForCausalLM without a sliding window)", src, field, why));
  };
  if (c.architecture != "LlamaForCausalLM" && c.architecture != "MistralForCausalLM")
    return bad("architectures", fmt::format("\"{}\" is not supported for training", c.architecture));
  if (c.moe.enabled()) return bad("num_local_experts", "mixture-of-experts layers are not supported for training");
  if (c.mla.enabled()) return bad("kv_lora_rank", "latent attention is not supported for training");
  if (c.attention_bias) return bad("attention_bias", "true is not supported for training");
  if (c.mlp_bias) return bad("mlp_bias", "true is not supported for training");
  if (c.hidden_act != "silu") return bad("hidden_act", fmt::format("\"{}\" is not supported (silu only)", c.hidden_act));
  if (c.sliding_window > 0) return bad("sliding_window", "a sliding window is not supported for training");
  if (c.rope_type != "default" && c.rope_type != "llama3")
    return bad("rope_type", fmt::format("\"{}\" is not supported for training (default, llama3)", c.rope_type));
  if (c.rope.rotary_dim != 0 && c.rope.rotary_dim != c.head_dim) return bad("partial_rotary_factor", "partial rotary is not supported");
  if (c.n_heads <= 0 || c.n_kv_heads <= 0 || c.n_heads % c.n_kv_heads != 0 || c.head_dim <= 0 || c.head_dim % 2 != 0)
    return bad("num_attention_heads", "heads, KV heads and head_dim are inconsistent");
  LlamaShape s;
  s.vocab = c.vocab_size;
  s.hidden = c.hidden_size;
  s.inter = c.intermediate_size;
  s.layers = c.n_layers;
  s.heads = c.n_heads;
  s.kv_heads = c.n_kv_heads;
  s.head_dim = c.head_dim;
  s.eps = c.rms_norm_eps;
  s.tied = c.tie_word_embeddings;
  RopeConfig rc = c.rope;
  rc.rotary_dim = c.head_dim;
  s.inv_freq = rope_inv_freq(rc);
  if (s.vocab <= 0 || s.hidden <= 0 || s.inter <= 0 || s.layers <= 0) return bad("hidden_size", "a size is not positive");
  return s;
}

ParamLayout::ParamLayout(const LlamaShape& s) : s_(s) {
  auto add = [&](std::string name, std::vector<int64_t> shape, bool decay) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    tensors_.push_back(ParamTensor{std::move(name), std::move(shape), total_, n, decay});
    total_ += n;
  };
  const int64_t H = s.hidden, qd = int64_t(s.heads) * s.head_dim, kvd = int64_t(s.kv_heads) * s.head_dim;
  add("model.embed_tokens.weight", {s.vocab, H}, true);
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    layer_base_.push_back(total_);
    add(p + "input_layernorm.weight", {H}, false);
    add(p + "self_attn.q_proj.weight", {qd, H}, true);
    add(p + "self_attn.k_proj.weight", {kvd, H}, true);
    add(p + "self_attn.v_proj.weight", {kvd, H}, true);
    add(p + "self_attn.o_proj.weight", {H, qd}, true);
    add(p + "post_attention_layernorm.weight", {H}, false);
    add(p + "mlp.gate_proj.weight", {s.inter, H}, true);
    add(p + "mlp.up_proj.weight", {s.inter, H}, true);
    add(p + "mlp.down_proj.weight", {H, s.inter}, true);
  }
  final_norm_ = total_;
  add("model.norm.weight", {H}, false);
  if (!s.tied) {
    lm_head_ = total_;
    add("lm_head.weight", {s.vocab, H}, true);
  }
}

LayerView ParamLayout::layer(float* base, int l) const {
  const int64_t H = s_.hidden, qd = int64_t(s_.heads) * s_.head_dim, kvd = int64_t(s_.kv_heads) * s_.head_dim;
  float* p = base + layer_base_[size_t(l)];
  LayerView v;
  v.attn_norm = p; p += H;
  v.wq = p; p += qd * H;
  v.wk = p; p += kvd * H;
  v.wv = p; p += kvd * H;
  v.wo = p; p += H * qd;
  v.ffn_norm = p; p += H;
  v.wg = p; p += s_.inter * H;
  v.wu = p; p += s_.inter * H;
  v.wd = p;
  return v;
}

Status load_params(const ParamLayout& layout, const TensorSource& store, float* params) {
  for (const ParamTensor& t : layout.tensors()) {
    const TensorInfo* info = store.find(t.name);
    if (info == nullptr) return Status::error(fmt::format("{}: no tensor {}", store.source(), t.name));
    if (info->shape != t.shape)
      return Status::error(fmt::format("{}: tensor {} has shape [{}], the config says [{}]", store.source(), t.name,
                                       fmt::join(info->shape, ", "), fmt::join(t.shape, ", ")));
    if (!dtype_is_float(info->dtype) || info->gguf_type >= 0 || info->stored_transposed)
      return Status::error(fmt::format("{}: tensor {} is {}, not bf16/f16/f32", store.source(), t.name, dtype_name(info->dtype)));
    float* dst = params + t.offset;
    for (int64_t i = 0; i < t.numel; ++i) dst[i] = load_as_f32(info->data, info->dtype, size_t(i));
  }
  return Status::ok();
}

void init_params_random(const ParamLayout& layout, uint64_t seed, double std, float* params) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, float(std));
  for (const ParamTensor& t : layout.tensors()) {
    float* p = params + t.offset;
    if (t.shape.size() == 1) std::fill(p, p + t.numel, 1.f);
    else for (int64_t i = 0; i < t.numel; ++i) p[i] = normal(rng);
  }
}

namespace {
Status rename_into(const std::string& from, const std::string& to) {
  std::error_code ec;
  std::filesystem::rename(from, to, ec);
  if (ec) return Status::error(fmt::format("{}: cannot rename to {}: {}", from, to, ec.message()));
  return Status::ok();
}
}  // namespace

Status save_checkpoint(const ParamLayout& layout, const float* params, const std::string& dir,
                       const std::string& config_json, const std::string& tokenizer_dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::error(fmt::format("{}: cannot create: {}", dir, ec.message()));
  std::vector<TensorToWrite> tensors;
  for (const ParamTensor& t : layout.tensors())
    tensors.push_back(TensorToWrite{t.name, DType::F32, t.shape, params + t.offset, size_t(t.numel) * sizeof(float)});
  const std::string st = dir + "/model.safetensors";
  TERN_RETURN_IF_ERROR(write_safetensors(st + ".tmp", tensors, {{"format", "pt"}}));
  TERN_RETURN_IF_ERROR(rename_into(st + ".tmp", st));
  std::filesystem::remove(dir + "/model.safetensors.index.json", ec);  // a sharded checkpoint written before
  nlohmann::ordered_json cfg = nlohmann::ordered_json::parse(config_json, nullptr, false);
  if (!cfg.is_object()) return Status::error("the student's config.json is not a JSON object");
  if (cfg.contains("torch_dtype")) cfg["torch_dtype"] = "float32";
  cfg["dtype"] = "float32";
  {
    std::ofstream f(dir + "/config.json.tmp");
    f << cfg.dump(2) << "\n";
    if (!f) return Status::error(fmt::format("{}/config.json: cannot write", dir));
  }
  TERN_RETURN_IF_ERROR(rename_into(dir + "/config.json.tmp", dir + "/config.json"));
  if (std::filesystem::equivalent(tokenizer_dir, dir, ec)) return Status::ok();
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
                           "chat_template.jinja", "chat_template.json", "tokenizer.model", "vocab.json", "merges.txt"}) {
    const std::filesystem::path from = std::filesystem::path(tokenizer_dir) / name;
    if (!std::filesystem::exists(from, ec)) continue;
    std::filesystem::copy_file(from, std::filesystem::path(dir) / name, std::filesystem::copy_options::overwrite_existing, ec);
    if (ec) return Status::error(fmt::format("{}: cannot copy into {}: {}", from.string(), dir, ec.message()));
  }
  return Status::ok();
}

}  // namespace tern::train
