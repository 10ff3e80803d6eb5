#include "model/synth.h"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "formats/safetensors.h"
#include "model/synth_moe.h"
#include "text/tokenizer/tokenizer.h"

namespace tern {

const std::vector<SynthShape>& synth_shapes() {
  // Published configs of the real models (hidden, intermediate, vocab, context, layers, heads, kv, head_dim).
  static const std::vector<SynthShape> shapes = [] {
    std::vector<SynthShape> s;
    SynthShape l32{"llama-3.2-1b", "LlamaForCausalLM", "llama", 2048, 8192, 128256, 131072, 16, 32, 8, 64};
    l32.rope_theta = 500000, l32.llama3_factor = 32, l32.tied = true, l32.bos = 128000, l32.eos = 128001;
    s.push_back(l32);
    SynthShape l31{"llama-3.1-8b", "LlamaForCausalLM", "llama", 4096, 14336, 128256, 131072, 32, 32, 8, 128};
    l31.rope_theta = 500000, l31.llama3_factor = 8, l31.bos = 128000, l31.eos = 128001;
    s.push_back(l31);
    SynthShape q25{"qwen2.5-0.5b", "Qwen2ForCausalLM", "qwen2", 896, 4864, 151936, 32768, 24, 14, 2, 64};
    q25.rope_theta = 1e6, q25.rms_eps = 1e-6, q25.tied = true, q25.qkv_bias = true, q25.bos = 151643, q25.eos = 151643;
    s.push_back(q25);
    SynthShape q3{"qwen3-8b", "Qwen3ForCausalLM", "qwen3", 4096, 12288, 151936, 40960, 36, 32, 8, 128};
    q3.rope_theta = 1e6, q3.rms_eps = 1e-6, q3.qk_norm = true, q3.bos = 151643, q3.eos = 151645;
    s.push_back(q3);
    SynthShape m7{"mistral-7b", "MistralForCausalLM", "mistral", 4096, 14336, 32000, 32768, 32, 32, 8, 128};
    m7.sliding_window = 4096;
    s.push_back(m7);
    // A tiny Llama for tests: every code path of the 1B shape (llama3 rope, tied, GQA) in a few MB.
    SynthShape tiny{"tiny-llama", "LlamaForCausalLM", "llama", 128, 384, 8192, 2048, 2, 4, 2, 32};
    tiny.rope_theta = 500000, tiny.llama3_factor = 32, tiny.tied = true, tiny.bos = 0, tiny.eos = 1;
    s.push_back(tiny);
    // A tiny Qwen3 with the real 151,936-token vocabulary: Qwen's tokenizer and chat template on a model that
    // loads and decodes in moments (tool-calling and structured-output tests of the server).
    SynthShape tq3{"tiny-qwen3", "Qwen3ForCausalLM", "qwen3", 64, 128, 151936, 4096, 2, 4, 2, 16};
    tq3.rope_theta = 1e6, tq3.rms_eps = 1e-6, tq3.qk_norm = true, tq3.tied = true, tq3.bos = 151643, tq3.eos = 151645;
    s.push_back(tq3);
    add_moe_synth_shapes(s);
    return s;
  }();
  return shapes;
}

const SynthShape* find_synth_shape(const std::string& name) {
  for (const auto& s : synth_shapes()) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::string synth_config_json(const SynthShape& s, DType dtype) {
  nlohmann::ordered_json j;
  j["architectures"] = {s.architecture};
  j["model_type"] = s.model_type;
  j["hidden_size"] = s.hidden;
  j["intermediate_size"] = s.intermediate;
  j["num_hidden_layers"] = s.layers;
  j["num_attention_heads"] = s.heads;
  j["num_key_value_heads"] = s.kv_heads;
  j["head_dim"] = s.head_dim;
  j["vocab_size"] = s.vocab;
  j["max_position_embeddings"] = s.max_positions;
  j["rms_norm_eps"] = s.rms_eps;
  j["rope_theta"] = s.rope_theta;
  if (s.llama3_factor > 0) {
    j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", s.llama3_factor}, {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0}, {"original_max_position_embeddings", int64_t(s.llama3_original_max)}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  j["hidden_act"] = "silu";
  j["tie_word_embeddings"] = s.tied;
  j["attention_bias"] = s.qkv_bias && s.model_type != "qwen2";
  if (s.model_type == "llama") j["mlp_bias"] = false;
  if (s.model_type == "qwen2" || s.model_type == "qwen3") j["use_sliding_window"] = false;
  if (s.sliding_window > 0) j["sliding_window"] = s.sliding_window;
  j["bos_token_id"] = s.bos;
  j["eos_token_id"] = s.eos;
  j["torch_dtype"] = dtype == DType::BF16 ? "bfloat16" : dtype == DType::F16 ? "float16" : "float32";
  add_moe_config_fields(s, j);
  j["transformers_version"] = "4.46.0";
  return j.dump(2) + "\n";
}

namespace {

std::vector<SynthTensor> synth_tensor_list(const SynthShape& s) {
  const int64_t q = int64_t(s.heads) * s.head_dim, kv = int64_t(s.kv_heads) * s.head_dim;
  std::vector<SynthTensor> t;
  t.push_back({"model.embed_tokens.weight", {s.vocab, s.hidden}});
  for (int i = 0; i < s.layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    t.push_back({p + "input_layernorm.weight", {s.hidden}, true});
    t.push_back({p + "post_attention_layernorm.weight", {s.hidden}, true});
    if (!add_mla_tensors(s, p, t)) {
      t.push_back({p + "self_attn.q_proj.weight", {q, s.hidden}});
      t.push_back({p + "self_attn.k_proj.weight", {kv, s.hidden}});
      t.push_back({p + "self_attn.v_proj.weight", {kv, s.hidden}});
      t.push_back({p + "self_attn.o_proj.weight", {s.hidden, q}});
      if (s.qkv_bias) {
        t.push_back({p + "self_attn.q_proj.bias", {q}});
        t.push_back({p + "self_attn.k_proj.bias", {kv}});
        t.push_back({p + "self_attn.v_proj.bias", {kv}});
      }
      if (s.qk_norm) {
        t.push_back({p + "self_attn.q_norm.weight", {s.head_dim}, true});
        t.push_back({p + "self_attn.k_norm.weight", {s.head_dim}, true});
      }
    }
    if (!add_moe_tensors(s, i, p, t)) {
      t.push_back({p + "mlp.gate_proj.weight", {s.intermediate, s.hidden}});
      t.push_back({p + "mlp.up_proj.weight", {s.intermediate, s.hidden}});
      t.push_back({p + "mlp.down_proj.weight", {s.hidden, s.intermediate}});
    }
  }
  t.push_back({"model.norm.weight", {s.hidden}, true});
  if (!s.tied) t.push_back({"lm_head.weight", {s.vocab, s.hidden}});
  return t;
}

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t hash_name(const std::string& s, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Element i of a tensor ~ N(0, std), as a pure function of (seed, i): Box-Muller on two uniforms
// hashed from the pair index i/2, cos for even i and sin for odd. Any byte range of the tensor can be
// generated on its own, in any order, by any thread, with the same result.
float normal_at(uint64_t seed, int64_t i, double std) {
  uint64_t state = seed ^ (uint64_t(i >> 1) * 0xd1342543de82ef95ull);
  const double u1 = (double(splitmix64(state) >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
  const double u2 = double(splitmix64(state) >> 11) * 0x1.0p-53;
  const double r = std::sqrt(-2.0 * std::log(u1)) * std;
  const double angle = 2 * M_PI * u2;
  return float(r * ((i & 1) ? std::sin(angle) : std::cos(angle)));
}

void store(void* dst, int64_t i, float v, DType dtype) {
  switch (dtype) {
    case DType::F32: static_cast<float*>(dst)[i] = v; break;
    case DType::F16: static_cast<uint16_t*>(dst)[i] = f32_to_f16(v); break;
    case DType::BF16: static_cast<uint16_t*>(dst)[i] = f32_to_bf16(v); break;
    default: break;  // synth writes float dtypes only
  }
}

// dst holds elements [first, first + n) of the tensor: N(0, std), or 1.0 for norm weights.
void fill_elements(ExecContext& ctx, void* dst, DType dtype, int64_t first, int64_t n, bool ones, double std,
                   uint64_t seed) {
  ctx.pool().parallel_for(n, 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) store(dst, i, ones ? 1.0f : normal_at(seed, first + i, std), dtype);
  });
}

Status copy_tokenizer(const std::string& from, const std::string& to, int64_t model_vocab) {
  namespace fs = std::filesystem;
  if (!fs::exists(fs::path(from) / "tokenizer.json")) {
    return Status::error(fmt::format("{}: no tokenizer.json to copy", from));
  }
  TERN_ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::load(from));
  if (tok.vocab_size() > model_vocab) {
    return Status::error(fmt::format("{}: the tokenizer has {} tokens, more than the shape's vocabulary of {}", from,
                                     tok.vocab_size(), model_vocab));
  }
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
    std::error_code ec;
    if (!fs::exists(fs::path(from) / f)) continue;
    fs::copy_file(fs::path(from) / f, fs::path(to) / f, fs::copy_options::overwrite_existing, ec);
    // The source may be read-only (../shared is); the copy must stay writable for a later synth.
    if (!ec) fs::permissions(fs::path(to) / f, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::add, ec);
    if (ec) return Status::error(fmt::format("{}: cannot copy {}: {}", to, f, ec.message()));
  }
  return Status::ok();
}

Status write_text(const std::string& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return Status::error(path + ": cannot write");
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  return std::fclose(f) == 0 && ok ? Status::ok() : Status::error(path + ": write failed");
}

}  // namespace

int64_t synth_parameter_count(const SynthShape& shape) {
  int64_t n = 0;
  for (const SynthTensor& t : synth_tensor_list(shape)) {
    int64_t e = 1;
    for (int64_t d : t.shape) e *= d;
    n += e;
  }
  return n;
}

Status synthesize(ExecContext& ctx, const SynthOptions& opt) {
  const SynthShape* shape = find_synth_shape(opt.shape);
  if (!shape) {
    std::string names;
    for (const auto& s : synth_shapes()) names += (names.empty() ? "" : ", ") + s.name;
    return Status::error(fmt::format("unknown shape '{}' (known: {})", opt.shape, names));
  }
  return synthesize(ctx, *shape, opt);
}

Status synthesize(ExecContext& ctx, const SynthShape& shape_ref, const SynthOptions& opt) {
  const SynthShape* shape = &shape_ref;
  std::error_code ec;
  std::filesystem::create_directories(opt.out_dir, ec);
  if (ec) return Status::error(fmt::format("{}: cannot create: {}", opt.out_dir, ec.message()));
  TERN_RETURN_IF_ERROR(write_text(opt.out_dir + "/config.json", synth_config_json(*shape, opt.dtype)));
  TERN_RETURN_IF_ERROR(write_text(opt.out_dir + "/generation_config.json",
                                  fmt::format("{{\n  \"bos_token_id\": {},\n  \"eos_token_id\": {}\n}}\n", shape->bos, shape->eos)));
  if (!opt.tokenizer_dir.empty()) TERN_RETURN_IF_ERROR(copy_tokenizer(opt.tokenizer_dir, opt.out_dir, shape->vocab));
  if (opt.config_only) return Status::ok();

  std::vector<TensorToWrite> tensors;
  const size_t elem = dtype_size(opt.dtype);
  for (const SynthTensor& t : synth_tensor_list(*shape)) {
    TensorToWrite w;
    w.name = t.name;
    w.dtype = opt.dtype;
    w.shape = t.shape;
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    w.bytes = size_t(n) * elem;
    const uint64_t seed = hash_name(t.name, opt.seed);
    w.fill = [&ctx, &opt, elem, seed, ones = t.ones](size_t offset, size_t bytes, void* dst) {
      fill_elements(ctx, dst, opt.dtype, int64_t(offset / elem), int64_t(bytes / elem), ones, opt.init_std, seed);
    };
    tensors.push_back(std::move(w));
  }
  return write_safetensors_sharded(opt.out_dir, tensors, opt.max_shard_bytes);
}

}  // namespace tern
