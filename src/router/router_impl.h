// Router's insides, shared by router.cpp (front, handler, lifecycle), forward.cpp (one request),
// health.cpp (health checks and load polls) and router_metrics.cpp. Everything in Impl below the
// atomics belongs to the front's I/O thread, which runs the handler too, so nothing locks.
#pragma once

#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "api/http_front.h"
#include "router/router.h"
#include "router/upstream.h"

namespace tern::router {

using XPtr = std::shared_ptr<api::HttpExchange>;

struct Router::Impl {
  explicit Impl(RouterOptions o);

  RouterOptions opt;
  // First, so it is destroyed last: everything below that does I/O lives on its I/O context.
  std::unique_ptr<api::HttpFront> front;
  // The front's I/O thread runs the whole router: the client's request is parsed, routed, sent to its
  // replica, and the answer relayed on that one thread, with no hand-off between threads (each costs a
  // wake-up: on 2 cores with 64 clients those dominated the router's CPU per request). run() runs it.
  net::io_context& io;

  // Any thread.
  std::atomic<bool> draining{false};
  std::atomic<int64_t> active{0};  // forwards not finished
  std::mutex drain_mu;
  std::condition_variable drain_cv;
  std::thread drainer;

  // I/O thread only.
  ConnectionPool pool;
  ReplicaSet set;
  PrefixTable prefixes;  // where each prompt prefix was sent (prefix affinity)
  net::steady_timer health_timer{io};
  std::vector<std::weak_ptr<UpstreamCall>> health_calls;  // checks in flight (cancelled at stop)
  bool stopped = false;  // stop_io(): no more health checks
  uint64_t rr = 0;
  uint64_t requests_total = 0, unrouted_total = 0, cut_streams_total = 0, reloads_total = 0, reload_errors_total = 0;

  UpstreamContext ctx() { return {io, pool}; }
  CallTimeouts forward_timeouts() const { return {opt.connect_timeout_s, opt.upstream_timeout_s}; }

  // The replica for a request: `tried` (URLs) are excluded; null when no healthy one is left. With
  // prefix affinity (a key), the replica chosen is remembered for each prefix in `chain`.
  std::shared_ptr<Replica> pick(const std::optional<AffinityKeys>& key, const std::vector<std::string>& tried,
                                Choice* how);
  bool any_eligible(const std::vector<std::string>& tried) const;
  void mark_down(Replica& r, const std::string& why);
  void mark_up(Replica& r);

  // health.cpp
  void health_round();           // a check for every replica (pending ones allowed), then re-arms the timer
  void check(const std::shared_ptr<Replica>& r, bool confirming = false);
  void stop_io();                // no more checks, the pending ones cancelled, idle connections closed

  // router.cpp
  void handle(api::HttpRequest& req, XPtr x);
  void forward(api::HttpRequest& req, const XPtr& x);
  void route(const XPtr& x, std::string method, std::string target, api::HttpHeaders headers, std::string body,
             std::optional<AffinityKeys> key);
  void forward_done();           // a forward ended (active--, wakes the drain)
  void apply_replicas(const std::vector<ReplicaAddress>& list);

  std::string metrics_text();    // router_metrics.cpp
};

// An error answer in the OpenAI shape.
api::HttpResponse json_error(int status, const std::string& message, const std::string& type, const std::string& code);
// The router's own error for a request to `path`: Anthropic's shape on /v1/messages*, else OpenAI's.
bool anthropic_path(const std::string& path);
api::HttpResponse error_for(const std::string& path, int status, const std::string& message, const std::string& type,
                            const std::string& code);

// One client request on its way through the router (forward.cpp): picks a replica, relays its answer,
// retries on another replica while nothing has been sent to the client, ends a cut stream cleanly.
void start_forward(Router::Impl& core, const XPtr& x, std::string method, std::string target, api::HttpHeaders headers,
                   std::string body, std::optional<AffinityKeys> key);

}  // namespace tern::router
