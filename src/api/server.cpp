// ApiServer: httplib setup, routes, auth, shutdown, and the small endpoints (models, health, metrics,
// tokenize, detokenize). Generation lives in generate.cpp.
#include "api/server.h"

#include <chrono>
#include <ctime>

#include <sys/socket.h>

#include "api/openai_response.h"
#include "api/server_impl.h"
#include "model/chat_template/chat_template.h"
#include "model/tokenizer/tokenizer.h"

namespace tern::api {

using json = nlohmann::json;

ApiError api_error(int status, const std::string& message, const std::string& type, const std::string& code) {
  ApiError e;
  e.http_status = status;
  e.message = message;
  e.type = type;
  e.code = code;
  return e;
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.http_status;
  res.set_content(error_body(e), "application/json");
}

namespace {

bool needs_key(const std::string& path) {
  return path.rfind("/v1/", 0) == 0 || path == "/tokenize" || path == "/detokenize";
}

// The default body httplib would send for a status it produced itself (404 route, 413, 400 framing).
ApiError error_for_status(int status, const std::string& path) {
  switch (status) {
    case 404:
      return api_error(404, "no route " + path, "invalid_request_error", "not_found");
    case 405:
      return api_error(405, "method not allowed on " + path, "invalid_request_error");
    case 413:
      return api_error(413, "the request body is too large", "invalid_request_error", "payload_too_large");
    case 414:
      return api_error(414, "the request URI is too long", "invalid_request_error");
    default:
      return api_error(status, status >= 500 ? "internal server error" : "bad request",
                       status >= 500 ? "server_error" : "invalid_request_error");
  }
}

}  // namespace

bool ApiServer::Impl::model_known(const std::string& name) const {
  for (const auto& m : opt.model_names) {
    if (m == name) return true;
  }
  return false;
}

void ApiServer::Impl::track(const std::shared_ptr<RequestGroup>& g) {
  std::lock_guard<std::mutex> lock(groups_mu);
  groups.insert(g);
}

void ApiServer::Impl::untrack(const std::shared_ptr<RequestGroup>& g) {
  std::lock_guard<std::mutex> lock(groups_mu);
  groups.erase(g);
}

void ApiServer::Impl::handle_tokenize(const httplib::Request& req, httplib::Response& res) {
  json b = json::parse(req.body, nullptr, false);
  if (b.is_discarded() || !b.is_object()) return send_error(res, api_error(400, "the body must be a JSON object"));
  if (auto m = b.find("model"); m != b.end() && !m->is_null()) {
    if (!m->is_string() || !model_known(m->get<std::string>())) {
      return send_error(res, api_error(404, "unknown model " + m->dump(), "invalid_request_error", "model_not_found"));
    }
  }
  auto add = b.find("add_special_tokens");
  if (add != b.end() && !add->is_boolean()) {
    return send_error(res, bad_param("add_special_tokens", "'add_special_tokens' must be a boolean"));
  }
  std::vector<int32_t> ids;
  if (auto p = b.find("prompt"); p != b.end()) {
    if (!p->is_string()) return send_error(res, bad_param("prompt", "'prompt' must be a string"));
    ids = tok.encode(p->get<std::string>(), add == b.end() ? true : add->get<bool>());
  } else if (b.contains("messages")) {
    // Reuse the chat request validation for the messages.
    json probe = {{"model", opt.model_names.at(0)}, {"messages", b["messages"]}};
    auto parsed = parse_openai_request(Endpoint::kChat, probe.dump());
    if (auto* e = std::get_if<ApiError>(&parsed)) return send_error(res, *e);
    const bool gen = b.value("add_generation_prompt", true);
    auto r = render_chat(std::get<OpenAiRequest>(parsed).messages, gen);
    if (auto* e = std::get_if<ApiError>(&r)) return send_error(res, *e);
    ids = std::get<std::vector<int32_t>>(r);
  } else {
    return send_error(res, bad_param("prompt", "'prompt' (a string) or 'messages' is required"));
  }
  json out = {{"tokens", ids}, {"count", ids.size()}, {"max_model_len", opt.max_context}};
  res.set_content(dump_json(out), "application/json");
}

void ApiServer::Impl::handle_detokenize(const httplib::Request& req, httplib::Response& res) {
  json b = json::parse(req.body, nullptr, false);
  if (b.is_discarded() || !b.is_object()) return send_error(res, api_error(400, "the body must be a JSON object"));
  auto t = b.find("tokens");
  if (t == b.end() || !t->is_array()) return send_error(res, bad_param("tokens", "'tokens' must be an array of token ids"));
  std::vector<int32_t> ids;
  for (const json& v : *t) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= tok.vocab_size()) {
      return send_error(res, bad_param("tokens", "'tokens' must hold integers in [0, " +
                                                     std::to_string(tok.vocab_size()) + "), got " + v.dump()));
    }
    ids.push_back(int32_t(v.get<int64_t>()));
  }
  res.set_content(dump_json({{"prompt", tok.decode(ids)}}), "application/json");
}

void ApiServer::Impl::setup_routes() {
  const int64_t started = int64_t(std::time(nullptr));
  auto model_json = [this, started](const std::string& name) {
    return json{{"id", name}, {"object", "model"}, {"created", started}, {"owned_by", "tern"},
                {"max_model_len", opt.max_context}};
  };

  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    counters.http_requests++;
    if (!opt.api_key.empty() && needs_key(req.path) &&
        req.get_header_value("Authorization") != "Bearer " + opt.api_key) {
      send_error(res, api_error(401, "invalid or missing API key (Authorization: Bearer <key>)",
                                "invalid_request_error", "invalid_api_key"));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // httplib calls this for every status >= 400, ours included: fill in only bodies it left empty.
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.body.empty() && !res.content_provider_) {
      res.set_content(error_body(error_for_status(res.status, req.path)), "application/json");
    }
  });
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::bad_alloc&) {
      what = "out of memory";
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(res, api_error(500, what, "server_error"));
  });

  http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    handle_generate(Endpoint::kCompletions, req, res);
  });
  http.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    handle_generate(Endpoint::kChat, req, res);
  });
  http.Get("/v1/models", [this, model_json](const httplib::Request&, httplib::Response& res) {
    json data = json::array();
    for (const auto& name : opt.model_names) data.push_back(model_json(name));
    res.set_content(dump_json({{"object", "list"}, {"data", data}}), "application/json");
  });
  http.Get("/v1/models/(.+)", [this, model_json](const httplib::Request& req, httplib::Response& res) {
    const std::string name = req.matches[1];
    if (!model_known(name)) {
      return send_error(res, api_error(404, "The model '" + name + "' does not exist", "invalid_request_error",
                                       "model_not_found"));
    }
    res.set_content(dump_json(model_json(name)), "application/json");
  });
  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (draining) {
      res.status = 503;
      res.set_content(R"({"status":"shutting down"})", "application/json");
      return;
    }
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_text(), "text/plain; version=0.0.4");
  });
  http.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) { handle_tokenize(req, res); });
  http.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) { handle_detokenize(req, res); });
}

void ApiServer::Impl::drain_and_stop() {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(std::max(0.0, opt.shutdown_grace_s)));
  while (active_handlers.load() > 0 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (active_handlers.load() > 0) {
    std::vector<std::shared_ptr<RequestGroup>> live;
    {
      std::lock_guard<std::mutex> lock(groups_mu);
      live.assign(groups.begin(), groups.end());
    }
    for (auto& g : live) {
      g->cancelled_by_shutdown = true;
      g->cancel_all(engine);
    }
    // The cancelled requests answer (an error body, or an error event and [DONE]) before httplib stops.
    const auto hard = Clock::now() + std::chrono::seconds(10);
    while (active_handlers.load() > 0 && Clock::now() < hard) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  http.stop();
}

ApiServer::ApiServer(Engine& engine, const Tokenizer& tokenizer, const ModelChatTemplate* chat_template,
                     ServerOptions options)
    : impl_(std::make_unique<Impl>(engine, tokenizer, chat_template, std::move(options))) {
  Impl& s = *impl_;
  const int64_t threads = s.opt.http_threads > 0 ? s.opt.http_threads : s.opt.max_queue + 32;
  s.http.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  s.http.set_payload_max_length(s.opt.max_body_bytes);
  s.http.set_read_timeout(s.opt.read_timeout_s, 0);
  s.http.set_write_timeout(s.opt.write_timeout_s, 0);
  s.http.set_keep_alive_timeout(s.opt.keep_alive_timeout_s);
  s.http.set_keep_alive_max_count(1000);
  s.http.set_tcp_nodelay(true);
  s.setup_routes();
}

ApiServer::~ApiServer() {
  shutdown();
  if (impl_->drainer.joinable()) impl_->drainer.join();
}

tern::Result<int> ApiServer::bind() {
  Impl& s = *impl_;
  int port = s.opt.port;
  if (port == 0) {
    port = s.http.bind_to_any_port(s.opt.host);
    if (port <= 0) return Status::error("cannot bind " + s.opt.host + " to a free port");
  } else if (!s.http.bind_to_port(s.opt.host, port)) {
    return Status::error("cannot bind " + s.opt.host + ":" + std::to_string(port) +
                         " (in use, or not an address of this machine?)");
  }
  // listen() again on a listening socket only changes its backlog (the kernel caps it at somaxconn).
  ::listen(s.http.listen_fd(), 4096);
  return port;
}

void ApiServer::run() {
  impl_->http.listen_after_bind();
  std::lock_guard<std::mutex> lock(impl_->drain_mu);
  if (impl_->drainer.joinable()) impl_->drainer.join();
}

void ApiServer::shutdown() {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> lock(s.drain_mu);
  if (s.draining.exchange(true)) return;
  s.drainer = std::thread([&s] { s.drain_and_stop(); });
}

}  // namespace tern::api
