#include "formats/sparse/sparsity_config.h"

#include "formats/json_util.h"

namespace tern {

namespace {

using nlohmann::json;

Status string_list(const json& obj, const std::string& key, const std::string& where, std::vector<std::string>* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return Status::ok();
  if (!it->is_array()) return Status::error(where + key + ": expected a list, got " + json_type_name(*it));
  for (const auto& e : *it) {
    if (!e.is_string()) return Status::error(where + key + ": expected a list of strings");
    out->push_back(e.get<std::string>());
  }
  return Status::ok();
}

Status string_field(const json& obj, const std::string& key, const std::string& where, std::string* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return Status::error(where + key + ": missing");
  if (!it->is_string()) return Status::error(where + key + ": expected a string, got " + json_type_name(*it));
  *out = it->get<std::string>();
  return Status::ok();
}

}  // namespace

const char* sparse_format_name(SparseFormat f) {
  switch (f) {
    case SparseFormat::Bitmask: return "sparse-bitmask";
    case SparseFormat::Bitmask24: return "sparse-24-bitmask";
    default: return "none";
  }
}

Result<SparsityConfig> parse_sparsity_config(const json& sc, const std::string& where) {
  SparsityConfig c;
  if (!sc.is_object()) return Status::error(where.substr(0, where.size() - 1) + ": expected an object, got " + json_type_name(sc));
  std::string format, structure;
  TERN_RETURN_IF_ERROR(string_field(sc, "format", where, &format));
  if (format == "dense") return c;  // compressed-tensors' "no sparse compression"
  if (format == "sparse-bitmask") {
    c.format = SparseFormat::Bitmask;
  } else if (format == "sparse-24-bitmask") {
    c.format = SparseFormat::Bitmask24;
  } else {
    return Status::error(where + "format: '" + format + "' is not supported (sparse-bitmask, sparse-24-bitmask, dense)");
  }
  structure = c.format == SparseFormat::Bitmask24 ? "2:4" : "unstructured";
  auto st = sc.find("sparsity_structure");
  if (st != sc.end() && !st->is_null()) {
    if (!st->is_string()) return Status::error(where + "sparsity_structure: expected a string, got " + json_type_name(*st));
    structure = st->get<std::string>();
  }
  // sparse-bitmask stores any pattern (2:4 included); sparse-24-bitmask only 2:4.
  if (structure != "unstructured" && structure != "2:4" && structure != "0:0")
    return Status::error(where + "sparsity_structure: '" + structure + "' is not supported (unstructured, 2:4)");
  if (c.format == SparseFormat::Bitmask24 && structure != "2:4")
    return Status::error(where + "sparsity_structure: '" + structure + "' does not match format sparse-24-bitmask (2:4)");
  TERN_RETURN_IF_ERROR(string_list(sc, "targets", where, &c.targets));
  TERN_RETURN_IF_ERROR(string_list(sc, "ignore", where, &c.ignore));
  auto gs = sc.find("global_sparsity");
  if (gs != sc.end() && !gs->is_null()) {
    if (!gs->is_number()) return Status::error(where + "global_sparsity: expected a number, got " + json_type_name(*gs));
    c.global_sparsity = gs->get<double>();
  }
  return c;
}

nlohmann::ordered_json sparsity_config_to_json(const SparsityConfig& c) {
  nlohmann::ordered_json j;
  j["format"] = sparse_format_name(c.format);
  j["global_sparsity"] = c.global_sparsity;
  j["ignore"] = c.ignore;
  j["registry_requires_subclass"] = false;
  j["sparsity_structure"] = c.format == SparseFormat::Bitmask24 ? "2:4" : "unstructured";
  j["targets"] = c.targets;
  return j;
}

}  // namespace tern
