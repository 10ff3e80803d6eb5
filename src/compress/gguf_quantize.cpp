#include "compress/gguf_quantize.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "formats/gguf/gguf_config.h"
#include "compress/gguf_export_tensors.h"
#include "formats/gguf/gguf_writer.h"

namespace tern {

namespace {

using nlohmann::json;
using Kv = std::vector<std::pair<std::string, GgufValue>>;

const char* kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// The pre-tokenizer name llama.cpp uses for this tokenizer.json's split regex.
Result<std::string> pre_name(const json& tok, const std::string& src) {
  std::string dump = tok.value("pre_tokenizer", json()).dump();
  if (dump.find(json(kLlama3Regex).dump()) != std::string::npos) return std::string("llama-bpe");
  if (dump.find(json(kQwen2Regex).dump()) != std::string::npos) return std::string("qwen2");
  const json& pre = tok.value("pre_tokenizer", json());
  if (pre.is_object() && pre.value("type", "") == "ByteLevel") return std::string("default");
  return Status::error(src + ": pre-tokenizer not recognized (GGUF export knows Llama-3, Qwen2 and GPT-2 splits)");
}

// tokenizer.ggml.* from DIR/tokenizer.json (+ tokenizer_config.json), byte-level BPE only.
Status tokenizer_kv(const Model& model, Kv& kv) {
  const std::string dir = model.dir(), path = dir + "/tokenizer.json";
  if (!std::filesystem::exists(path)) return Status::ok();  // no tokenizer to carry
  TERN_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  json tok = json::parse(text, nullptr, false);
  json cfg = json::object();
  if (auto c = read_text_file(dir + "/tokenizer_config.json"); c.is_ok()) {
    cfg = json::parse(*c, nullptr, false);
    if (!cfg.is_object()) cfg = json::object();
  }
  if (!tok.is_object() || !tok.contains("model") || tok["model"].value("type", "BPE") != "BPE" ||
      !tok["model"].contains("vocab") || !tok["model"]["vocab"].is_object() || tok["model"].value("byte_fallback", false)) {
    return Status::error(path + ": GGUF export supports byte-level BPE tokenizers only");
  }
  TERN_ASSIGN_OR_RETURN(std::string pre, pre_name(tok, path));
  std::map<int64_t, std::string> by_id;
  for (auto it = tok["model"]["vocab"].begin(); it != tok["model"]["vocab"].end(); ++it) {
    if (it.value().is_number_integer()) by_id[it.value().get<int64_t>()] = it.key();
  }
  std::map<int64_t, bool> added;  // id -> special
  for (const auto& a : tok.value("added_tokens", json::array())) {
    if (!a.is_object() || !a.contains("id") || !a.contains("content")) continue;
    by_id[a["id"].get<int64_t>()] = a["content"].get<std::string>();
    added[a["id"].get<int64_t>()] = a.value("special", false);
  }
  const int64_t n = std::max<int64_t>(model.config().vocab_size, by_id.empty() ? 0 : by_id.rbegin()->first + 1);
  std::vector<std::string> tokens(static_cast<size_t>(n));
  std::vector<int64_t> types(static_cast<size_t>(n), 1);
  std::map<std::string, int64_t> id_of;
  for (int64_t i = 0; i < n; ++i) {
    auto it = by_id.find(i);
    if (it == by_id.end()) {
      tokens[size_t(i)] = fmt::format("[PAD{}]", i), types[size_t(i)] = 5;  // unused hole
      continue;
    }
    tokens[size_t(i)] = it->second;
    id_of[it->second] = i;
    if (added.count(i)) types[size_t(i)] = added[i] ? 3 : 4;
  }
  std::vector<std::string> merges;
  for (const auto& m : tok["model"].value("merges", json::array())) {
    if (m.is_string()) merges.push_back(m.get<std::string>());
    else if (m.is_array() && m.size() == 2) merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
  }
  kv.emplace_back("tokenizer.ggml.model", GgufValue::make_string("gpt2"));
  kv.emplace_back("tokenizer.ggml.pre", GgufValue::make_string(pre));
  kv.emplace_back("tokenizer.ggml.tokens", GgufValue::make_strings(std::move(tokens)));
  kv.emplace_back("tokenizer.ggml.token_type", GgufValue::make_ints(GgufValueType::I32, std::move(types)));
  kv.emplace_back("tokenizer.ggml.merges", GgufValue::make_strings(std::move(merges)));
  auto token_id = [&](const char* key, const std::vector<int32_t>& fallback) -> int64_t {
    json v = cfg.value(key, json());
    if (v.is_object()) v = v.value("content", json());
    if (v.is_string() && id_of.count(v.get<std::string>())) return id_of[v.get<std::string>()];
    return fallback.empty() ? -1 : fallback[0];
  };
  const int64_t bos = token_id("bos_token", model.config().bos_token_ids);
  const int64_t eos = token_id("eos_token", model.config().eos_token_ids);
  if (bos >= 0) kv.emplace_back("tokenizer.ggml.bos_token_id", GgufValue::make_u32(uint32_t(bos)));
  if (eos >= 0) kv.emplace_back("tokenizer.ggml.eos_token_id", GgufValue::make_u32(uint32_t(eos)));
  // BOS is added when tokenizer_config says so, or when the post-processor template starts with it.
  bool add_bos = false;
  if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) {
    add_bos = cfg["add_bos_token"].get<bool>();
  } else {
    const std::string pp = tok.value("post_processor", json()).dump();
    add_bos = pp.find("TemplateProcessing") != std::string::npos && pp.find("\"single\":[{\"SpecialToken\"") != std::string::npos;
  }
  kv.emplace_back("tokenizer.ggml.add_bos_token", GgufValue::make_bool(add_bos));
  kv.emplace_back("tokenizer.ggml.add_eos_token", GgufValue::make_bool(cfg.value("add_eos_token", false) == true));
  if (cfg.contains("chat_template") && cfg["chat_template"].is_string()) {
    kv.emplace_back("tokenizer.chat_template", GgufValue::make_string(cfg["chat_template"].get<std::string>()));
  }
  return Status::ok();
}

// llama3 rope scaling as llama.cpp's converter stores it: one divisor per frequency.
std::vector<double> llama3_divisors(const RopeConfig& r, int head_dim) {
  std::vector<double> out;
  const double lo_wl = r.llama3_original_max_position / r.llama3_low_freq_factor;
  const double hi_wl = r.llama3_original_max_position / r.llama3_high_freq_factor;
  for (int k = 0; k < head_dim; k += 2) {
    const double freq = 1.0 / std::pow(r.theta, double(k) / head_dim);
    const double wl = 2 * M_PI / freq;
    if (wl < hi_wl) {
      out.push_back(1.0);
    } else if (wl > lo_wl) {
      out.push_back(r.llama3_factor);
    } else {
      const double smooth = (r.llama3_original_max_position / wl - r.llama3_low_freq_factor) /
                            (r.llama3_high_freq_factor - r.llama3_low_freq_factor);
      out.push_back(1.0 / ((1 - smooth) / r.llama3_factor + smooth));
    }
  }
  return out;
}

}  // namespace

Status quantize_to_gguf(const Model& model, const std::string& out_path, GgufType type, const GgufProgress& progress) {
  const GgufTypeTraits& tr = gguf_traits(type);
  if (!tr.weights) return Status::error(fmt::format("GGUF type {} cannot hold weights", tr.name));
  // The mix whose base is `type` names the file (a pure Q4_K file says Q4_K_S, as before mixes existed).
  static constexpr std::pair<GgufType, const char*> kNames[] = {
      {GgufType::F32, "F32"},   {GgufType::F16, "F16"},   {GgufType::BF16, "BF16"},   {GgufType::Q8_0, "Q8_0"},
      {GgufType::Q4_0, "Q4_0"}, {GgufType::Q4_1, "Q4_1"}, {GgufType::Q5_0, "Q5_0"},   {GgufType::Q5_1, "Q5_1"},
      {GgufType::Q2_K, "Q2_K"}, {GgufType::Q3_K, "Q3_K_S"}, {GgufType::Q4_K, "Q4_K_S"}, {GgufType::Q5_K, "Q5_K_S"},
      {GgufType::Q6_K, "Q6_K"}};
  for (const auto& [t, name] : kNames) {
    if (t != type) continue;
    TERN_ASSIGN_OR_RETURN(GgufMix mix, gguf_mix_from_name(name));
    mix.pure = true;
    return quantize_to_gguf(model, out_path, mix, progress);
  }
  return Status::error(fmt::format("GGUF type {} cannot hold weights", tr.name));
}

Status quantize_to_gguf(const Model& model, const std::string& out_path, const GgufMix& mix, const GgufProgress& progress) {
  const ModelConfig& c = model.config();
  const GgufArch* arch = gguf_arch_for_hf(c.architecture);
  if (!arch) {
    return Status::error(fmt::format("{}: GGUF export supports {} models, not {}", model.dir(), gguf_architecture_list(),
                                     c.architecture));
  }
  if (model.gguf()) return Status::error(model.dir() + ": GGUF export reads a Hugging Face checkpoint, not a GGUF file");
  if (model.quant_config().quantized()) {
    return Status::error(model.dir() + ": GGUF export needs a dense (unquantized) checkpoint");
  }
  Kv kv;
  TERN_RETURN_IF_ERROR(gguf_config_metadata(c, *arch, model.dir(), &kv));
  kv.emplace_back("general.name", GgufValue::make_string(std::filesystem::path(model.dir()).filename().string()));
  kv.emplace_back("general.alignment", GgufValue::make_u32(32));
  kv.emplace_back("general.file_type", GgufValue::make_u32(mix.file_type));
  if (gguf_traits(mix.base).block_elems > 1) kv.emplace_back("general.quantization_version", GgufValue::make_u32(2));
  TERN_RETURN_IF_ERROR(tokenizer_kv(model, kv));
  TERN_ASSIGN_OR_RETURN(std::vector<GgufTensorToWrite> t, gguf_export_tensors(model.store(), c, *arch, mix));
  std::vector<float> divisors;
  if (c.rope_type == "llama3") {
    for (double d : llama3_divisors(c.rope, c.rope.rotary_dim)) divisors.push_back(float(d));
    t.push_back({"rope_freqs.weight", GgufType::F32, {int64_t(divisors.size())},
                 [&divisors](uint8_t* dst) { std::memcpy(dst, divisors.data(), divisors.size() * sizeof(float)); }});
  }
  return write_gguf(out_path, kv, t, progress);
}

}  // namespace tern
