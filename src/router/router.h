// tern router: an OpenAI-compatible front over N `tern serve` replicas. It keeps no model: requests are
// forwarded whole (streams relayed piece by piece) to a replica chosen by prefix affinity (routing.h)
// or least load; replicas are health-checked, taken out when they stop answering and put back when they
// answer again; a request that has not started its answer when its replica fails is retried on another
// one; a stream cut mid-way ends with an SSE error event and `data: [DONE]`. See docs/router.md.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "router/routing.h"

namespace tern::router {

struct RouterOptions {
  std::vector<std::string> replicas;  // --replica URLs
  std::string replicas_file;          // --replicas FILE (re-read on reload())
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;                // clients must send it (Bearer or x-api-key); the router sends it to the replicas
  bool metrics_public = false;        // with api_key: /metrics answers without it
  std::vector<std::string> cors_origins;   // browser Origins allowed cross-site ("*": any); others get 403
  std::vector<std::string> allowed_hosts;  // Host names accepted besides loopback ones on a loopback bind
  Policy policy = Policy::kAffinity;
  double balance = 1.25;              // bounded load: a replica takes at most this times the mean load
  int balance_slack = 6;              // ... plus this many requests (hash_ring.h: affinity at low load)
  size_t prompt_bytes = 256;          // completions: the prompt prefix that is hashed
  double health_interval_s = 0.5;
  double health_timeout_s = 1;
  double connect_timeout_s = 1;
  double upstream_timeout_s = 600;    // a replica silent this long (before or within an answer) has failed
  double shutdown_grace_s = 30;
  // The HTTP front's limits, as `tern serve`'s (api/http_front.h).
  size_t max_body_bytes = 4u << 20;
  size_t max_header_bytes = 32u << 10;
  int max_header_fields = 100;
  double header_timeout_s = 10;
  double body_timeout_s = 60;
  double write_timeout_s = 30;
  int http_threads = 4;               // parse long bodies for their affinity key (the rest runs on the I/O thread)
  int max_connections = 10000;
};

class Router {
 public:
  // Checks the options and reads the replica list: a bad URL or file is an error naming it.
  static Result<std::unique_ptr<Router>> create(RouterOptions options);
  ~Router();

  // Binds, then health-checks every replica once (waiting up to the health timeout) and logs each one's
  // state; replicas that are down are checked again every interval. Returns the port.
  Result<int> start();
  // Serves until shutdown() has drained; returns then.
  void run();
  // Thread-safe. Drain: new requests get 503, requests in flight finish (streams included, up to the
  // shutdown grace), then run() returns.
  void shutdown();
  // Thread-safe. Re-reads the replica file (--replicas); a bad file is logged and the set kept.
  void reload();

  struct Impl;

 private:
  explicit Router(RouterOptions options);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tern::router
