// One HTTP generation request = one or more engine requests (prompts x n choices). The engine thread
// pushes each choice's events here and rings the notifier; whoever answers the request pops them.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace tern::api {

class RequestGroup {
 public:
  struct Event {
    int index = 0;
    EngineOutput out;
  };

  // in_flight: the server's count of engine requests admitted and not finished (shared with callbacks,
  // which may outlive the server object while the engine delivers a last kCancelled).
  RequestGroup(int n_choices, std::shared_ptr<std::atomic<int64_t>> in_flight)
      : ids_(size_t(n_choices), 0), added_(size_t(n_choices), false), done_(size_t(n_choices), false),
        in_flight_(std::move(in_flight)) {}

  int size() const { return int(ids_.size()); }

  // The engine callback for choice `index`. Events after the choice finished are dropped.
  OutputCallback callback(int index, std::shared_ptr<RequestGroup> self) {
    return [self = std::move(self), index](RequestId, const EngineOutput& out) { self->push(index, out); };
  }
  void set_id(int index, RequestId id) {
    std::lock_guard<std::mutex> lock(mu_);
    ids_[size_t(index)] = id;
    added_[size_t(index)] = true;
  }

  // Called after each pushed event (on the engine thread: it must be quick). Once set_notifier(nullptr)
  // returns, it is never called again.
  void set_notifier(std::function<void()> fn) {
    std::lock_guard<std::mutex> lock(mu_);
    notify_ = std::move(fn);
  }

  bool try_pop(Event& ev) {
    std::lock_guard<std::mutex> lock(mu_);
    if (events_.empty()) return false;
    ev = std::move(events_.front());
    events_.pop_front();
    return true;
  }
  bool has_events() const {
    std::lock_guard<std::mutex> lock(mu_);
    return !events_.empty();
  }

  // Every added choice has delivered its last event (events may still be queued for try_pop()).
  bool all_finished() const {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < ids_.size(); ++i) {
      if (added_[i] && !done_[i]) return false;
    }
    return true;
  }

  // Cancels every choice not finished yet (client gone, shutdown).
  void cancel_all(Engine& engine) {
    std::vector<RequestId> ids;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 0; i < ids_.size(); ++i) {
        if (added_[i] && !done_[i]) ids.push_back(ids_[i]);
      }
    }
    for (RequestId id : ids) engine.cancel(id);
  }

  // Ends every added choice not finished yet with an error now, as if the engine had delivered it; the
  // engine's own later events for them are dropped. For an engine that can no longer answer (a rank of
  // a parallel job died while a step waits on it), so the request is answered without it.
  void fail_unfinished(const std::string& message) {
    std::vector<int> open;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 0; i < ids_.size(); ++i) {
        if (added_[i] && !done_[i]) open.push_back(int(i));
      }
    }
    EngineOutput end;
    end.finish = EngineFinish::kError;
    end.error = message;
    for (int i : open) push(i, end);
  }

  std::atomic<bool> cancelled_by_shutdown{false};

 private:
  void push(int index, const EngineOutput& out) {
    std::lock_guard<std::mutex> lock(mu_);
    if (done_[size_t(index)]) return;
    if (out.finish != EngineFinish::kNone) {
      done_[size_t(index)] = true;
      in_flight_->fetch_sub(1);
    }
    events_.push_back({index, out});
    if (notify_) notify_();  // under the lock, so that clearing it is final
  }

  mutable std::mutex mu_;
  std::deque<Event> events_;
  std::vector<RequestId> ids_;
  std::vector<bool> added_, done_;
  std::shared_ptr<std::atomic<int64_t>> in_flight_;
  std::function<void()> notify_;
};

}  // namespace tern::api
