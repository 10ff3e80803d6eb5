// Health checks (router_impl.h): every interval each replica gets GET /health and, when that answers 200,
// GET /metrics for its queue (running + waiting). A new check goes out every interval even while earlier
// ones are pending, so a replica that hangs is noticed one timeout after the first check it leaves
// unanswered, not after a chain of timeouts. A failed check is judged by liveness.h: a refusal is
// confirmed at once, then the replica is out; a timeout takes it out only when nothing else came from
// it since the check went out (busy is not hung); a non-200 answer (a draining replica's 503) at once.
// One check that passes puts it back. A request that fails on a replica takes it out at once (forward.cpp).
#include <cstdio>
#include <sstream>

#include "router/liveness.h"
#include "router/router_impl.h"

namespace tern::router {

namespace {

using Clock = std::chrono::steady_clock;

// Checks pending on one replica at once: a long hang does not pile up connections to it.
constexpr int kMaxChecks = 4;

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

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

class Check final : public UpstreamSink, public std::enable_shared_from_this<Check> {
 public:
  Check(Router::Impl& core, std::shared_ptr<Replica> r, bool confirming)
      : core_(core), r_(std::move(r)), confirming_(confirming) {}

  void send(const char* path) {
    path_ = path;
    status_ = 0;
    if (path_ == "/health") sent_ = Clock::now();
    api::HttpHeaders h;
    if (!core_.opt.api_key.empty()) h.emplace_back("authorization", "Bearer " + core_.opt.api_key);
    const double t = core_.opt.health_timeout_s;
    core_.health_calls.push_back(start_call(core_.ctx(), r_->addr, build_request("GET", path, r_->addr, h, ""), false,
                                            shared_from_this(), CallTimeouts{std::min(core_.opt.connect_timeout_s, t), t}));
  }

  void on_bytes() override { r_->last_heard = Clock::now(); }
  void on_head(int status, api::HttpHeaders, bool) override { status_ = status; }
  void on_data(std::string_view) override {}

  void on_end(UpstreamEnd end) override {
    Replica& r = *r_;
    if (core_.stopped) {
      r.checks--;
      return;
    }
    if (path_ == "/health") {
      if (end.ok && status_ == 200) {
        core_.mark_up(r);
        return send("/metrics");  // the load, on the connection just used
      }
      r.checks--;
      if (end.ok) return core_.mark_down(r, "/health answered " + std::to_string(status_));  // draining: at once
      const auto now = Clock::now();
      CheckFailure f;
      f.timed_out = end.timed_out;
      f.waited_s = seconds(now - sent_);
      f.silent_s = seconds(now - r.last_heard);
      f.timeout_s = core_.opt.health_timeout_s;
      f.healthy = r.healthy;
      f.confirming = confirming_;
      switch (judge_failed_check(f)) {
        case CheckVerdict::kDown: {
          std::string why = end.error;
          if (end.timed_out) {
            char b[96];
            std::snprintf(b, sizeof b, " (/health), nothing else from it for %.2f s", f.silent_s);
            why += b;
          }
          return core_.mark_down(r, why);
        }
        case CheckVerdict::kConfirm:
          r.last_error = end.error;
          return core_.check(r_, true);  // at once, not an interval later
        case CheckVerdict::kAlive:
          r.last_error = end.error;  // slow to answer /health, but answering: busy, not hung
          return;
      }
      return;
    }
    // /metrics: the load only; a replica that keeps its metrics behind another key is still routed to.
    if (end.ok && status_ == 200) {
      const double running = metric(end.body, "tern_requests_running");
      const double waiting = metric(end.body, "tern_requests_waiting");
      if (running >= 0 && waiting >= 0) r.queued = int64_t(running + waiting);
    }
    r.checks--;
  }

 private:
  Router::Impl& core_;
  std::shared_ptr<Replica> r_;
  bool confirming_;
  std::string path_;
  int status_ = 0;
  Clock::time_point sent_{};
};

}  // namespace

void Router::Impl::check(const std::shared_ptr<Replica>& r, bool confirming) {
  if (stopped) return;
  r->checks++;
  std::make_shared<Check>(*this, r, confirming)->send("/health");
}

void Router::Impl::health_round() {
  if (stopped) return;
  std::erase_if(health_calls, [](const std::weak_ptr<UpstreamCall>& c) { return c.expired(); });
  for (const auto& r : set.all()) {
    if (r->checks < kMaxChecks) check(r);
  }
  health_timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(opt.health_interval_s)));
  health_timer.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) health_round();
  });
}

// The router stops (after its drain): the I/O thread's run() returns once the front's connections are
// closed, so nothing of the router may keep it busy.
void Router::Impl::stop_io() {
  stopped = true;
  health_timer.cancel();
  for (const auto& w : health_calls) {
    if (auto c = w.lock()) cancel_call(*c);
  }
  health_calls.clear();
  for (const auto& r : set.all()) pool.drop(r->addr.url);
}

}  // namespace tern::router
