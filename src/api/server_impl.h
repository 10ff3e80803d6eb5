// ApiServer's insides, shared by server.cpp (setup, guards, routes, shutdown), endpoints.cpp (models,
// health, tokenize, detokenize), generate.cpp (completions and chat) and metrics_text.cpp. None of them
// knows the HTTP library: requests and answers go through http_front.h's types.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "api/http_front.h"
#include "api/openai_request.h"
#include "api/request_group.h"
#include "api/server.h"
#include "text/tool_calls/tool_call_format.h"

namespace tern {
class GrammarCache;
}

namespace tern::api {

struct ServerCounters {
  std::atomic<int64_t> http_requests{0};
  std::atomic<int64_t> rejected_queue_full{0};
  std::atomic<int64_t> rejected_slo{0};  // 429: the TTFT target could not be met given the queue
  std::atomic<int64_t> client_disconnects{0};
  std::atomic<int64_t> completed{0};
  std::atomic<int64_t> refused_origin{0};
  std::atomic<int64_t> refused_host{0};
};

using XPtr = std::shared_ptr<HttpExchange>;

// Which API a generation request came through: its answers and errors take that API's shapes.
enum class Dialect { kOpenAi, kAnthropic };

struct ApiServer::Impl {
  Impl(Engine& e, const Tokenizer& t, const ModelChatTemplate* c, ServerOptions o);
  ~Impl();

  Engine& engine;
  const Tokenizer& tok;
  const ModelChatTemplate* chat;
  ChatFormat chat_format;  // tool-call and reasoning format of the chat template
  ServerOptions opt;
  const int64_t started_at;  // unix seconds
  HttpFront front;

  // Shutdown: the drainer waits (grace, or until shutdown_now) for active handlers, cancels the rest,
  // then stops the front.
  std::atomic<bool> draining{false};
  std::atomic<int64_t> active_handlers{0};  // generation requests not fully answered yet
  std::mutex drain_mu;
  std::condition_variable drain_cv;
  bool force = false;  // under drain_mu
  std::thread drainer;
  std::shared_ptr<std::atomic<int64_t>> in_flight = std::make_shared<std::atomic<int64_t>>(0);
  std::atomic<uint64_t> next_response_id{1};
  ServerCounters counters;

  // Live generation requests, so shutdown can cancel what outlives the grace period.
  std::mutex groups_mu;
  std::set<std::shared_ptr<RequestGroup>> groups;

  // Compiled grammars (response_format, grammar, regex, forced tool calls), built on first use: the
  // vocabulary's byte trie costs a moment on a 150k-token tokenizer.
  std::mutex grammar_mu;
  std::unique_ptr<GrammarCache> grammars;
  Result<GrammarCache*> grammar_cache();
  std::thread grammar_prep;  // run() builds the cache (and starts its warm-up) off the request path

  // Request fields accepted and ignored: each is logged the first time only.
  std::mutex ignored_mu;
  std::set<std::string> ignored_logged;

  void handle(HttpRequest& req, const XPtr& x);
  void route(HttpRequest& req, const XPtr& x);
  void handle_generate(Endpoint endpoint, const HttpRequest& req, const XPtr& x);
  void handle_messages(const HttpRequest& req, const XPtr& x);      // Anthropic POST /v1/messages
  void handle_count_tokens(const HttpRequest& req, const XPtr& x);  // Anthropic POST /v1/messages/count_tokens
  // A validated request of either API: prepare, admit, run, answer in the dialect's shapes.
  void generate(OpenAiRequest& r, Dialect dialect, const XPtr& x);
  void send_shutting_down(const XPtr& x, Dialect d);
  void handle_tokenize(const HttpRequest& req, const XPtr& x);
  void handle_detokenize(const HttpRequest& req, const XPtr& x);
  void handle_models(const HttpRequest& req, const XPtr& x);
  void handle_webui(const HttpRequest& req, const XPtr& x);  // webui_route.cpp
  std::string metrics_text() const;
  bool model_known(const std::string& name) const;
  // The chat template applied to validated messages, tokenized (the template writes any BOS itself).
  // tools: rendered when non-null and non-empty; text_out: the rendered prompt.
  std::variant<std::vector<int32_t>, ApiError> render_chat(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                                          const nlohmann::ordered_json* tools = nullptr,
                                                          std::string* text_out = nullptr) const;
  void log_ignored(const std::vector<std::string>& fields);

  void track(const std::shared_ptr<RequestGroup>& g);
  void untrack(const std::shared_ptr<RequestGroup>& g);
  void handler_done();
  void begin_shutdown(bool now);
  // Wait for live requests to end within the grace period, cancel the rest, then stop the front.
  void drain_and_stop();
};

ApiError api_error(int status, const std::string& message, const std::string& type = "invalid_request_error",
                   const std::string& code = "");
HttpResponse json_response(int status, std::string body);
HttpResponse error_response(const ApiError& e);
inline void send_error(const XPtr& x, const ApiError& e) { x->respond(error_response(e)); }
HttpResponse anthropic_error_response(const ApiError& e);  // Anthropic's error body, same status
inline void send_error_in(const XPtr& x, Dialect d, const ApiError& e) {
  x->respond(d == Dialect::kAnthropic ? anthropic_error_response(e) : error_response(e));
}

}  // namespace tern::api
