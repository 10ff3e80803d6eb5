// ApiServer: the front's options, the guards every request passes (Host, Origin, API key), routes,
// and shutdown. Endpoints live in endpoints.cpp, generate.cpp and webui_route.cpp (/).
#include "api/server.h"

#include <chrono>
#include <cstdio>
#include <ctime>

#include "api/openai_response.h"
#include "api/request_guard.h"
#include "api/server_impl.h"
#include "constrain/token_constraint.h"
#include "text/chat_template/chat_template.h"

namespace tern::api {

using json = nlohmann::ordered_json;

ApiError api_error(int status, const std::string& message, const std::string& type, const std::string& code) {
  ApiError e;
  e.http_status = status;
  e.message = message;
  e.type = type;
  e.code = code;
  return e;
}

HttpResponse json_response(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse error_response(const ApiError& e) { return json_response(e.http_status, error_body(e)); }

namespace {

bool needs_key(const std::string& path, bool metrics_public) {
  return path.rfind("/v1/", 0) == 0 || path == "/tokenize" || path == "/detokenize" ||
         (path == "/metrics" && !metrics_public);
}

HttpFrontOptions front_options(const ServerOptions& o) {
  HttpFrontOptions f;
  f.max_header_bytes = o.max_header_bytes;
  f.max_header_fields = o.max_header_fields;
  f.max_body_bytes = o.max_body_bytes;
  f.header_timeout_s = o.header_timeout_s;
  f.body_timeout_s = o.body_timeout_s;
  f.keep_alive_timeout_s = o.keep_alive_timeout_s;
  f.write_timeout_s = o.write_timeout_s;
  f.max_connections = o.max_connections;
  f.worker_threads = o.http_threads > 0 ? o.http_threads : 4;
  f.max_buffered_bytes = std::max<size_t>(size_t(256) << 20, 2 * o.max_body_bytes);
  f.error_response = [](int status, const std::string& message) {
    const char* type = status == 503 ? "server_error" : "invalid_request_error";
    return error_response(api_error(status, message, type));
  };
  return f;
}

}  // namespace

ApiServer::Impl::Impl(Engine& e, const Tokenizer& t, const ModelChatTemplate* c, ServerOptions o)
    : engine(e), tok(t), chat(c), chat_format(c ? detect_chat_format(c->chat_template.source()) : ChatFormat{}),
      opt(std::move(o)), started_at(int64_t(std::time(nullptr))),
      front(front_options(opt), [this](HttpRequest& req, std::shared_ptr<HttpExchange> x) { handle(req, x); }) {}

ApiServer::Impl::~Impl() = default;

Result<GrammarCache*> ApiServer::Impl::grammar_cache() {
  std::lock_guard<std::mutex> lock(grammar_mu);
  if (!grammars) {
    TERN_ASSIGN_OR_RETURN(TokenVocabulary vocab, TokenVocabulary::from_tokenizer(tok, opt.model_vocab));
    grammars = std::make_unique<GrammarCache>(std::move(vocab));
    grammars->start_warm_up();  // the shared lexical masks, in the background (issue 16: the cold-mask p99)
  }
  return grammars.get();
}

bool ApiServer::Impl::model_known(const std::string& name) const {
  for (const auto& m : opt.model_names) {
    if (m == name) return true;
  }
  return false;
}

void ApiServer::Impl::log_ignored(const std::vector<std::string>& fields) {
  std::lock_guard<std::mutex> lock(ignored_mu);
  for (const auto& f : fields) {
    if (ignored_logged.insert(f).second) {
      std::fprintf(stderr, "[tern] request field '%s' is accepted and ignored (docs/serve.md says why); logged once\n",
                   f.c_str());
    }
  }
}

void ApiServer::Impl::track(const std::shared_ptr<RequestGroup>& g) {
  std::lock_guard<std::mutex> lock(groups_mu);
  groups.insert(g);
}

void ApiServer::Impl::untrack(const std::shared_ptr<RequestGroup>& g) {
  std::lock_guard<std::mutex> lock(groups_mu);
  groups.erase(g);
}

void ApiServer::Impl::handle(HttpRequest& req, const XPtr& x) {
  counters.http_requests++;
  // DNS rebinding: a foreign name for a loopback server means a web page is driving it.
  const std::string host = req.header("host");
  if (!host_allowed(host, opt.host, opt.allowed_hosts)) {
    counters.refused_host++;
    return send_error(x, api_error(403, "Host '" + host + "' is not a name of this server (--allowed-host adds one)",
                                   "invalid_request_error", "host_not_allowed"));
  }
  bool preflight = false;
  const std::string origin = req.header("origin");
  HttpHeaders cors;
  switch (check_origin(origin, host, opt.cors_origins)) {
    case OriginVerdict::kRefused:
      counters.refused_origin++;
      return send_error(x, api_error(403, "cross-origin requests from " + origin + " are not allowed (--cors-origin)",
                                     "invalid_request_error", "origin_not_allowed"));
    case OriginVerdict::kAllowed:
      cors = cors_headers(origin);
      preflight = req.method == "OPTIONS";
      break;
    default:
      break;
  }
  if (preflight) return x->respond(cors_preflight(cors));
  const XPtr out = cors.empty() ? x : with_headers(x, std::move(cors));
  if (!opt.api_key.empty() && needs_key(req.path, opt.metrics_public) &&
      !constant_time_equal(req.header("authorization"), "Bearer " + opt.api_key) &&
      !constant_time_equal(req.header("x-api-key"), opt.api_key)) {
    // Anthropic's clients send the key as x-api-key; OpenAI's as a bearer token. Either is accepted.
    const bool anthropic = req.path.rfind("/v1/messages", 0) == 0;
    return send_error_in(out, anthropic ? Dialect::kAnthropic : Dialect::kOpenAi,
                         api_error(401, "invalid or missing API key (Authorization: Bearer <key>, or x-api-key: <key>)",
                                   "invalid_request_error", "invalid_api_key"));
  }
  route(req, out);
}

void ApiServer::Impl::route(HttpRequest& req, const XPtr& x) {
  const std::string& p = req.path;
  const bool get = req.method == "GET" || req.method == "HEAD";
  const bool post = req.method == "POST";
  auto wrong_method = [&](const char* allow) {
    ApiError e = api_error(405, "method " + req.method + " is not allowed on " + p + " (use " + allow + ")");
    HttpResponse r = error_response(e);
    r.headers.push_back({"Allow", allow});
    x->respond(std::move(r));
  };
  if (p == "/v1/completions" || p == "/v1/chat/completions") {
    if (!post) return wrong_method("POST");
    return handle_generate(p == "/v1/completions" ? Endpoint::kCompletions : Endpoint::kChat, req, x);
  }
  if (p == "/v1/messages" || p == "/v1/messages/count_tokens") {
    if (!post) return wrong_method("POST");
    return p == "/v1/messages" ? handle_messages(req, x) : handle_count_tokens(req, x);
  }
  if (p == "/tokenize" || p == "/detokenize") {
    if (!post) return wrong_method("POST");
    return p == "/tokenize" ? handle_tokenize(req, x) : handle_detokenize(req, x);
  }
  if (p == "/v1/models" || p.rfind("/v1/models/", 0) == 0) {
    if (!get) return wrong_method("GET");
    return handle_models(req, x);
  }
  if (p == "/health") {
    if (!get) return wrong_method("GET");
    if (draining) return x->respond(json_response(503, R"({"status":"shutting down"})"));
    return x->respond(json_response(200, R"({"status":"ok"})"));
  }
  if (opt.webui && (p == "/" || p == "/index.html")) {
    if (!get) return wrong_method("GET");
    return handle_webui(req, x);
  }
  if (p == "/metrics") {
    if (!get) return wrong_method("GET");
    HttpResponse r = json_response(200, metrics_text());
    r.content_type = "text/plain; version=0.0.4";
    return x->respond(std::move(r));
  }
  send_error(x, api_error(404, "no route " + p, "invalid_request_error", "not_found"));
}

void ApiServer::Impl::handler_done() {
  if (active_handlers.fetch_sub(1) == 1) {
    std::lock_guard<std::mutex> lock(drain_mu);
    drain_cv.notify_all();
  }
}

void ApiServer::Impl::drain_and_stop() {
  using Clock = std::chrono::steady_clock;
  const auto grace = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(std::max(0.0, opt.shutdown_grace_s)));
  std::unique_lock<std::mutex> lock(drain_mu);
  drain_cv.wait_until(lock, Clock::now() + grace, [&] { return force || active_handlers.load() == 0; });
  if (active_handlers.load() > 0) {
    std::vector<std::shared_ptr<RequestGroup>> live;
    {
      std::lock_guard<std::mutex> g(groups_mu);
      live.assign(groups.begin(), groups.end());
    }
    std::fprintf(stderr, "[tern] cancelling %zu in-flight request(s)\n", live.size());
    for (auto& g : live) {
      g->cancelled_by_shutdown = true;
      g->cancel_all(engine);
    }
    // The cancelled requests answer (an error body, or an error event and [DONE]) before the front stops.
    drain_cv.wait_for(lock, std::chrono::seconds(10), [&] { return active_handlers.load() == 0; });
  }
  lock.unlock();
  front.stop();
}

void ApiServer::Impl::begin_shutdown(bool now) {
  std::lock_guard<std::mutex> lock(drain_mu);
  if (now) {
    force = true;
    drain_cv.notify_all();
  }
  if (draining.exchange(true)) return;
  drainer = std::thread([this] { drain_and_stop(); });
}

ApiServer::ApiServer(Engine& engine, const Tokenizer& tokenizer, const ModelChatTemplate* chat_template,
                     ServerOptions options)
    : impl_(std::make_unique<Impl>(engine, tokenizer, chat_template, std::move(options))) {}

ApiServer::~ApiServer() {
  shutdown_now();
  if (impl_->grammar_prep.joinable()) impl_->grammar_prep.join();
  std::thread drainer;
  {
    std::lock_guard<std::mutex> lock(impl_->drain_mu);
    drainer = std::move(impl_->drainer);
  }
  if (drainer.joinable()) drainer.join();
  // Engine callbacks may still ring a request's notifier; after this nothing reaches the front.
  std::lock_guard<std::mutex> lock(impl_->groups_mu);
  for (const auto& g : impl_->groups) {
    g->set_notifier(nullptr);
    g->cancel_all(impl_->engine);
  }
}

tern::Result<int> ApiServer::bind() { return impl_->front.bind(impl_->opt.host, impl_->opt.port); }

void ApiServer::run() {
  // The grammar vocabulary and its warm-up are made while the server waits for its first requests, not by the
  // first request with a response_format (joined by ~ApiServer).
  if (!impl_->grammar_prep.joinable())
    impl_->grammar_prep = std::thread([impl = impl_.get()] { (void)impl->grammar_cache(); });
  impl_->front.run();
  std::thread drainer;
  {
    std::lock_guard<std::mutex> lock(impl_->drain_mu);
    drainer = std::move(impl_->drainer);
  }
  if (drainer.joinable()) drainer.join();
}

void ApiServer::shutdown() { impl_->begin_shutdown(false); }

void ApiServer::shutdown_now() { impl_->begin_shutdown(true); }

void ApiServer::fail_in_flight(const std::string& message) {
  std::fprintf(stderr, "[tern] %s: answering the requests in flight with 503\n", message.c_str());
  impl_->begin_shutdown(true);  // new requests: 503 from here on
  std::vector<std::shared_ptr<RequestGroup>> live;
  {
    std::lock_guard<std::mutex> g(impl_->groups_mu);
    live.assign(impl_->groups.begin(), impl_->groups.end());
  }
  for (auto& g : live) {
    g->cancelled_by_shutdown = true;  // answered as 503
    g->fail_unfinished(message);
  }
}

}  // namespace tern::api
