// Strict JSON parsing for user-supplied files (config.json, safetensors headers, index files):
// never throws, reports syntax errors on one line, and finds duplicate object keys, which
// nlohmann::json would otherwise silently resolve to the last value.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace tern {

struct ParsedJson {
  nlohmann::json value;
  // Object keys from the root down to the first duplicated key (the last element), empty if none.
  // Arrays on the way are not named: {"a": [{"b": 1, "b": 2}]} gives ["a", "b"].
  std::vector<std::string> duplicate_path;
};

// Errors read "<source>: invalid JSON: <what> at byte N".
Result<ParsedJson> parse_json(std::string_view text, const std::string& source);

// "string", "integer", "number", "boolean", "null", "array", "object": for "expected X, got Y".
const char* json_type_name(const nlohmann::json& j);

// A JSON value for an error message: at most ~80 characters, nesting past 3 levels shown as "...", so a value
// from a hostile file (nested 100,000 deep: nlohmann's dump() recurses; or megabytes long) stays one short line.
std::string json_excerpt(const nlohmann::json& j);

// The deepest nesting of [ and { in JSON text (outside strings), without parsing it: nlohmann's dump()
// and its conversions between json types recurse, so text from a client or a file is bounded first.
int json_nesting_depth(std::string_view text);

// Joins a key path with dots: {"rope_scaling", "factor"} -> "rope_scaling.factor".
std::string join_key_path(const std::vector<std::string>& path);

}  // namespace tern
