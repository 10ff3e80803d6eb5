#include "formats/quant/quant_config.h"

#include <fmt/format.h>

#include <regex>

#include "formats/quant/module_targets.h"
#include "core/mapped_file.h"
#include "formats/json_util.h"

namespace tern {

namespace {

using nlohmann::json;

struct Reader {
  const json& obj;
  std::string where;  // "<file>: quantization_config."

  Status fail(const std::string& key, const std::string& what) const { return Status::error(where + key + ": " + what); }
  const json* get(const std::string& key) const {
    auto it = obj.find(key);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
  }
  Status integer(const std::string& key, int64_t* out, bool required) const {
    const json* v = get(key);
    if (!v) return required ? fail(key, "missing") : Status::ok();
    if (!v->is_number_integer()) return fail(key, std::string("expected an integer, got ") + json_type_name(*v));
    *out = v->get<int64_t>();
    return Status::ok();
  }
  Status boolean(const std::string& key, bool* out) const {
    const json* v = get(key);
    if (!v) return Status::ok();
    if (!v->is_boolean()) return fail(key, std::string("expected a boolean, got ") + json_type_name(*v));
    *out = v->get<bool>();
    return Status::ok();
  }
  Status string(const std::string& key, std::string* out, bool required) const {
    const json* v = get(key);
    if (!v) return required ? fail(key, "missing") : Status::ok();
    if (!v->is_string()) return fail(key, std::string("expected a string, got ") + json_type_name(*v));
    *out = v->get<std::string>();
    return Status::ok();
  }
  Status string_list(const std::string& key, std::vector<std::string>* out) const {
    const json* v = get(key);
    if (!v) return Status::ok();
    if (!v->is_array()) return fail(key, std::string("expected a list, got ") + json_type_name(*v));
    for (const auto& e : *v) {
      if (!e.is_string()) return fail(key, "expected a list of strings");
      out->push_back(e.get<std::string>());
    }
    return Status::ok();
  }
};

Status group_size(const Reader& r, QuantConfig* c) {
  int64_t g = 128;
  TERN_RETURN_IF_ERROR(r.integer("group_size", &g, true));
  if (g != -1 && g <= 0) return r.fail("group_size", fmt::format("{} is not -1 or positive", g));
  c->group = g == -1 ? 0 : int(g);
  return Status::ok();
}

Status parse_awq(const Reader& r, QuantConfig* c) {
  int64_t bits = 4;
  TERN_RETURN_IF_ERROR(r.integer("bits", &bits, false));
  if (bits != 4) return r.fail("bits", fmt::format("{} is not supported for AWQ (4)", bits));
  c->bits = 4;
  TERN_RETURN_IF_ERROR(group_size(r, c));
  bool zero_point = true;
  TERN_RETURN_IF_ERROR(r.boolean("zero_point", &zero_point));
  c->symmetric = !zero_point;
  std::string version = "gemm";
  TERN_RETURN_IF_ERROR(r.string("version", &version, false));
  if (version != "gemm" && version != "GEMM")
    return r.fail("version", "'" + version + "' packing is not supported (tern loads AWQ 'gemm')");
  return r.string_list("modules_to_not_convert", &c->ignore);
}

Status parse_gptq(const Reader& r, QuantConfig* c) {
  int64_t bits = 4;
  TERN_RETURN_IF_ERROR(r.integer("bits", &bits, true));
  if (bits != 4 && bits != 8) return r.fail("bits", fmt::format("{} is not supported for GPTQ (4 or 8)", bits));
  c->bits = int(bits);
  TERN_RETURN_IF_ERROR(group_size(r, c));
  TERN_RETURN_IF_ERROR(r.boolean("desc_act", &c->desc_act));
  TERN_RETURN_IF_ERROR(r.boolean("sym", &c->symmetric));
  std::string fmt_name = "gptq";
  TERN_RETURN_IF_ERROR(r.string("checkpoint_format", &fmt_name, false));
  if (fmt_name != "gptq" && fmt_name != "gptq_v2")
    return r.fail("checkpoint_format", "'" + fmt_name + "' is not supported (gptq, gptq_v2)");
  c->gptq_v2 = fmt_name == "gptq_v2";
  return Status::ok();
}

// One config group's "weights" and "input_activations" into c's bits/group/symmetric/fp8/activations.
Status parse_ct_group(const Reader& gr, QuantConfig* c) {
  const json* wj = gr.get("weights");
  if (!wj || !wj->is_object()) return gr.fail("weights", "missing");
  const Reader w{*wj, gr.where + "weights."};
  int64_t bits = 0;
  TERN_RETURN_IF_ERROR(w.integer("num_bits", &bits, true));
  std::string type = "int", strategy;
  TERN_RETURN_IF_ERROR(w.string("type", &type, false));
  TERN_RETURN_IF_ERROR(w.string("strategy", &strategy, true));
  c->symmetric = true;
  TERN_RETURN_IF_ERROR(w.boolean("symmetric", &c->symmetric));
  c->bits = int(bits);
  c->fp8 = type == "float";
  if (type != "int" && type != "float") return w.fail("type", "'" + type + "' is not int or float");
  if (c->fp8 != (c->ct_format == "float-quantized")) return w.fail("type", "'" + type + "' does not match format " + c->ct_format);
  if (c->fp8 && bits != 8) return w.fail("num_bits", "FP8 weights have 8 bits");
  if (!c->fp8 && bits != 4 && bits != 8) return w.fail("num_bits", fmt::format("{} is not supported (4 or 8)", bits));
  if (c->ct_format == "int-quantized" && bits != 8) return w.fail("num_bits", "int-quantized weights have 8 bits");
  if (!c->symmetric && c->ct_format != "pack-quantized")
    return w.fail("symmetric", "asymmetric weights are supported in pack-quantized only");
  if (strategy == "channel") {
    c->group = 0;
  } else if (strategy == "group") {
    int64_t gs = 0;
    TERN_RETURN_IF_ERROR(w.integer("group_size", &gs, true));
    if (gs <= 0) return w.fail("group_size", "must be positive");
    c->group = int(gs);
  } else {
    return w.fail("strategy", "'" + strategy + "' is not supported (channel, group)");
  }
  c->int8_activations = false;
  if (const json* a = gr.get("input_activations")) {
    if (!a->is_object()) return gr.fail("input_activations", "expected an object");
    const Reader ar{*a, gr.where + "input_activations."};
    std::string atype = "int";
    bool dynamic = false;
    TERN_RETURN_IF_ERROR(ar.string("type", &atype, false));
    TERN_RETURN_IF_ERROR(ar.boolean("dynamic", &dynamic));
    if (!dynamic) return ar.fail("dynamic", "static activation scales are not supported (dynamic per token only)");
    c->int8_activations = atype == "int";
    if (c->int8_activations && (c->bits != 8 || c->fp8))
      return ar.fail("type", "int8 activations need int8 weights");
  }
  return Status::ok();
}

Status parse_compressed_tensors(const Reader& r, QuantConfig* c) {
  if (const json* sc = r.get("sparsity_config")) {
    TERN_ASSIGN_OR_RETURN(c->sparsity, parse_sparsity_config(*sc, r.where + "sparsity_config."));
  }
  const json* any_groups = r.get("config_groups");
  if (c->sparsity.enabled() && (!any_groups || (any_groups->is_object() && any_groups->empty()))) {
    c->method = QuantMethod::None;  // sparse only: nothing quantized
    std::string format;
    TERN_RETURN_IF_ERROR(r.string("format", &format, false));
    if (!format.empty() && format != "dense" && format != sparse_format_name(c->sparsity.format))
      return r.fail("format", "'" + format + "' with no config_groups (a sparse-only checkpoint: dense or " +
                                  sparse_format_name(c->sparsity.format) + ")");
    return Status::ok();
  }
  TERN_RETURN_IF_ERROR(r.string("format", &c->ct_format, true));
  if (c->ct_format != "pack-quantized" && c->ct_format != "int-quantized" && c->ct_format != "float-quantized")
    return r.fail("format", "'" + c->ct_format + "' is not supported (pack-quantized, int-quantized, float-quantized)");
  std::string status;
  TERN_RETURN_IF_ERROR(r.string("quantization_status", &status, false));
  if (!status.empty() && status != "compressed")
    return r.fail("quantization_status", "'" + status + "': tern loads compressed checkpoints only");
  TERN_RETURN_IF_ERROR(r.string_list("ignore", &c->ignore));
  const json* groups = r.get("config_groups");
  if (!groups || !groups->is_object() || groups->empty())
    return r.fail("config_groups", "expected at least one quantization group");
  bool first = true;
  for (auto it = groups->begin(); it != groups->end(); ++it) {
    const json& g = it.value();
    if (!g.is_object()) return r.fail("config_groups." + it.key(), "the group is not an object");
    const Reader gr{g, r.where + "config_groups." + it.key() + "."};
    QuantConfig gc = *c;
    TERN_RETURN_IF_ERROR(parse_ct_group(gr, &gc));
    QuantScheme scheme{{}, gc.bits, gc.group, gc.symmetric};
    TERN_RETURN_IF_ERROR(gr.string_list("targets", &scheme.targets));
    for (const auto& t : scheme.targets) {
      if (t.rfind("re:", 0) != 0) continue;
      try {
        std::regex re(t.substr(3));
      } catch (const std::regex_error&) {
        return gr.fail("targets", "'" + t + "' is not a valid regular expression");
      }
    }
    if (first) {
      const std::vector<std::string> ignore = c->ignore;
      *c = gc;
      c->ignore = ignore;
    } else if (gc.fp8 != c->fp8 || gc.int8_activations != c->int8_activations) {
      return gr.fail("weights", "groups differ in weight type or activations (tern mixes integer bit widths only)");
    }
    c->schemes.push_back(std::move(scheme));
    first = false;
  }
  // One group is the plain (not mixed) form, whatever it targets.
  if (c->schemes.size() == 1) c->schemes.clear();
  return Status::ok();
}

}  // namespace

bool QuantConfig::ignores(const std::string& module) const {
  for (const auto& i : ignore) {
    if (i == module) return true;
    // "re:.*lm_head" style patterns: compare the literal tail after the last '*'.
    if (i.rfind("re:", 0) == 0) {
      const std::string tail = i.substr(i.find_last_of("*") == std::string::npos ? 3 : i.find_last_of('*') + 1);
      if (!tail.empty() && module.size() >= tail.size() && module.compare(module.size() - tail.size(), tail.size(), tail) == 0)
        return true;
    }
  }
  return false;
}

QuantConfig QuantConfig::for_module(const std::string& module) const {
  QuantConfig c = *this;
  for (const auto& s : schemes) {
    if (!module_matches_any(module, s.targets)) continue;
    c.bits = s.bits, c.group = s.group, c.symmetric = s.symmetric;
    break;
  }
  return c;
}

bool QuantConfig::targets(const std::string& module) const {
  if (!quantized() || ignores(module)) return false;
  if (schemes.empty()) return module.rfind("model.layers.", 0) == 0;  // every decoder linear
  for (const auto& s : schemes)
    if (module_matches_any(module, s.targets)) return true;
  return false;
}

const char* quant_method_name(QuantMethod m) {
  switch (m) {
    case QuantMethod::Awq: return "awq";
    case QuantMethod::Gptq: return "gptq";
    case QuantMethod::CompressedTensors: return "compressed-tensors";
    default: return "none";
  }
}

Result<QuantConfig> parse_quant_config(const json& qc, const std::string& source) {
  if (!qc.is_object())
    return Status::error(source + ": quantization_config: expected an object, got " + json_type_name(qc));
  const Reader r{qc, source + ": quantization_config."};
  std::string method;
  TERN_RETURN_IF_ERROR(r.string("quant_method", &method, true));
  QuantConfig c;
  if (method == "awq") {
    c.method = QuantMethod::Awq;
    TERN_RETURN_IF_ERROR(parse_awq(r, &c));
  } else if (method == "gptq") {
    c.method = QuantMethod::Gptq;
    TERN_RETURN_IF_ERROR(parse_gptq(r, &c));
  } else if (method == "compressed-tensors") {
    c.method = QuantMethod::CompressedTensors;
    TERN_RETURN_IF_ERROR(parse_compressed_tensors(r, &c));
  } else {
    return r.fail("quant_method", "'" + method + "' is not supported (awq, gptq, compressed-tensors)");
  }
  return c;
}

Result<QuantConfig> load_quant_config(const std::string& dir) {
  const std::string path = dir + "/config.json";
  TERN_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  TERN_ASSIGN_OR_RETURN(ParsedJson parsed, parse_json(text, path));
  if (!parsed.value.is_object()) return QuantConfig{};
  auto it = parsed.value.find("quantization_config");
  if (it == parsed.value.end() || it->is_null()) return QuantConfig{};
  return parse_quant_config(*it, path);
}

nlohmann::ordered_json quant_config_to_json(const QuantConfig& c) {
  nlohmann::ordered_json j;
  switch (c.method) {
    case QuantMethod::Awq:
      j["bits"] = c.bits;
      j["group_size"] = c.group > 0 ? c.group : -1;
      j["modules_to_not_convert"] = nullptr;
      j["quant_method"] = "awq";
      j["version"] = "gemm";
      j["zero_point"] = !c.symmetric;
      break;
    case QuantMethod::Gptq:
      j["bits"] = c.bits;
      j["group_size"] = c.group > 0 ? c.group : -1;
      j["damp_percent"] = 0.01;
      j["desc_act"] = c.desc_act;
      j["static_groups"] = false;
      j["sym"] = c.symmetric;
      j["true_sequential"] = true;
      j["model_name_or_path"] = nullptr;
      j["model_file_base_name"] = "model";
      j["quant_method"] = "gptq";
      j["checkpoint_format"] = c.gptq_v2 ? "gptq_v2" : "gptq";
      break;
    case QuantMethod::CompressedTensors: {
      auto group_json = [&](int bits, int group, bool symmetric, const std::vector<std::string>& targets) {
        nlohmann::ordered_json w;
        w["num_bits"] = bits;
        w["type"] = c.fp8 ? "float" : "int";
        w["symmetric"] = symmetric;
        w["group_size"] = group > 0 ? nlohmann::ordered_json(group) : nlohmann::ordered_json(nullptr);
        w["strategy"] = group > 0 ? "group" : "channel";
        w["block_structure"] = nullptr;
        w["dynamic"] = false;
        w["actorder"] = nullptr;
        w["observer"] = "minmax";
        w["observer_kwargs"] = nlohmann::ordered_json::object();
        nlohmann::ordered_json g;
        g["targets"] = targets;
        g["weights"] = w;
        if (c.int8_activations || c.fp8) {
          nlohmann::ordered_json a;
          a["num_bits"] = 8;
          a["type"] = c.fp8 ? "float" : "int";
          a["symmetric"] = true;
          a["group_size"] = nullptr;
          a["strategy"] = "token";
          a["block_structure"] = nullptr;
          a["dynamic"] = true;
          a["actorder"] = nullptr;
          a["observer"] = nullptr;
          a["observer_kwargs"] = nlohmann::ordered_json::object();
          g["input_activations"] = a;
        } else {
          g["input_activations"] = nullptr;
        }
        g["output_activations"] = nullptr;
        return g;
      };
      nlohmann::ordered_json groups = nlohmann::ordered_json::object();
      if (c.schemes.empty()) {
        groups["group_0"] = group_json(c.bits, c.group, c.symmetric, {"Linear"});
      } else {
        for (size_t i = 0; i < c.schemes.size(); ++i) {
          const QuantScheme& s = c.schemes[i];
          groups[fmt::format("group_{}", i)] = group_json(s.bits, s.group, s.symmetric, s.targets);
        }
      }
      j["config_groups"] = groups;
      j["format"] = !c.ct_format.empty() ? c.ct_format
                    : c.fp8                ? "float-quantized"
                    : c.int8_activations   ? "int-quantized"
                                           : "pack-quantized";
      j["global_compression_ratio"] = nullptr;
      j["ignore"] = c.ignore;
      j["kv_cache_scheme"] = nullptr;
      j["quant_method"] = "compressed-tensors";
      j["quantization_status"] = "compressed";
      if (c.sparsity.enabled()) j["sparsity_config"] = sparsity_config_to_json(c.sparsity);
      break;
    }
    default:
      if (c.sparsity.enabled()) {  // sparse only
        j["config_groups"] = nlohmann::ordered_json::object();
        j["format"] = "dense";
        j["quant_method"] = "compressed-tensors";
        j["quantization_status"] = "compressed";
        j["sparsity_config"] = sparsity_config_to_json(c.sparsity);
      }
      break;
  }
  return j;
}

}  // namespace tern
