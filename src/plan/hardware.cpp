#include "plan/hardware.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "formats/json_util.h"

namespace tern::plan {

namespace {

using nlohmann::json;

// Reads one device object with "<source>: devices[i] (<id>): <key>: <what>" errors.
class DeviceReader {
 public:
  DeviceReader(const json& obj, std::string where) : obj_(obj), where_(std::move(where)) {}
  Status error(const std::string& key, const std::string& what) const {
    return Status::error(fmt::format("{}: {}: {}", where_, key, what));
  }
  Status number(const json& obj, const std::string& key, double lo, double hi, double* out, bool required,
                const std::string& prefix = "") const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return required ? error(prefix + key, "missing") : Status::ok();
    if (!it->is_number()) return error(prefix + key, std::string("expected a number, got ") + json_type_name(*it));
    const double x = it->get<double>();
    if (!std::isfinite(x) || x < lo || x > hi) return error(prefix + key, fmt::format("{} is outside [{}, {}]", x, lo, hi));
    *out = x;
    return Status::ok();
  }
  Status number(const std::string& key, double lo, double hi, double* out, bool required = false) const {
    return number(obj_, key, lo, hi, out, required);
  }
  Status string(const std::string& key, std::string* out, bool required = false) const {
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) return required ? error(key, "missing") : Status::ok();
    if (!it->is_string()) return error(key, std::string("expected a string, got ") + json_type_name(*it));
    *out = it->get<std::string>();
    return Status::ok();
  }
  const json* object(const std::string& key, Status* st) const {
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) return nullptr;
    if (!it->is_object()) *st = error(key, std::string("expected an object, got ") + json_type_name(*it));
    return it->is_object() ? &*it : nullptr;
  }

 private:
  const json& obj_;
  std::string where_;
};

Result<Device> parse_device(const json& obj, const std::string& where) {
  if (!obj.is_object()) return Status::error(where + ": expected an object, got " + json_type_name(obj));
  Device d;
  DeviceReader r(obj, where);
  TERN_RETURN_IF_ERROR(r.string("id", &d.id, true));
  if (d.id.empty()) return r.error("id", "empty");
  DeviceReader rd(obj, where + " (" + d.id + ")");
  TERN_RETURN_IF_ERROR(rd.string("name", &d.name));
  if (d.name.empty()) d.name = d.id;
  TERN_RETURN_IF_ERROR(rd.string("kind", &d.kind));
  if (d.kind != "gpu" && d.kind != "cpu") return rd.error("kind", "expected \"gpu\" or \"cpu\", got \"" + d.kind + "\"");
  TERN_RETURN_IF_ERROR(rd.number("memory_gib", 1e-3, 1e7, &d.memory_gib, true));
  TERN_RETURN_IF_ERROR(rd.number("usable_fraction", 0.01, 1.0, &d.usable_fraction));
  TERN_RETURN_IF_ERROR(rd.number("bandwidth_gbs", 1e-3, 1e7, &d.bandwidth_gbs, true));
  TERN_RETURN_IF_ERROR(rd.number("power_w", 0, 1e6, &d.power_w));
  TERN_RETURN_IF_ERROR(rd.number("price_per_hour", 0, 1e6, &d.price_per_hour));
  TERN_RETURN_IF_ERROR(rd.number("runtime_overhead_gib", 0, 1e6, &d.runtime_overhead_gib));
  double per_node = d.devices_per_node, threads = 0;
  TERN_RETURN_IF_ERROR(rd.number("devices_per_node", 1, 1024, &per_node));
  TERN_RETURN_IF_ERROR(rd.number("threads", 0, 1 << 20, &threads));
  d.devices_per_node = int(per_node), d.threads = int(threads);
  Status st = Status::ok();
  if (const json* t = rd.object("tflops", &st)) {
    for (const auto& [k, v] : t->items()) {
      double x = 0;
      TERN_RETURN_IF_ERROR(rd.number(*t, k, 1e-6, 1e9, &x, true, "tflops."));
      d.tflops[k] = x;
    }
  }
  TERN_RETURN_IF_ERROR(st);
  if (d.tflops.empty()) return rd.error("tflops", "missing (dense TFLOP/s per precision, at least bf16 or f32)");
  if (const json* ic = rd.object("interconnect", &st)) {
    DeviceReader ri(*ic, where + " (" + d.id + "): interconnect");
    TERN_RETURN_IF_ERROR(ri.string("name", &d.interconnect));
    TERN_RETURN_IF_ERROR(ri.number("gbs", 1e-3, 1e7, &d.interconnect_gbs));
    TERN_RETURN_IF_ERROR(ri.number("latency_us", 0, 1e6, &d.interconnect_latency_us));
  }
  TERN_RETURN_IF_ERROR(st);
  if (const json* e = rd.object("efficiency", &st)) {
    DeviceReader re(*e, where + " (" + d.id + "): efficiency");
    TERN_RETURN_IF_ERROR(re.number("decode", 0.01, 2.0, &d.decode_efficiency));
    TERN_RETURN_IF_ERROR(re.number("prefill", 0.01, 2.0, &d.prefill_efficiency));
    TERN_RETURN_IF_ERROR(re.number("batched_decode", 0.01, 2.0, &d.batched_decode_efficiency));
    TERN_RETURN_IF_ERROR(re.number("attention_kv_gbs", 1e-3, 1e7, &d.attention_kv_gbs));
  }
  TERN_RETURN_IF_ERROR(st);
  if (const json* ov = rd.object("overhead_us", &st)) {
    DeviceReader ro(*ov, where + " (" + d.id + "): overhead_us");
    TERN_RETURN_IF_ERROR(ro.number("step", 0, 1e6, &d.step_overhead_us));
    TERN_RETURN_IF_ERROR(ro.number("layer", 0, 1e6, &d.layer_overhead_us));
    TERN_RETURN_IF_ERROR(ro.number("sequence", 0, 1e6, &d.sequence_overhead_us));
    TERN_RETURN_IF_ERROR(ro.number("sequence_layer", 0, 1e6, &d.sequence_layer_overhead_us));
    TERN_RETURN_IF_ERROR(ro.number("matmul_call", 0, 1e6, &d.matmul_call_us));
  }
  TERN_RETURN_IF_ERROR(st);
  return d;
}

json device_json(const Device& d) {
  json j = {{"id", d.id},
            {"name", d.name},
            {"kind", d.kind},
            {"memory_gib", d.memory_gib},
            {"bandwidth_gbs", d.bandwidth_gbs},
            {"tflops", d.tflops},
            {"interconnect", {{"name", d.interconnect}, {"gbs", d.interconnect_gbs}, {"latency_us", d.interconnect_latency_us}}},
            {"devices_per_node", d.devices_per_node},
            {"power_w", d.power_w},
            {"price_per_hour", d.price_per_hour},
            {"efficiency", {{"decode", d.decode_efficiency}, {"prefill", d.prefill_efficiency}}},
            {"usable_fraction", d.usable_fraction},
            {"runtime_overhead_gib", d.runtime_overhead_gib}};
  if (d.threads > 0) j["threads"] = d.threads;
  if (d.batched_decode_efficiency > 0) j["efficiency"]["batched_decode"] = d.batched_decode_efficiency;
  if (d.attention_kv_gbs > 0) j["efficiency"]["attention_kv_gbs"] = d.attention_kv_gbs;
  if (d.decode_step_overhead_s(1, 1, 1) > 0) {
    j["overhead_us"] = {{"step", d.step_overhead_us}, {"layer", d.layer_overhead_us},
                        {"sequence", d.sequence_overhead_us}, {"sequence_layer", d.sequence_layer_overhead_us},
                        {"matmul_call", d.matmul_call_us}};
  }
  return j;
}

}  // namespace

double Device::flops(const std::string& precision) const {
  for (const std::string& p : {precision, std::string("bf16"), std::string("fp16"), std::string("f32")}) {
    auto it = tflops.find(p);
    if (it != tflops.end()) return it->second * 1e12;
  }
  return tflops.empty() ? 0 : tflops.begin()->second * 1e12;
}

Result<Catalog> Catalog::parse(const std::string& json_text, const std::string& source) {
  TERN_ASSIGN_OR_RETURN(ParsedJson parsed, parse_json(json_text, source));
  if (!parsed.duplicate_path.empty()) {
    return Status::error(source + ": " + join_key_path(parsed.duplicate_path) + ": duplicate key");
  }
  const json& root = parsed.value;
  if (!root.is_object() || !root.contains("devices") || !root["devices"].is_array()) {
    return Status::error(source + ": expected an object with a \"devices\" list");
  }
  Catalog c;
  const json& list = root["devices"];
  for (size_t i = 0; i < list.size(); ++i) {
    TERN_ASSIGN_OR_RETURN(Device d, parse_device(list[i], fmt::format("{}: devices[{}]", source, i)));
    Catalog one;
    one.devices_.push_back(std::move(d));
    c.merge(one);
  }
  return c;
}

Result<Catalog> Catalog::shipped() { return parse(shipped_catalog_json(), "data/hardware.json"); }

void Catalog::merge(const Catalog& other) {
  for (const Device& d : other.devices_) {
    auto it = std::find_if(devices_.begin(), devices_.end(), [&](const Device& x) { return x.id == d.id; });
    if (it != devices_.end()) *it = d;
    else devices_.push_back(d);
  }
}

const Device* Catalog::find(const std::string& id) const {
  for (const Device& d : devices_) {
    if (d.id == id) return &d;
  }
  return nullptr;
}

std::string Catalog::ids() const {
  std::string s;
  for (const Device& d : devices_) s += (s.empty() ? "" : ", ") + d.id;
  return s;
}

std::string device_to_json(const Device& d) { return device_json(d).dump(2); }

Status save_device(const std::string& path, const Device& d) {
  json root = {{"devices", json::array()}};
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    TERN_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
    TERN_ASSIGN_OR_RETURN(Catalog existing, Catalog::parse(text, path));  // refuse to overwrite a broken file
    (void)existing;
    root = json::parse(text);
  }
  json& list = root["devices"];
  bool replaced = false;
  for (auto& e : list) {
    if (e.value("id", "") == d.id) e = device_json(d), replaced = true;
  }
  if (!replaced) list.push_back(device_json(d));
  std::ofstream out(path, std::ios::trunc);
  if (!out) return Status::error(path + ": cannot write");
  out << root.dump(2) << "\n";
  if (!out) return Status::error(path + ": write failed");
  return Status::ok();
}

}  // namespace tern::plan
