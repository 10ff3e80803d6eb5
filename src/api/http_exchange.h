// The HttpExchange a connection hands to its handler (http_session_write.cpp, http_front.cpp): calls from any
// thread become posts to the I/O thread, tagged with the request's sequence number so a late call never
// touches the connection's next request.
#pragma once

#include <mutex>

#include "api/http_front_impl.h"

namespace tern::api {

class Exchange final : public HttpExchange {
 public:
  Exchange(std::weak_ptr<Session> session, uint64_t seq, std::shared_ptr<FrontGate> gate)
      : session_(std::move(session)), seq_(seq), gate_(std::move(gate)) {}

  void respond(HttpResponse response) override;
  void start_stream(int status, std::string content_type, HttpHeaders headers) override;
  void write(std::string chunk) override;
  void end() override;
  size_t pending_bytes() const override;

  void on_abort(std::function<void()> fn) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (finished_) return;
    if (!aborted_) {
      abort_fn_ = std::move(fn);
      return;
    }
    lock.unlock();
    fn();
  }
  void post(std::function<void()> fn) override { gate_->to_work(std::move(fn)); }

  // The connection's side (I/O thread).
  void abort() {
    std::function<void()> fn;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (aborted_ || finished_) return;
      aborted_ = true;
      fn = std::move(abort_fn_);
    }
    if (fn) fn();
  }
  void finished() {
    std::lock_guard<std::mutex> lock(mu_);
    finished_ = true;
    abort_fn_ = nullptr;
  }

 private:
  std::weak_ptr<Session> session_;
  uint64_t seq_;
  std::shared_ptr<FrontGate> gate_;
  std::mutex mu_;
  bool aborted_ = false, finished_ = false;
  std::function<void()> abort_fn_;
};

// "/a%20b?x=1" -> path "/a b", query "x=1"; an absolute-form target ("http://host/p") keeps its path.
void split_target(const std::string& target, std::string& path, std::string& query);
// Runs the front's handler on a worker; an exception becomes a 500 (logged, its text not sent).
void run_handler(HttpFront::Impl& front, HttpRequest& req, const std::shared_ptr<Exchange>& x);

}  // namespace tern::api
