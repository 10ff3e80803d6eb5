// Typed access to one config.json object, shared by every part of the config.json parser (the Llama
// shape in model_config.cpp, the mixture-of-experts and latent-attention fields beside it), so every
// error reads "<file>: <key path>: <what>".
#pragma once

#include <cmath>
#include <initializer_list>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "formats/json_util.h"

namespace tern {

class ConfigFields {
 public:
  ConfigFields(const nlohmann::json& obj, const std::string& source, std::string prefix = "")
      : obj_(obj), source_(source), prefix_(std::move(prefix)) {}

  // The value of `key`, or nullptr when absent or null (null means "use the default" in HF configs).
  const nlohmann::json* get(const std::string& key) const {
    auto it = obj_.find(key);
    return it == obj_.end() || it->is_null() ? nullptr : &*it;
  }
  // Whether `key` is written at all, null included (where null and absent mean different things).
  bool has_key(const std::string& key) const { return obj_.contains(key); }
  // The first of `keys` that is set, or "" when none is.
  std::string first_set(std::initializer_list<const char*> keys) const {
    for (const char* k : keys) {
      if (get(k)) return k;
    }
    return "";
  }
  Status error(const std::string& key, const std::string& what) const {
    return Status::error(source_ + ": " + prefix_ + key + ": " + what);
  }
  Status type_error(const std::string& key, const char* expected) const {
    return error(key, std::string("expected ") + expected + ", got " + json_type_name(*get(key)));
  }

  // Integer in [lo, hi]; absent -> *out untouched unless required.
  Status int_field(const std::string& key, int64_t lo, int64_t hi, int64_t* out, bool required) const {
    const nlohmann::json* v = get(key);
    if (!v) return required ? error(key, "missing") : Status::ok();
    if (!v->is_number_integer()) return type_error(key, "an integer");
    if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX)) return error(key, "out of range");
    const int64_t x = v->get<int64_t>();
    if (x < lo || x > hi) {
      return error(key, std::to_string(x) + " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
    *out = x;
    return Status::ok();
  }
  Status number_field(const std::string& key, double* out, bool required = false) const {
    const nlohmann::json* v = get(key);
    if (!v) return required ? error(key, "missing") : Status::ok();
    if (!v->is_number()) return type_error(key, "a number");
    *out = v->get<double>();
    if (!std::isfinite(*out)) return error(key, "not finite");
    return Status::ok();
  }
  Status positive_number(const std::string& key, double* out, bool required = false) const {
    TERN_RETURN_IF_ERROR(number_field(key, out, required));
    if (get(key) && !(*out > 0)) return error(key, "must be positive");
    return Status::ok();
  }
  Status bool_field(const std::string& key, bool* out) const {
    const nlohmann::json* v = get(key);
    if (!v) return Status::ok();
    if (!v->is_boolean()) return type_error(key, "a boolean");
    *out = v->get<bool>();
    return Status::ok();
  }
  Status string_field(const std::string& key, std::string* out) const {
    const nlohmann::json* v = get(key);
    if (!v) return Status::ok();
    if (!v->is_string()) return type_error(key, "a string");
    *out = v->get<std::string>();
    return Status::ok();
  }
  // eos_token_id / bos_token_id: an int, a list of ints, or null.
  Status token_ids(const std::string& key, std::vector<int32_t>* out) const {
    const nlohmann::json* v = get(key);
    if (!v) return Status::ok();
    auto one = [&](const nlohmann::json& x) -> Status {
      if (!x.is_number_integer()) {
        return error(key, std::string("expected integer token ids, got ") + json_type_name(x));
      }
      if (x.get<int64_t>() < 0 || x.get<int64_t>() > std::numeric_limits<int32_t>::max() ||
          (x.is_number_unsigned() && x.get<uint64_t>() > uint64_t(INT32_MAX))) {
        return error(key, "token id " + x.dump() + " out of range");
      }
      out->push_back(int32_t(x.get<int64_t>()));
      return Status::ok();
    };
    if (v->is_array()) {
      for (const nlohmann::json& x : *v) TERN_RETURN_IF_ERROR(one(x));
      return Status::ok();
    }
    return one(*v);
  }

 private:
  const nlohmann::json& obj_;
  const std::string& source_;
  std::string prefix_;
};


}  // namespace tern
