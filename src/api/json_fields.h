// Typed reads of a JSON request object's fields, each failure a 400 naming the field (`param`), the
// first failure kept (later reads are no-ops). null means "not given". Used by every endpoint's parser.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

#include "api/openai_request.h"

namespace tern::api {

// Request bodies nest at most this deep (a JSON schema inside response_format or a tool needs well under
// it): nlohmann's dump() and conversions recurse, so a body nested 100,000 deep would overflow the stack.
inline constexpr int kMaxRequestJsonDepth = 256;

// The body parsed, or a 400: not JSON (or not UTF-8), or nested deeper than kMaxRequestJsonDepth.
std::variant<nlohmann::ordered_json, ApiError> parse_request_json(std::string_view body);

// "boolean", "number", "string", "array", "object" or "null".
std::string json_type_name(const nlohmann::ordered_json& v);

class Fields {
 public:
  explicit Fields(const nlohmann::ordered_json& obj, std::string prefix = "") : obj_(obj), prefix_(std::move(prefix)) {}
  bool failed() const { return error_.has_value(); }
  const ApiError& error() const { return *error_; }
  void fail(const std::string& key, const std::string& message) {
    if (!error_) error_ = bad_param(prefix_ + key, message);
  }
  std::string name(const char* key) const { return "'" + prefix_ + key + "'"; }

  const nlohmann::ordered_json* get(const char* key) const {
    auto it = obj_.find(key);
    return it == obj_.end() || it->is_null() ? nullptr : &*it;
  }

  std::optional<double> number(const char* key, double lo, double hi) {
    const nlohmann::ordered_json* v = get(key);
    if (!v || failed()) return std::nullopt;
    if (!v->is_number()) return type_error(key, "a number", *v), std::nullopt;
    const double d = v->get<double>();
    if (!std::isfinite(d) || d < lo || d > hi) {
      fail(key, name(key) + " must be a number in [" + fmt(lo) + ", " + fmt(hi) + "], got " + v->dump());
      return std::nullopt;
    }
    return d;
  }

  std::optional<int64_t> integer(const char* key, int64_t lo, int64_t hi) {
    const nlohmann::ordered_json* v = get(key);
    if (!v || failed()) return std::nullopt;
    int64_t i = 0;
    if (v->is_number_integer()) {
      if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())) {
        i = std::numeric_limits<int64_t>::max();
      } else {
        i = v->get<int64_t>();
      }
    } else if (v->is_number_float() && std::isfinite(v->get<double>()) &&
               v->get<double>() == std::floor(v->get<double>()) && std::fabs(v->get<double>()) < 9e18) {
      i = int64_t(v->get<double>());
    } else {
      type_error(key, "an integer", *v);
      return std::nullopt;
    }
    if (i < lo || i > hi) {
      fail(key, name(key) + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                    v->dump());
      return std::nullopt;
    }
    return i;
  }

  std::optional<bool> boolean(const char* key) {
    const nlohmann::ordered_json* v = get(key);
    if (!v || failed()) return std::nullopt;
    if (!v->is_boolean()) return type_error(key, "a boolean", *v), std::nullopt;
    return v->get<bool>();
  }

  std::optional<std::string> string(const char* key) {
    const nlohmann::ordered_json* v = get(key);
    if (!v || failed()) return std::nullopt;
    if (!v->is_string()) return type_error(key, "a string", *v), std::nullopt;
    return v->get<std::string>();
  }

  void type_error(const char* key, const char* want, const nlohmann::ordered_json& got) {
    fail(key, name(key) + " must be " + want + ", got " + json_type_name(got));
  }

 private:
  static std::string fmt(double d) {
    std::string s = std::to_string(d);
    while (s.size() > 1 && s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
    return s;
  }

  const nlohmann::ordered_json& obj_;
  std::string prefix_;
  std::optional<ApiError> error_;
};

}  // namespace tern::api
