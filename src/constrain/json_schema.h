// JSON Schema -> GBNF (docs/structured-output.md lists the keywords). The schema is read with its key order kept
// (nlohmann::ordered_json): properties are generated in the order the schema lists them.
#pragma once

#include <nlohmann/json.hpp>
#include <map>
#include <set>
#include <string>

#include "constrain/grammar_limits.h"
#include "core/status.h"

namespace tern::constrain {

// The fixed pieces of JSON grammar and the keyword tables (json_schema_tables.cpp).
namespace schema_tables {
extern const char* const kWs;      // whitespace between tokens
extern const char* const kChar;    // one JSON string character (escapes included)
extern const char* const kNumber;  // a JSON number (16 integer, 16 fraction, 3 exponent digits at most)
extern const std::set<std::string> kAnnotations;  // keywords ignored
extern const std::set<std::string> kKnown;        // keywords handled
extern const std::map<std::string, std::string> kFormats;  // format -> GBNF of the string's inside
}  // namespace schema_tables

Result<std::string> schema_to_gbnf(const nlohmann::ordered_json& schema, const GrammarLimits& limits);

// Integer range [lo, hi] (either side may be absent) as a GBNF expression over JSON integer text.
std::string integer_range_gbnf(const int64_t* lo, const int64_t* hi);

// Number bounds (integer-valued; exclusive flags) as a GBNF expression; no exponent. "" when no value fits.
std::string number_range_gbnf(const int64_t* lo, bool lo_excl, const int64_t* hi, bool hi_excl);

}  // namespace tern::constrain
