// Helpers shared by the tokenizer.json readers: tokenizer_json.cpp (model, normalizer, pre-tokenizer, added
// tokens, post-processor) and decoder_json.cpp (decoders). Internal to the tokenizer module.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "text/tokenizer/tokenizer_spec.h"

namespace tern::tok {

using json = nlohmann::json;

// j["type"] when it is a string, else "".
std::string type_of(const json& j);
// A JSON integer in [0, INT32_MAX] (get<int32_t>() would wrap a larger one into range).
bool fits_id(const json& v);
// j[key], or null when j is no object or lacks it. A reference: json::value() returns a copy, and copying a value
// nested 100,000 deep recurses that deep.
const json& field(const json& j, const char* key);
// Sequences inside Sequences recurse in the readers: more than 32 levels is an error (a hostile file nests them
// 100,000 deep).
Status check_nesting(int depth, const char* stage);
// j[key] as a bool, dflt when absent or null; throws for another type (parse_tokenizer_json turns that into a Status).
bool get_bool(const json& j, const char* key, bool dflt);
// Metaspace, as a pre-tokenizer or a decoder (the same fields).
Result<MetaspaceSpec> parse_metaspace(const json& j);
// The "decoder" field (decoder_json.cpp).
Status parse_decoder(const json& j, DecoderSpec& out);

}  // namespace tern::tok
