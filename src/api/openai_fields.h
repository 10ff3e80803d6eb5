// The classification of every OpenAI request field (implemented / no-op values only / ignored /
// rejected / unknown): see openai_fields.cpp.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/openai_request.h"

namespace tern::api {

// A 400 naming the first field tern does not implement (or implements only with a no-op value);
// fields accepted and ignored are appended to `ignored`. Runs after the implemented fields were parsed
// into r (best_of is compared with r.n).
std::optional<ApiError> check_request_fields(Endpoint endpoint, const nlohmann::ordered_json& body, const OpenAiRequest& r,
                                             std::vector<std::string>& ignored);

}  // namespace tern::api
