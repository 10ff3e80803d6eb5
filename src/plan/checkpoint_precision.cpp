#include "plan/checkpoint_precision.h"

#include <fmt/format.h>

#include "formats/json_util.h"

namespace tern::plan {

namespace {

using nlohmann::json;

struct QcReader {
  const json& qc;
  const std::string& source;
  Status fail(const std::string& key, const std::string& what) const {
    return Status::error(fmt::format("{}: quantization_config.{}: {} (plan it with -w PRECISION)", source, key, what));
  }
  // An integer field (absent: `fallback`).
  Result<int64_t> integer(const json& obj, const std::string& path, const char* key, int64_t fallback) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return fallback;
    if (!it->is_number_integer())
      return fail(path + key, std::string("expected an integer, got ") + json_type_name(*it));
    return it->get<int64_t>();
  }
  Result<std::string> string(const json& obj, const std::string& path, const char* key) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return std::string();
    if (!it->is_string()) return fail(path + key, std::string("expected a string, got ") + json_type_name(*it));
    return it->get<std::string>();
  }
};

// Integer weights of `bits` with one scale per `group` input columns (<= 0: per output channel).
Result<std::string> int_precision(const QcReader& r, const std::string& key, int64_t bits, int64_t group) {
  if (bits == 8) return std::string("int8");  // the planner prices 8-bit at one scale per row
  if (bits != 4) return r.fail(key, fmt::format("{}-bit weights are not a precision the planner prices (4, 8)", bits));
  if (group <= 0) return std::string("int4-channel");
  if (group % 8 != 0) return r.fail(key, fmt::format("group size {} is not a multiple of 8", group));
  return fmt::format("int4-g{}", group);
}

// compressed-tensors (llm-compressor): one config group's weight scheme.
Result<std::string> compressed_tensors(const QcReader& r) {
  auto groups = r.qc.find("config_groups");
  if (groups == r.qc.end() || !groups->is_object() || groups->empty()) {
    return r.fail("config_groups", "missing or empty");
  }
  if (groups->size() > 1) {
    return r.fail("config_groups",
                  fmt::format("{} groups (mixed precision) do not have one precision", groups->size()));
  }
  const std::string name = groups->begin().key();
  const json& g = groups->begin().value();
  const std::string path = "config_groups." + name + ".weights.";
  if (!g.is_object() || !g.contains("weights") || !g["weights"].is_object()) {
    return r.fail("config_groups." + name + ".weights", "missing");
  }
  const json& w = g["weights"];
  TERN_ASSIGN_OR_RETURN(int64_t bits, r.integer(w, path, "num_bits", 8));
  TERN_ASSIGN_OR_RETURN(std::string type, r.string(w, path, "type"));
  TERN_ASSIGN_OR_RETURN(std::string strategy, r.string(w, path, "strategy"));
  TERN_ASSIGN_OR_RETURN(int64_t group, r.integer(w, path, "group_size", 0));
  if (type == "float") {
    if (bits != 8)
      return r.fail(path + "num_bits", fmt::format("{}-bit floats are not a precision the planner prices (8)", bits));
    return std::string("fp8");
  }
  if (type != "int" && !type.empty()) return r.fail(path + "type", "'" + type + "' is not int or float");
  return int_precision(r, path + "num_bits", bits, strategy == "group" ? group : 0);
}

}  // namespace

std::string precision_of_torch_dtype(const std::string& dtype) {
  if (dtype == "float16") return "fp16";
  if (dtype == "float32") return "f32";
  return "bf16";
}

Result<std::string> precision_of_quant_config(const json& qc, const std::string& source) {
  const QcReader r{qc, source};
  if (!qc.is_object()) {
    return Status::error(
        fmt::format("{}: quantization_config: expected an object, got {}", source, json_type_name(qc)));
  }
  TERN_ASSIGN_OR_RETURN(std::string method, r.string(qc, "", "quant_method"));
  if (method.empty()) return r.fail("quant_method", "missing");
  // DeepSeek-V3 / Qwen3-FP8 (block-wise e4m3 scales), FBGEMM (per-channel): 8-bit floats either way.
  if (method == "fp8" || method == "fbgemm_fp8") return std::string("fp8");
  if (method == "awq") {
    // AutoAWQ writes bits / group_size; older configs w_bit / q_group_size.
    TERN_ASSIGN_OR_RETURN(int64_t bits, r.integer(qc, "", qc.contains("w_bit") ? "w_bit" : "bits", 4));
    TERN_ASSIGN_OR_RETURN(int64_t group,
                          r.integer(qc, "", qc.contains("q_group_size") ? "q_group_size" : "group_size", 128));
    return int_precision(r, "bits", bits, group);
  }
  if (method == "gptq") {
    TERN_ASSIGN_OR_RETURN(int64_t bits, r.integer(qc, "", "bits", 4));
    TERN_ASSIGN_OR_RETURN(int64_t group, r.integer(qc, "", "group_size", 128));
    return int_precision(r, "bits", bits, group);
  }
  if (method == "compressed-tensors") return compressed_tensors(r);
  return r.fail("quant_method", "'" + method + "' is not one the planner prices (fp8, awq, gptq, compressed-tensors)");
}

}  // namespace tern::plan
