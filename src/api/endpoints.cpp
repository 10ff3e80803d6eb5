// The small endpoints: GET /v1/models[/<name>], POST /tokenize, POST /detokenize. Their bodies are
// checked like OpenAI's: every field typed, unknown fields a 400 naming them.
#include "api/json_fields.h"
#include "api/openai_response.h"
#include "api/server_impl.h"
#include "text/chat_template/chat_template.h"
#include "text/tokenizer/tokenizer.h"

namespace tern::api {

using json = nlohmann::ordered_json;

namespace {

// The body as a JSON object whose keys are all in `known`; otherwise the error.
std::variant<json, ApiError> object_body(const std::string& body, std::initializer_list<const char*> known) {
  auto parsed = parse_request_json(body);
  if (auto* e = std::get_if<ApiError>(&parsed)) return *e;
  json b = std::move(std::get<json>(parsed));
  if (!b.is_object()) return api_error(400, "the request body must be a JSON object");
  for (const auto& [key, v] : b.items()) {
    bool ok = false;
    for (const char* k : known) ok = ok || key == k;
    if (!ok) return bad_param(key, "Unrecognized request argument supplied: " + key);
  }
  return b;
}

}  // namespace

void ApiServer::Impl::handle_models(const HttpRequest& req, const XPtr& x) {
  auto model_json = [this](const std::string& name) {
    return json{{"id", name}, {"object", "model"}, {"created", started_at}, {"owned_by", "tern"},
                {"max_model_len", opt.max_context}};
  };
  if (req.path == "/v1/models") {
    json data = json::array();
    for (const auto& name : opt.model_names) data.push_back(model_json(name));
    return x->respond(json_response(200, dump_json({{"object", "list"}, {"data", data}})));
  }
  const std::string name = req.path.substr(std::string("/v1/models/").size());
  if (!model_known(name)) {
    return send_error(x, api_error(404, "The model '" + name + "' does not exist", "invalid_request_error",
                                   "model_not_found"));
  }
  x->respond(json_response(200, dump_json(model_json(name))));
}

void ApiServer::Impl::handle_tokenize(const HttpRequest& req, const XPtr& x) {
  auto parsed = object_body(req.body, {"model", "prompt", "messages", "add_special_tokens", "add_generation_prompt"});
  if (auto* e = std::get_if<ApiError>(&parsed)) return send_error(x, *e);
  const json& b = std::get<json>(parsed);
  Fields f(b);
  const auto model = f.string("model");
  const auto prompt = f.string("prompt");
  const auto add_special = f.boolean("add_special_tokens");
  const auto add_generation = f.boolean("add_generation_prompt");
  if (f.failed()) return send_error(x, f.error());
  if (model && !model_known(*model)) {
    ApiError e = api_error(404, "The model '" + *model + "' does not exist", "invalid_request_error", "model_not_found");
    e.param = "model";
    return send_error(x, e);
  }
  const json* messages = f.get("messages");
  if (prompt && messages) return send_error(x, bad_param("messages", "give 'prompt' or 'messages', not both"));
  std::vector<int32_t> ids;
  if (prompt) {
    if (add_generation) return send_error(x, bad_param("add_generation_prompt", "'add_generation_prompt' needs 'messages'"));
    ids = tok.encode(*prompt, add_special.value_or(true));
  } else if (messages) {
    if (add_special) return send_error(x, bad_param("add_special_tokens", "'add_special_tokens' needs 'prompt' (the chat template writes special tokens)"));
    // The chat request's validation of messages.
    json probe = {{"model", opt.model_names.at(0)}, {"messages", *messages}};
    auto chat_req = parse_openai_request(Endpoint::kChat, probe.dump());
    if (auto* e = std::get_if<ApiError>(&chat_req)) return send_error(x, *e);
    auto r = render_chat(std::get<OpenAiRequest>(chat_req).messages, add_generation.value_or(true));
    if (auto* e = std::get_if<ApiError>(&r)) return send_error(x, *e);
    ids = std::get<std::vector<int32_t>>(r);
  } else {
    return send_error(x, bad_param("prompt", "'prompt' (a string) or 'messages' is required"));
  }
  json out = {{"tokens", ids}, {"count", ids.size()}, {"max_model_len", opt.max_context}};
  x->respond(json_response(200, dump_json(out)));
}

void ApiServer::Impl::handle_detokenize(const HttpRequest& req, const XPtr& x) {
  auto parsed = object_body(req.body, {"model", "tokens"});
  if (auto* e = std::get_if<ApiError>(&parsed)) return send_error(x, *e);
  const json& b = std::get<json>(parsed);
  Fields f(b);
  const auto model = f.string("model");
  if (f.failed()) return send_error(x, f.error());
  if (model && !model_known(*model)) {
    ApiError e = api_error(404, "The model '" + *model + "' does not exist", "invalid_request_error", "model_not_found");
    e.param = "model";
    return send_error(x, e);
  }
  const json* t = f.get("tokens");
  if (!t || !t->is_array()) return send_error(x, bad_param("tokens", "'tokens' must be an array of token ids"));
  std::vector<int32_t> ids;
  for (const json& v : *t) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= tok.vocab_size()) {
      return send_error(x, bad_param("tokens", "'tokens' must hold integers in [0, " +
                                                   std::to_string(tok.vocab_size()) + "), got " + v.dump()));
    }
    ids.push_back(int32_t(v.get<int64_t>()));
  }
  x->respond(json_response(200, dump_json({{"prompt", tok.decode(ids)}})));
}

}  // namespace tern::api
