// The OpenAI-compatible HTTP server (cpp-httplib): /v1/completions, /v1/chat/completions (streaming or
// not), /v1/models, /health, /metrics, /tokenize, /detokenize, on top of an Engine. It owns no model:
// the caller passes the engine, the tokenizer and the chat template.
//
// Threads: httplib serves each connection on one of `http_threads` workers; a generating request waits
// on its own RequestGroup queue, which the engine thread fills. Admission is bounded: past `max_queue`
// engine requests in flight the answer is 429, so a flood of clients never grows memory without bound.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "engine/engine.h"

namespace tern {
class Tokenizer;
struct ModelChatTemplate;
}  // namespace tern

namespace tern::api {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                   // 0: any free port (see ApiServer::port())
  std::string api_key;               // non-empty: /v1/* and /tokenize, /detokenize need "Bearer <key>"
  std::vector<std::string> model_names = {"tern"};  // names a request's "model" may use; [0] is listed
  int64_t max_context = 2048;        // prompt + completion tokens
  int64_t max_queue = 256;           // engine requests in flight (running + waiting); past it: 429
  int http_threads = 0;              // 0: max_queue + 32 (room to answer 429s while the queue is full)
  size_t max_body_bytes = 4u << 20;  // larger bodies: 413
  int read_timeout_s = 30;
  int write_timeout_s = 30;
  int keep_alive_timeout_s = 5;
  double shutdown_grace_s = 30;      // SIGTERM: in-flight requests may finish this long, then are cancelled
  std::vector<int32_t> eos_ids;      // end generation on these (EOS, end-of-turn tokens)
};

class ApiServer {
 public:
  // engine, tokenizer and chat_template (may be null: chat then answers 400) must outlive the server.
  ApiServer(Engine& engine, const Tokenizer& tokenizer, const ModelChatTemplate* chat_template, ServerOptions options);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds the listening socket; returns the port (useful with port 0).
  tern::Result<int> bind();
  // Serves until shutdown() has drained; returns after every connection thread has ended.
  void run();
  // Thread-safe, returns at once: new requests get 503, in-flight ones finish (or are cancelled after
  // the grace period), then run() returns.
  void shutdown();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tern::api
