// ApiServer's insides, shared by server.cpp (setup, routes, small endpoints) and generate.cpp
// (completions and chat).
#pragma once

#include <httplib.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "api/openai_request.h"
#include "api/request_group.h"
#include "api/server.h"

namespace tern::api {

struct ServerCounters {
  std::atomic<int64_t> http_requests{0};
  std::atomic<int64_t> rejected_queue_full{0};
  std::atomic<int64_t> client_disconnects{0};
  std::atomic<int64_t> completed{0};
};

// httplib's server with access to its listening socket: Debian's build listens with a backlog of 5,
// which drops connections under a burst of clients; bind() raises it.
class HttpServer : public httplib::Server {
 public:
  int listen_fd() const { return int(svr_sock_); }
};

struct ApiServer::Impl {
  Impl(Engine& e, const Tokenizer& t, const ModelChatTemplate* c, ServerOptions o)
      : engine(e), tok(t), chat(c), opt(std::move(o)) {}

  Engine& engine;
  const Tokenizer& tok;
  const ModelChatTemplate* chat;
  ServerOptions opt;
  HttpServer http;

  std::atomic<bool> draining{false};
  std::atomic<int64_t> active_handlers{0};  // generation requests not fully answered yet
  std::mutex drain_mu;
  std::thread drainer;
  std::shared_ptr<std::atomic<int64_t>> in_flight = std::make_shared<std::atomic<int64_t>>(0);
  std::atomic<uint64_t> next_response_id{1};
  ServerCounters counters;

  // Live generation requests, so shutdown can cancel what outlives the grace period.
  std::mutex groups_mu;
  std::set<std::shared_ptr<RequestGroup>> groups;

  void setup_routes();
  void handle_generate(Endpoint endpoint, const httplib::Request& req, httplib::Response& res);
  void handle_tokenize(const httplib::Request& req, httplib::Response& res);
  void handle_detokenize(const httplib::Request& req, httplib::Response& res);
  std::string metrics_text() const;
  bool model_known(const std::string& name) const;
  // The chat template applied to validated messages, tokenized (the template writes any BOS itself).
  std::variant<std::vector<int32_t>, ApiError> render_chat(const nlohmann::json& messages,
                                                          bool add_generation_prompt) const;

  void track(const std::shared_ptr<RequestGroup>& g);
  void untrack(const std::shared_ptr<RequestGroup>& g);
  // Wait for live requests to end within the grace period, cancel the rest, then stop httplib.
  void drain_and_stop();
};

// Writes an OpenAI error body with e.http_status.
void send_error(httplib::Response& res, const ApiError& e);
ApiError api_error(int status, const std::string& message, const std::string& type = "invalid_request_error",
                   const std::string& code = "");

}  // namespace tern::api
