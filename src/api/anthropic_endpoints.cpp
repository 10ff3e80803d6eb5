// Anthropic's Messages API on the same engine: POST /v1/messages (whole or streamed) and
// /v1/messages/count_tokens. The body becomes tern's chat request (anthropic_request.h) and runs through the
// one generation path; only the shapes of answers and errors differ (anthropic_response.h).
#include "api/anthropic_request.h"
#include "api/anthropic_response.h"
#include "api/server_impl.h"

namespace tern::api {

using json = nlohmann::ordered_json;

HttpResponse anthropic_error_response(const ApiError& e) { return json_response(e.http_status, anthropic_error_body(e)); }

void ApiServer::Impl::handle_messages(const HttpRequest& req, const XPtr& x) {
  if (draining) return send_shutting_down(x, Dialect::kAnthropic);
  auto parsed = parse_anthropic_request(req.body);
  if (auto* e = std::get_if<ApiError>(&parsed)) return send_error_in(x, Dialect::kAnthropic, *e);
  generate(std::get<AnthropicRequest>(parsed).chat, Dialect::kAnthropic, x);
}

void ApiServer::Impl::handle_count_tokens(const HttpRequest& req, const XPtr& x) {
  auto parsed = parse_anthropic_request(req.body, /*count_tokens=*/true);
  if (auto* e = std::get_if<ApiError>(&parsed)) return send_error_in(x, Dialect::kAnthropic, *e);
  const OpenAiRequest& r = std::get<AnthropicRequest>(parsed).chat;
  if (!model_known(r.model)) {
    ApiError e = api_error(404, "model: " + r.model + " does not exist");
    e.param = "model";
    return send_error_in(x, Dialect::kAnthropic, e);
  }
  const json* tools = r.tools.choice == ToolChoice::kNone ? nullptr : &r.tools.tools;
  auto ids = render_chat(r.messages, true, tools);
  if (auto* e = std::get_if<ApiError>(&ids)) return send_error_in(x, Dialect::kAnthropic, *e);
  x->respond(json_response(200, dump_json({{"input_tokens", std::get<std::vector<int32_t>>(ids).size()}})));
}

}  // namespace tern::api
