// Router: the HTTP front (src/api/http_front.h), the handler, the replica choice and states, start,
// drain and reload (router.h). The handler runs on the front's I/O thread, which owns the replica set.
#include <nlohmann/json.hpp>

#include <boost/asio/post.hpp>

#include <cstdio>

#include "api/anthropic_response.h"
#include "api/request_guard.h"
#include "router/router_impl.h"

namespace tern::router {

using api::HttpRequest;
using api::HttpResponse;

HttpResponse json_error(int status, const std::string& message, const std::string& type, const std::string& code) {
  HttpResponse r;
  r.status = status;
  r.body = nlohmann::json{{"error", {{"message", message}, {"type", type}, {"param", nullptr},
                                     {"code", code.empty() ? nlohmann::json(nullptr) : nlohmann::json(code)}}}}
               .dump();
  return r;
}

bool anthropic_path(const std::string& path) { return path.rfind("/v1/messages", 0) == 0; }

HttpResponse error_for(const std::string& path, int status, const std::string& message, const std::string& type,
                       const std::string& code) {
  if (!anthropic_path(path)) return json_error(status, message, type, code);
  api::ApiError e;
  e.http_status = status;
  e.message = message;
  e.type = type;
  e.code = code;
  HttpResponse r;
  r.status = status;
  r.body = api::anthropic_error_body(e);
  return r;
}

namespace {

// A chat body past this is parsed for its affinity key on a worker thread, not on the I/O thread (a long
// history takes a millisecond or more, which would hold up every other client's relay meanwhile).
constexpr size_t kInlineKeyBytes = 64u << 10;

std::unique_ptr<api::HttpFront> make_front(Router::Impl& s) {
  api::HttpFrontOptions fo;
  fo.max_body_bytes = s.opt.max_body_bytes;
  fo.max_buffered_bytes = std::max<size_t>(size_t(256) << 20, 2 * s.opt.max_body_bytes);
  fo.max_header_bytes = s.opt.max_header_bytes;
  fo.max_header_fields = s.opt.max_header_fields;
  fo.header_timeout_s = s.opt.header_timeout_s;
  fo.body_timeout_s = s.opt.body_timeout_s;
  fo.write_timeout_s = s.opt.write_timeout_s;
  fo.worker_threads = std::max(1, s.opt.http_threads);
  fo.handler_on_io_thread = true;  // handle() only parses and starts non-blocking calls
  fo.max_connections = s.opt.max_connections;
  fo.error_response = [](int status, const std::string& message) {
    return json_error(status, message, status >= 500 ? "server_error" : "invalid_request_error", "");
  };
  return std::make_unique<api::HttpFront>(std::move(fo), [&s](HttpRequest& req, XPtr x) { s.handle(req, std::move(x)); });
}

}  // namespace

Router::Impl::Impl(RouterOptions o) : opt(std::move(o)), front(make_front(*this)), io(front->io_context()) {}

bool Router::Impl::any_eligible(const std::vector<std::string>& tried) const {
  for (const auto& r : set.all()) {
    if (r->healthy && std::find(tried.begin(), tried.end(), r->addr.url) == tried.end()) return true;
  }
  return false;
}

std::shared_ptr<Replica> Router::Impl::pick(const std::optional<AffinityKeys>& key, const std::vector<std::string>& tried,
                                            Choice* how) {
  const auto& all = set.all();
  std::vector<ReplicaState> states(all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    const Replica& r = *all[i];
    states[i].eligible = r.healthy && std::find(tried.begin(), tried.end(), r.addr.url) == tried.end();
    states[i].in_flight = r.in_flight;
    states[i].queued = r.queued;
  }
  std::vector<int> holders;
  if (key) {
    for (const std::string& url : prefixes.holders(key->chain)) {
      for (size_t i = 0; i < all.size(); ++i) {
        if (all[i]->addr.url == url) holders.push_back(int(i));
      }
    }
  }
  *how = choose(opt.policy, set.ring(), key ? std::optional<uint64_t>(key->home) : std::nullopt, states,
                Balance(opt.balance, opt.balance_slack), rr++, holders);
  if (how->index < 0) return nullptr;
  const std::shared_ptr<Replica>& r = all[size_t(how->index)];
  if (key && how->affinity) prefixes.record(key->chain, r->addr.url);
  return r;
}

void Router::Impl::mark_down(Replica& r, const std::string& why) {
  r.checked = true;
  r.last_error = why;
  pool.drop(r.addr.url);
  if (!r.healthy) return;
  r.healthy = false;
  r.went_down++;
  std::fprintf(stderr, "[tern] router: replica %s is down (%s): out of the rotation until it answers\n",
               r.addr.url.c_str(), why.c_str());
  // Its requests move now (a hung replica would hold them until the upstream timeout): those not yet
  // answering are retried elsewhere, streams are cut with an error event.
  const std::vector<ReplicaUser*> users(r.users.begin(), r.users.end());
  for (ReplicaUser* u : users) {
    if (r.users.count(u)) u->replica_failed(why);
  }
}

void Router::Impl::mark_up(Replica& r) {
  const bool first = !r.checked;
  r.checked = true;
  if (r.healthy) return;
  r.healthy = true;
  r.last_error.clear();
  std::fprintf(stderr, "[tern] router: replica %s is %s\n", r.addr.url.c_str(), first ? "up" : "back: in the rotation again");
}

void Router::Impl::forward_done() {
  if (active.fetch_sub(1) == 1) {
    std::lock_guard<std::mutex> lock(drain_mu);
    drain_cv.notify_all();
  }
}

void Router::Impl::apply_replicas(const std::vector<ReplicaAddress>& list) {
  std::vector<std::shared_ptr<Replica>> old = set.all();
  set.assign(list);
  for (const auto& r : old) {
    if (std::find(set.all().begin(), set.all().end(), r) == set.all().end()) {
      std::fprintf(stderr, "[tern] router: replica %s removed (its requests in flight finish)\n", r->addr.url.c_str());
      pool.drop(r->addr.url);
    }
  }
  for (const auto& r : set.all()) {
    if (std::find(old.begin(), old.end(), r) != old.end()) continue;
    if (!old.empty()) std::fprintf(stderr, "[tern] router: replica %s added\n", r->addr.url.c_str());
    if (r->checks == 0) check(r);
  }
}

void Router::Impl::handle(HttpRequest& req, XPtr x) {
  const std::string& p = req.path;
  // Who may call, as `tern serve` decides it (api/request_guard.h): the Host (DNS rebinding of a loopback
  // router), a browser's Origin (--cors-origin), the key.
  const std::string host = req.header("host");
  if (!api::host_allowed(host, opt.host, opt.allowed_hosts)) {
    return x->respond(error_for(p, 403, "Host '" + host + "' is not a name of this server (--allowed-host adds one)",
                                "invalid_request_error", "host_not_allowed"));
  }
  const std::string origin = req.header("origin");
  switch (api::check_origin(origin, host, opt.cors_origins)) {
    case api::OriginVerdict::kRefused:
      return x->respond(error_for(p, 403, "cross-origin requests from " + origin + " are not allowed (--cors-origin)",
                                  "invalid_request_error", "origin_not_allowed"));
    case api::OriginVerdict::kAllowed:
      if (req.method == "OPTIONS") return x->respond(api::cors_preflight(api::cors_headers(origin)));
      x = api::with_headers(std::move(x), api::cors_headers(origin));
      break;
    default:
      break;
  }
  const bool needs_key = p != "/health" && !(p == "/metrics" && opt.metrics_public);
  if (!opt.api_key.empty() && needs_key &&
      !api::constant_time_equal(req.header("authorization"), "Bearer " + opt.api_key) &&
      !api::constant_time_equal(req.header("x-api-key"), opt.api_key)) {
    // OpenAI's clients send a bearer token, Anthropic's x-api-key: either is accepted, as by `tern serve`.
    return x->respond(error_for(p, 401, "invalid or missing API key (Authorization: Bearer <key>, or x-api-key: <key>)",
                                "invalid_request_error", "invalid_api_key"));
  }
  const bool get = req.method == "GET" || req.method == "HEAD";
  if (p == "/metrics" || p == "/health") {
    if (!get) return x->respond(json_error(405, "method " + req.method + " is not allowed on " + p + " (use GET)",
                                           "invalid_request_error", ""));
    if (p == "/metrics") {
      HttpResponse r;
      r.content_type = "text/plain; version=0.0.4";
      r.body = metrics_text();
      return x->respond(std::move(r));
    }
    int healthy = 0;
    for (const auto& r : set.all()) healthy += r->healthy ? 1 : 0;
    HttpResponse r;
    r.status = draining ? 503 : healthy > 0 ? 200 : 503;
    r.body = nlohmann::json{{"status", draining ? "shutting down" : healthy > 0 ? "ok" : "no healthy replica"},
                            {"replicas", set.all().size()}, {"healthy", healthy}}
                 .dump();
    return x->respond(std::move(r));
  }
  if (p.rfind("/v1/", 0) == 0 || p == "/tokenize" || p == "/detokenize") return forward(req, x);
  x->respond(json_error(404, "no route " + p, "invalid_request_error", "not_found"));
}

void Router::Impl::forward(HttpRequest& req, const XPtr& x) {
  active++;
  if (draining) {
    forward_done();
    return x->respond(error_for(req.path, 503, "the router is shutting down", "server_error", "shutting_down"));
  }
  api::HttpHeaders headers;
  for (auto& [k, v] : req.headers) {
    // The router answers for the origin; with its own key, the client's key is not the replicas'.
    if (k == "origin" || ((k == "authorization" || k == "x-api-key") && !opt.api_key.empty())) continue;
    headers.emplace_back(std::move(k), std::move(v));
  }
  if (!opt.api_key.empty()) headers.emplace_back("authorization", "Bearer " + opt.api_key);
  std::string target = req.target;
  if (target.empty() || target[0] != '/') target = req.query.empty() ? req.path : req.path + "?" + req.query;
  const bool keyed = opt.policy == Policy::kAffinity && req.method == "POST";
  if (keyed && req.body.size() > kInlineKeyBytes) {
    // A long body's key on a worker, then back to the I/O thread (the only one that routes).
    return x->post([this, x, m = std::move(req.method), t = std::move(target), h = std::move(headers),
                    b = std::move(req.body)]() mutable {
      std::optional<AffinityKeys> key = affinity_keys(b, opt.prompt_bytes);
      net::post(io, [this, x, m = std::move(m), t = std::move(t), h = std::move(h), b = std::move(b),
                     key = std::move(key)]() mutable {
        route(x, std::move(m), std::move(t), std::move(h), std::move(b), std::move(key));
      });
    });
  }
  std::optional<AffinityKeys> key;
  if (keyed) key = affinity_keys(req.body, opt.prompt_bytes);
  route(x, std::move(req.method), std::move(target), std::move(headers), std::move(req.body), std::move(key));
}

void Router::Impl::route(const XPtr& x, std::string method, std::string target, api::HttpHeaders headers,
                         std::string body, std::optional<AffinityKeys> key) {
  requests_total++;
  start_forward(*this, x, std::move(method), std::move(target), std::move(headers), std::move(body), std::move(key));
}

Result<std::unique_ptr<Router>> Router::create(RouterOptions o) {
  if (o.replicas.empty() == o.replicas_file.empty()) {
    return Status::error(o.replicas.empty() ? "no replicas: give --replica URL (repeatable) or --replicas FILE"
                                            : "give --replica or --replicas, not both");
  }
  if (o.balance < 1.0) return Status::error("--balance must be at least 1 (a replica's load bound / the mean load)");
  if (o.balance_slack < 0) return Status::error("--balance-slack must be 0 or more (requests above the bound)");
  std::vector<ReplicaAddress> list;
  if (!o.replicas_file.empty()) {
    TERN_ASSIGN_OR_RETURN(list, load_replica_file(o.replicas_file));
  } else {
    std::string joined;
    for (const std::string& u : o.replicas) joined += u + "\n";
    TERN_ASSIGN_OR_RETURN(list, parse_replica_list(joined, "--replica"));
  }
  std::unique_ptr<Router> r(new Router(std::move(o)));
  r->impl_->set.assign(list);
  return r;
}

Router::Router(RouterOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

// run() has returned (or never ran): the I/O context is idle; the front, destroyed last (Impl's first
// member), takes the handlers still queued on it along.
Router::~Router() {
  if (impl_->drainer.joinable()) impl_->drainer.join();
}

Result<int> Router::start() {
  Impl& s = *impl_;
  TERN_ASSIGN_OR_RETURN(const int port, s.front->bind(s.opt.host, s.opt.port));
  // The first round of health checks, here on this thread, so the log says which replicas are up before
  // the first request is routed.
  for (const auto& r : s.set.all()) s.check(r);
  const auto until = std::chrono::steady_clock::now() +
                     std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                         std::chrono::duration<double>(s.opt.health_timeout_s + s.opt.connect_timeout_s + 0.5));
  auto all_checked = [&s] {
    for (const auto& r : s.set.all()) {
      if (r->checks > 0) return false;
    }
    return true;
  };
  while (!all_checked() && std::chrono::steady_clock::now() < until) s.io.run_one_until(until);
  for (const auto& r : s.set.all()) {
    if (!r->healthy) {
      std::fprintf(stderr, "[tern] router: replica %s is down (%s): checked again every %g s\n", r->addr.url.c_str(),
                   r->last_error.empty() ? "no answer yet" : r->last_error.c_str(), s.opt.health_interval_s);
    }
  }
  s.health_timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(s.opt.health_interval_s)));
  s.health_timer.async_wait([&s](const boost::system::error_code& ec) {
    if (!ec) s.health_round();
  });
  s.io.restart();  // the checks above may have run it out of work, which stops it; run() runs it again
  return port;
}

void Router::run() { impl_->front->run(); }

void Router::shutdown() {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> lock(s.drain_mu);
  if (s.draining.exchange(true)) {
    net::post(s.io, [&s] { s.stop_io(); });
    s.front->stop();  // a second request: stop now
    return;
  }
  s.drainer = std::thread([&s] {
    std::unique_lock<std::mutex> l(s.drain_mu);
    const bool drained = s.drain_cv.wait_for(l, std::chrono::duration<double>(s.opt.shutdown_grace_s),
                                             [&s] { return s.active.load() == 0; });
    if (!drained) std::fprintf(stderr, "[tern] router: %lld request(s) still in flight after the grace period\n",
                               static_cast<long long>(s.active.load()));
    l.unlock();
    net::post(s.io, [&s] { s.stop_io(); });
    s.front->stop();
  });
}

void Router::reload() {
  Impl& s = *impl_;
  if (s.opt.replicas_file.empty()) {
    std::fprintf(stderr, "[tern] router: reload asked, but the replicas come from --replica (no file to re-read)\n");
    return;
  }
  auto list = load_replica_file(s.opt.replicas_file);
  net::post(s.io, [&s, list = std::move(list)] {
    if (!list.is_ok()) {
      s.reload_errors_total++;
      std::fprintf(stderr, "[tern] router: reload failed, keeping %zu replica(s): %s\n", s.set.all().size(),
                   list.status().message().c_str());
      return;
    }
    s.reloads_total++;
    std::fprintf(stderr, "[tern] router: reloaded %s: %zu replica(s)\n", s.opt.replicas_file.c_str(), list->size());
    s.apply_replicas(list.value());
  });
}

}  // namespace tern::router
