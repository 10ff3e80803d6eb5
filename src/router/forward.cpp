// One request through the router (router_impl.h): the replica choice, the relay of its answer, retries
// and cut streams. Runs on the router's I/O thread; the client's exchange is thread-safe.
//
// Nothing reaches the client before the replica's first body bytes: a `tern serve` stream sends its head
// at admission and its first event after the first token, so a replica that dies before that (or
// refuses with 503 / 429) costs only a retry elsewhere. Whole (Content-Length) answers are relayed once
// complete, so a non-streaming request is never half-answered. Once a stream has started, a failure
// ends it with an SSE error event and `data: [DONE]`; events are relayed whole (up to each blank line),
// so that error event never lands inside a half-sent one. On /v1/messages (Anthropic's API) the errors
// are in Anthropic's shape, and a cut stream ends with an `event: error` (its streams have no [DONE]).
#include <nlohmann/json.hpp>

#include <cstdio>

#include "api/anthropic_response.h"
#include "router/router_impl.h"

namespace tern::router {

namespace {

using json = nlohmann::json;

constexpr size_t kMaxPartialEvent = 1u << 20;  // an "event" longer than this is relayed as it is

class Forward final : public UpstreamSink, public ReplicaUser, public std::enable_shared_from_this<Forward> {
 public:
  Forward(Router::Impl& core, XPtr x, std::string method, std::string target, api::HttpHeaders headers,
          std::string body, std::optional<AffinityKeys> key)
      : core_(core), x_(std::move(x)), method_(std::move(method)), target_(std::move(target)),
        headers_(std::move(headers)), body_(std::move(body)), key_(std::move(key)) {}

  void attempt() {
    Choice how;
    rep_ = core_.pick(key_, tried_, &how);
    if (!rep_) return give_up();
    tried_.push_back(rep_->addr.url);
    rep_->in_flight++;
    rep_->requests++;
    rep_->users.insert(this);
    if (how.affinity) (how.home ? rep_->affinity_hits : rep_->affinity_spills)++;
    status_ = 0;
    resp_headers_.clear();
    chunked_ = false;
    call_ = start_call(core_.ctx(), rep_->addr, build_request(method_, target_, rep_->addr, headers_, body_),
                       method_ == "HEAD", shared_from_this(), core_.forward_timeouts());
  }

  void cancel() {
    if (finished_) return;
    client_gone_ = true;
    if (call_) cancel_call(*call_);
  }

  // The replica was taken out while this request was on it: end the call as a failure of the replica.
  void replica_failed(const std::string& why) override {
    if (!call_ || client_gone_) return;
    abandoned_ = why;
    cancel_call(*call_);
  }

  void on_bytes() override { rep_->last_heard = std::chrono::steady_clock::now(); }

  void on_head(int status, api::HttpHeaders headers, bool chunked) override {
    status_ = status;
    resp_headers_ = std::move(headers);
    chunked_ = chunked;
  }

  void on_data(std::string_view data) override {
    if (client_gone_) return;
    if (!committed_) commit();
    if (!sse_) return x_->write(std::string(data));
    pending_.append(data);
    const size_t end = pending_.rfind("\n\n");
    if (end == std::string::npos) {
      if (pending_.size() > kMaxPartialEvent) x_->write(std::exchange(pending_, std::string()));  // not SSE after all
      return;
    }
    x_->write(pending_.substr(0, end + 2));
    pending_.erase(0, end + 2);
  }

  void on_end(UpstreamEnd end) override {
    call_.reset();
    Replica& r = *rep_;
    r.in_flight--;
    r.users.erase(this);
    if (end.cancelled && !abandoned_.empty() && !client_gone_) {
      end.cancelled = false;
      end.error = std::exchange(abandoned_, "");
    }
    if (client_gone_ || end.cancelled) return finish();
    if (end.ok) {
      if (committed_) {
        if (!pending_.empty()) x_->write(std::move(pending_));
        x_->end();
        return finish();
      }
      // A replica that is full or going away: another one may take it.
      if ((status_ == 503 || status_ == 429) && core_.any_eligible(tried_)) {
        r.retries++;
        return attempt();
      }
      api::HttpResponse resp;
      resp.status = status_;
      resp.content_type = take_content_type();
      resp.headers = std::move(resp_headers_);
      resp.headers.emplace_back("X-Tern-Replica", r.addr.url);
      resp.body = std::move(end.body);
      x_->respond(std::move(resp));
      return finish();
    }
    // The replica failed: out of the rotation until a health check passes.
    r.failures++;
    last_error_ = end.error;
    core_.mark_down(r, end.error);
    if (!committed_) {
      r.retries++;
      return attempt();
    }
    r.cut_streams++;
    core_.cut_streams_total++;
    if (sse_) {
      const std::string why = "the replica serving this stream failed (" + end.error + ")";
      if (anthropic_path(target_)) {
        // Anthropic's streams end with an `error` event (and have no [DONE]).
        api::ApiError e;
        e.http_status = 500;
        e.message = why;
        x_->write("event: error\ndata: " + api::anthropic_error_body(e) + "\n\n");
      } else {
        const json err = {{"error", {{"message", why}, {"type", "server_error"}, {"param", nullptr}, {"code", "replica_failed"}}}};
        x_->write("data: " + err.dump() + "\n\ndata: [DONE]\n\n");
      }
    }
    x_->end();
    finish();
  }

 private:
  std::string take_content_type() {
    std::string type;
    for (auto it = resp_headers_.begin(); it != resp_headers_.end(); ++it) {
      if (it->first == "content-type") {
        type = it->second;
        resp_headers_.erase(it);
        break;
      }
    }
    return type;
  }

  void commit() {
    committed_ = true;
    std::string type = take_content_type();
    sse_ = type.rfind("text/event-stream", 0) == 0;
    resp_headers_.emplace_back("X-Tern-Replica", rep_->addr.url);
    x_->start_stream(status_, std::move(type), std::move(resp_headers_));
  }

  void give_up() {
    core_.unrouted_total++;
    const std::string why = last_error_.empty() ? "no replica is healthy" : "no replica could answer (last: " + last_error_ + ")";
    x_->respond(error_for(target_, 503, why, "server_error", "no_replica"));
    finish();
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    core_.forward_done();
  }

  Router::Impl& core_;
  XPtr x_;
  std::string method_, target_;
  api::HttpHeaders headers_;
  std::string body_;
  std::optional<AffinityKeys> key_;

  std::vector<std::string> tried_;
  std::shared_ptr<Replica> rep_;
  std::shared_ptr<UpstreamCall> call_;
  int status_ = 0;
  api::HttpHeaders resp_headers_;
  bool chunked_ = false, committed_ = false, sse_ = false, client_gone_ = false, finished_ = false;
  std::string pending_;  // SSE bytes after the last complete event
  std::string last_error_;
  std::string abandoned_;  // why replica_failed() ended the call
};

}  // namespace

void start_forward(Router::Impl& core, const XPtr& x, std::string method, std::string target, api::HttpHeaders headers,
                   std::string body, std::optional<AffinityKeys> key) {
  auto f = std::make_shared<Forward>(core, x, std::move(method), std::move(target), std::move(headers), std::move(body),
                                     std::move(key));
  // The client going away cancels the replica's work too (its connection closes, `tern serve` cancels).
  x->on_abort([weak = std::weak_ptr<Forward>(f), &core] {
    net::post(core.io, [weak] {
      if (auto p = weak.lock()) p->cancel();
    });
  });
  f->attempt();
}

}  // namespace tern::router
