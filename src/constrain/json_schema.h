// JSON Schema -> GBNF (docs/structured-output.md lists the keywords). The schema is read with its key order kept
// (nlohmann::ordered_json): properties are generated in the order the schema lists them.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "constrain/grammar_limits.h"
#include "core/status.h"

namespace tern::constrain {

Result<std::string> schema_to_gbnf(const nlohmann::ordered_json& schema, const GrammarLimits& limits);

// Integer range [lo, hi] (either side may be absent) as a GBNF expression over JSON integer text.
std::string integer_range_gbnf(const int64_t* lo, const int64_t* hi);

// Number bounds (integer-valued; exclusive flags) as a GBNF expression; no exponent. "" when no value fits.
std::string number_range_gbnf(const int64_t* lo, bool lo_excl, const int64_t* hi, bool hi_excl);

}  // namespace tern::constrain
