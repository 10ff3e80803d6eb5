// FakeEngine: see fake_engine.h. One thread; each step (1 / tokens_per_s) gives each running request one
// token from a fixed readable id cycle, offset by a hash of the prompt (and the seed when sampling), so
// the same request always yields the same tokens.
#include "api/fake_engine.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cmath>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "model/tokenizer/tokenizer.h"
#include "runtime/generator.h"

namespace tern {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

void observe(EngineMetrics::Histogram& h, double s) {
  for (size_t i = 0; i < h.bounds_s.size(); ++i) {
    if (s <= h.bounds_s[i]) h.counts[i]++;
  }
  h.sum_s += s;
  h.count++;
}

EngineMetrics::Histogram make_histogram() {
  EngineMetrics::Histogram h;
  h.bounds_s = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
  h.counts.assign(h.bounds_s.size(), 0);
  return h;
}

struct FakeRequest {
  RequestId id = 0;
  EngineRequest req;
  OutputCallback cb;
  uint64_t offset = 0;
  int64_t generated = 0;
  std::optional<StreamingDecoder> decoder;
  StopMatcher stop{{}};
  Clock::time_point added, last_token;
};

class FakeEngine final : public Engine {
 public:
  FakeEngine(const Tokenizer* tok, const FakeEngineOptions& o) : tok_(tok), o_(o) {
    ttft_ = make_histogram();
    itl_ = make_histogram();
    e2e_ = make_histogram();
    if (tok_) {
      for (int32_t id : tok_->encode("The quick brown fox jumps over the lazy dog, and then it reads the docs "
                                     "about paged attention, continuous batching and prefix caching.",
                                     false)) {
        if (!tok_->is_special(id)) cycle_.push_back(id);
      }
    }
    if (cycle_.empty()) {
      for (int32_t i = 0; i < 64; ++i) cycle_.push_back(100 + i);
    }
    thread_ = std::thread([this] { loop(); });
  }
  ~FakeEngine() override { shutdown(true); }

  tern::Result<RequestId> add(EngineRequest request, OutputCallback on_output) override {
    if (request.prompt.empty()) return Status::error("the prompt is empty");
    const int64_t total = int64_t(request.prompt.size()) + request.max_new_tokens;
    if (int64_t(request.prompt.size()) >= o_.max_context || total > o_.max_context) {
      return Status::error("prompt (" + std::to_string(request.prompt.size()) + " tokens) + max_new_tokens (" +
                           std::to_string(request.max_new_tokens) + ") exceeds the context of " +
                           std::to_string(o_.max_context) + " tokens");
    }
    if (request.max_new_tokens < 1) return Status::error("max_new_tokens must be >= 1");
    TERN_RETURN_IF_ERROR(request.sampling.validate());
    auto r = std::make_unique<FakeRequest>();
    uint64_t h = 1469598103934665603ull;
    for (int32_t id : request.prompt) h = (h ^ uint64_t(uint32_t(id))) * 1099511628211ull;
    if (request.sampling.temperature > 0) {
      h ^= request.sampling.seed ? *request.sampling.seed * 0x9E3779B97F4A7C15ull : next_nonce_++ * 7919;
    }
    r->offset = h;
    if (tok_) r->decoder.emplace(*tok_, true);
    r->stop = StopMatcher(request.stop);
    r->req = std::move(request);
    r->cb = std::move(on_output);
    r->added = Clock::now();
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return Status::error("the engine is shutting down");
    const RequestId id = next_id_++;
    r->id = id;
    waiting_.emplace(id, std::move(r));
    prompt_total_ += int64_t(waiting_.at(id)->req.prompt.size());
    cv_.notify_all();
    return id;
  }

  void cancel(RequestId id) override {
    std::lock_guard<std::mutex> lock(mu_);
    cancels_.push_back(id);
    cv_.notify_all();
  }

  EngineMetrics metrics() const override {
    std::lock_guard<std::mutex> lock(mu_);
    EngineMetrics m;
    m.running = int64_t(running_.size());
    m.waiting = int64_t(waiting_.size());
    m.kv_blocks_total = o_.kv_blocks_total;
    for (const auto& [id, r] : running_) m.kv_blocks_used += blocks_of(*r);
    m.kv_blocks_free = m.kv_blocks_total - m.kv_blocks_used;
    m.prompt_tokens_total = prompt_total_;
    m.generated_tokens_total = generated_total_;
    m.time_to_first_token = ttft_;
    m.inter_token_latency = itl_;
    m.e2e_latency = e2e_;
    return m;
  }

  void shutdown(bool cancel_in_flight) override {
    {
      std::unique_lock<std::mutex> lock(mu_);
      stopping_ = true;
      if (cancel_in_flight) {
        for (auto& [id, r] : running_) cancels_.push_back(id);
        for (auto& [id, r] : waiting_) cancels_.push_back(id);
      }
      cv_.notify_all();
      drained_.wait(lock, [&] { return running_.empty() && waiting_.empty(); });
      quit_ = true;
      cv_.notify_all();
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  using Event = std::pair<FakeRequest*, EngineOutput>;

  int64_t blocks_of(const FakeRequest& r) const {
    const int64_t tokens = int64_t(r.req.prompt.size()) + r.generated;
    return (tokens + o_.block_size - 1) / o_.block_size;
  }

  EngineOutput usage_of(const FakeRequest& r) const {
    EngineOutput out;
    out.prompt_tokens = int64_t(r.req.prompt.size());
    out.completion_tokens = r.generated;
    return out;
  }

  // One token for r (under mu_); returns the event to deliver and whether r finished.
  bool step_one(FakeRequest& r, Clock::time_point now, EngineOutput& out) {
    const int32_t id = cycle_[(r.offset + uint64_t(r.generated)) % cycle_.size()];
    r.generated++;
    generated_total_++;
    if (r.generated == 1) {
      observe(ttft_, seconds_between(r.added, now));
    } else {
      observe(itl_, seconds_between(r.last_token, now));
    }
    r.last_token = now;
    out = usage_of(r);
    out.tokens = {id};
    if (r.req.top_logprobs >= 0) {
      const float lp = -0.01f - 0.05f * float(id % 10);
      out.logprobs = {lp};
      std::vector<TokenLogprob> top;
      for (int k = 0; k < r.req.top_logprobs; ++k) {
        top.push_back({k == 0 ? id : cycle_[(r.offset + uint64_t(r.generated) + uint64_t(k)) % cycle_.size()],
                       k == 0 ? lp : lp - 0.5f * float(k)});
      }
      out.top = {top};
    }
    std::string piece = r.decoder ? r.decoder->push(id) : " t" + std::to_string(id);
    const bool length = r.generated >= r.req.max_new_tokens;
    if (length && r.decoder) piece += r.decoder->flush();
    out.text = r.stop.push(piece);
    if (r.stop.stopped()) {
      out.finish = EngineFinish::kStop;
    } else if (length) {
      out.text += r.stop.flush();
      out.finish = EngineFinish::kLength;
    }
    if (out.finish != EngineFinish::kNone) observe(e2e_, seconds_between(r.added, now));
    return out.finish != EngineFinish::kNone;
  }

  void loop() {
    const auto period = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(1.0 / std::max(1e-3, o_.tokens_per_s)));
    auto next_step = Clock::now() + period;
    std::vector<Event> events;
    std::vector<std::unique_ptr<FakeRequest>> finished;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_until(lock, next_step, [&] { return quit_ || !cancels_.empty() || Clock::now() >= next_step; });
        if (quit_) return;
        for (RequestId id : cancels_) {
          for (auto* pool : {&running_, &waiting_}) {
            auto it = pool->find(id);
            if (it == pool->end()) continue;
            EngineOutput out = usage_of(*it->second);
            out.finish = EngineFinish::kCancelled;
            events.emplace_back(it->second.get(), std::move(out));
            finished.push_back(std::move(it->second));
            pool->erase(it);
          }
        }
        cancels_.clear();
        while (!waiting_.empty() && int64_t(running_.size()) < o_.max_running) {
          running_.insert(waiting_.extract(waiting_.begin()));
        }
        const auto now = Clock::now();
        if (now >= next_step) {
          next_step = std::max(next_step + period, now);
          for (auto it = running_.begin(); it != running_.end();) {
            EngineOutput out;
            const bool done = step_one(*it->second, now, out);
            events.emplace_back(it->second.get(), std::move(out));
            if (done) {
              finished.push_back(std::move(it->second));
              it = running_.erase(it);
            } else {
              ++it;
            }
          }
        }
      }
      // Callbacks run outside the lock (they may call cancel()).
      for (auto& [r, out] : events) r->cb(r->id, out);
      events.clear();
      finished.clear();
      std::lock_guard<std::mutex> lock(mu_);
      if (running_.empty() && waiting_.empty()) drained_.notify_all();
    }
  }

  const Tokenizer* tok_;
  FakeEngineOptions o_;
  std::vector<int32_t> cycle_;
  mutable std::mutex mu_;
  std::condition_variable cv_, drained_;
  std::map<RequestId, std::unique_ptr<FakeRequest>> running_, waiting_;
  std::vector<RequestId> cancels_;
  RequestId next_id_ = 1;
  std::atomic<uint64_t> next_nonce_{1};
  bool stopping_ = false, quit_ = false;
  int64_t prompt_total_ = 0, generated_total_ = 0;
  EngineMetrics::Histogram ttft_, itl_, e2e_;
  std::thread thread_;
};

}  // namespace

std::unique_ptr<Engine> make_fake_engine(const Tokenizer* tokenizer, const FakeEngineOptions& options) {
  return std::make_unique<FakeEngine>(tokenizer, options);
}

}  // namespace tern
