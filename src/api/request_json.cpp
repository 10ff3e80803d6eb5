// One parse for every request body (json_fields.h), bounded in depth before nlohmann sees it.
#include <string>

#include "api/json_fields.h"
#include "formats/json_util.h"

namespace tern::api {

std::variant<nlohmann::ordered_json, ApiError> parse_request_json(std::string_view body) {
  if (json_nesting_depth(body) > kMaxRequestJsonDepth) {
    return bad_param("", "the request body nests deeper than " + std::to_string(kMaxRequestJsonDepth) + " levels");
  }
  nlohmann::ordered_json b = nlohmann::ordered_json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (b.is_discarded()) return bad_param("", "the request body is not valid JSON (or not valid UTF-8)");
  return b;
}

}  // namespace tern::api
