// The OpenAI-compatible HTTP server: /v1/completions, /v1/chat/completions (streaming or not),
// /v1/models, /health, /metrics, /tokenize, /detokenize and / (the web page), on top of an Engine. It
// owns no model: the caller passes the engine, the tokenizer and the chat template.
//
// Threads: one I/O thread (the caller of run()) owns every connection (http_front.h); handlers run on
// a few worker threads; a generating request registers with the engine and its events wake a worker
// that writes them, so a waiting request holds no thread. Admission is bounded: past `max_queue` engine
// requests in flight the answer is 429, so a flood of clients never grows memory without bound.
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
class Communicator;
}  // namespace tern

namespace tern::api {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                   // 0: any free port (see ApiServer::bind())
  std::string api_key;               // non-empty: /v1/*, /tokenize, /detokenize (and /metrics) need "Bearer <key>"
  bool metrics_public = false;       // with api_key: /metrics answers without the key
  std::vector<std::string> cors_origins;   // browser Origins allowed cross-site ("*": any); others get 403
  std::vector<std::string> allowed_hosts;  // Host names accepted besides loopback ones on a loopback bind
  std::vector<std::string> model_names = {"tern"};  // names a request's "model" may use; [0] is listed
  int64_t max_context = 2048;        // prompt + completion tokens
  int64_t max_queue = 256;           // engine requests in flight (running + waiting); past it: 429
  int http_threads = 0;              // handler worker threads; 0: 4
  size_t max_body_bytes = 4u << 20;  // larger bodies (chunked ones too): 413
  size_t max_header_bytes = 32u << 10;  // request line + header fields: 431 past it
  int max_header_fields = 100;          // 431 past it
  double header_timeout_s = 10;      // a request head must arrive within this: 408
  double body_timeout_s = 60;        // its body within this, once the head is in: 408
  double write_timeout_s = 30;       // a write to a client that makes no progress this long drops it
  double keep_alive_timeout_s = 5;   // an idle connection between requests closes after this
  int max_connections = 10000;       // past it the oldest connection with no request in work is closed
  double shutdown_grace_s = 30;      // SIGTERM: in-flight requests may finish this long, then are cancelled
  std::vector<int32_t> eos_ids;      // end generation on these (EOS, end-of-turn tokens)
  int64_t model_vocab = 0;           // the model's logits width (grammar masks); 0: the tokenizer's
  // Latency targets: the engine runs the slo scheduling policy (requests may then set slo_ttft_ms /
  // slo_tpot_ms), with these defaults in seconds (0: none).
  bool slo_scheduling = false;
  double slo_ttft_s = 0, slo_tpot_s = 0;
  bool webui = true;                 // GET / answers the web page (chat + dashboard); false: 404
  const Communicator* tp_comm = nullptr;  // tensor parallelism (issue 17): /metrics exports what rank 0 sent
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
  // Serves until shutdown() has drained; returns after every connection has closed.
  void run();
  // Thread-safe, returns at once: new requests get 503, in-flight ones finish (or are cancelled after
  // the grace period), then run() returns.
  void shutdown();
  // Thread-safe, returns at once: as shutdown(), with no grace: what is in flight is cancelled now
  // (a second SIGTERM).
  void shutdown_now();
  // Thread-safe, returns at once: the engine can no longer answer (a rank of a parallel job died and
  // the step in progress waits on it). Requests in flight are answered now, without the engine, with
  // 503 and `message` (streams: an error event and [DONE]); new requests get 503; then run() returns.
  // The caller exits without joining the engine.
  void fail_in_flight(const std::string& message);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tern::api
