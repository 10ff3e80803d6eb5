// Health checks (router_impl.h): every interval each replica gets GET /health and, when that answers 200,
// GET /metrics for its queue (running + waiting). Two failed checks in a row take a replica out (one
// slow answer on a loaded machine is not a death; the second check follows the first failure at once); a
// request that fails on it takes it out at once.
// One check that passes puts it back.
#include <sstream>

#include "router/router_impl.h"

namespace tern::router {

namespace {

constexpr int kFailuresToDown = 2;

double metric(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > name.size() && line.rfind(name, 0) == 0 && line[name.size()] == ' ') {
      try {
        return std::stod(line.substr(name.size() + 1));
      } catch (...) {
        return -1;
      }
    }
  }
  return -1;
}

class Check final : public UpstreamSink, public std::enable_shared_from_this<Check> {
 public:
  Check(Router::Impl& core, std::shared_ptr<Replica> r) : core_(core), r_(std::move(r)) {}

  void send(const char* path) {
    path_ = path;
    status_ = 0;
    api::HttpHeaders h;
    if (!core_.opt.api_key.empty()) h.emplace_back("authorization", "Bearer " + core_.opt.api_key);
    const double t = core_.opt.health_timeout_s;
    start_call(core_.ctx(), r_->addr, build_request("GET", path, r_->addr, h, ""), false, shared_from_this(),
               CallTimeouts{std::min(core_.opt.connect_timeout_s, t), t});
  }

  void on_head(int status, api::HttpHeaders, bool) override { status_ = status; }
  void on_data(std::string_view) override {}

  void on_end(UpstreamEnd end) override {
    Replica& r = *r_;
    if (path_ == "/health") {
      if (end.ok && status_ == 200) {
        core_.mark_up(r);
        return send("/metrics");  // the load, on the connection just used
      }
      const std::string why = end.ok ? "/health answered " + std::to_string(status_) : end.error;
      r.polling = false;
      if (!r.healthy || ++r.health_failures >= kFailuresToDown || end.ok) {
        core_.mark_down(r, why);  // a refusal (503: draining) counts at once
      } else {
        r.last_error = why;
        core_.check(r_);  // the confirming check at once, not an interval later: a hung replica goes sooner
      }
      return;
    }
    // /metrics: the load only; a replica that keeps its metrics behind another key is still routed to.
    if (end.ok && status_ == 200) {
      const double running = metric(end.body, "tern_requests_running");
      const double waiting = metric(end.body, "tern_requests_waiting");
      if (running >= 0 && waiting >= 0) r.queued = int64_t(running + waiting);
    }
    r.polling = false;
  }

 private:
  Router::Impl& core_;
  std::shared_ptr<Replica> r_;
  std::string path_;
  int status_ = 0;
};

}  // namespace

void Router::Impl::check(const std::shared_ptr<Replica>& r) {
  r->polling = true;
  std::make_shared<Check>(*this, r)->send("/health");
}

void Router::Impl::health_round() {
  for (const auto& r : set.all()) {
    if (!r->polling) check(r);
  }
  health_timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(opt.health_interval_s)));
  health_timer.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) health_round();
  });
}

}  // namespace tern::router
