// The threaded engine: one loop thread owns an EngineCore; add/cancel/metrics hand work over through
// a mutex-protected inbox and a condition variable (an idle engine sleeps, it never spins).
#include "engine/engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "engine/drafter.h"
#include "engine/engine_core.h"
#include "engine/kv_pool_size.h"

namespace tern {

const char* engine_finish_name(EngineFinish f) {
  switch (f) {
    case EngineFinish::kNone: return "";
    case EngineFinish::kLength: return "length";
    case EngineFinish::kEos: return "eos";
    case EngineFinish::kStop: return "stop";
    case EngineFinish::kCancelled: return "cancelled";
    case EngineFinish::kError: return "error";
  }
  return "?";
}

namespace {

class EngineImpl final : public Engine {
 public:
  EngineImpl(std::unique_ptr<ModelRunner> runner, std::unique_ptr<Drafter> drafter, std::unique_ptr<EngineCore> core)
      : runner_(std::move(runner)), drafter_(std::move(drafter)), core_(std::move(core)) {
    published_ = core_->metrics();
    published_at_ = EngineClock::now();
    thread_ = std::thread([this] { loop(); });
  }
  ~EngineImpl() override { shutdown(true); }

  Result<RequestId> add(EngineRequest request, OutputCallback on_output) override {
    TERN_RETURN_IF_ERROR(core_->validate(request));  // reads only immutable configuration
    std::lock_guard lk(mu_);
    if (stopping_) return Status::error("the engine is shutting down");
    const RequestId id = next_id_++;
    inbox_.push_back({id, std::move(request), std::move(on_output)});
    cv_.notify_one();
    return id;
  }

  void cancel(RequestId id) override {
    std::lock_guard lk(mu_);
    cancels_.push_back(id);
    cv_.notify_one();
  }

  EngineMetrics metrics() const override {
    EngineMetrics m;
    EngineClock::time_point at;
    {
      std::lock_guard lk(metrics_mu_);
      m = published_;
      at = published_at_;
    }
    if (EngineClock::now() - at > std::chrono::seconds(5)) {  // idle longer than the rate window
      m.prompt_tokens_per_s = m.generated_tokens_per_s = 0;
    }
    std::lock_guard lk(mu_);
    m.waiting += int64_t(inbox_.size());
    return m;
  }

  void shutdown(bool cancel_in_flight) override {
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
      cancel_all_ = cancel_all_ || cancel_in_flight;
      cv_.notify_one();
    }
    std::lock_guard join_lock(join_mu_);
    if (thread_.joinable()) thread_.join();
  }

 private:
  struct Pending {
    RequestId id;
    EngineRequest request;
    OutputCallback callback;
  };

  void publish() {
    EngineMetrics m = core_->metrics();
    std::optional<SloQueue> q = core_->slo_queue();
    std::lock_guard lk(metrics_mu_);
    published_ = std::move(m);
    published_at_ = EngineClock::now();
    slo_queue_ = std::move(q);
  }

  std::optional<double> slo_retry_after(const EngineRequest& r) const override {
    if (r.slo_ttft_s <= 0) return std::nullopt;
    int64_t inbox_tokens = 0;  // added, not yet in the core's queue: ahead of this one
    {
      std::lock_guard lk(mu_);
      for (const Pending& p : inbox_) inbox_tokens += int64_t(p.request.prompt.size());
    }
    std::lock_guard lk(metrics_mu_);
    if (!slo_queue_) return std::nullopt;
    const double now = clock_seconds(EngineClock::now());
    const double ttft = predict_ttft_s(*slo_queue_, int64_t(r.prompt.size()), now + r.slo_ttft_s, now, inbox_tokens);
    if (ttft < 0 || ttft <= r.slo_ttft_s) return std::nullopt;
    return std::max(1.0, std::ceil(ttft - r.slo_ttft_s));
  }

  void loop() {
    for (;;) {
      std::deque<Pending> inbox;
      std::vector<RequestId> cancels;
      bool stop = false, cancel_all = false;
      {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return stopping_ || !inbox_.empty() || !cancels_.empty() || core_->has_work(); });
        inbox.swap(inbox_);
        cancels.swap(cancels_);
        stop = stopping_;
        cancel_all = cancel_all_;
      }
      for (Pending& p : inbox) {
        const Status st = core_->add(p.id, std::move(p.request), p.callback);
        if (!st.is_ok() && p.callback) {
          EngineOutput out;
          out.finish = EngineFinish::kError;
          out.error = st.message();
          p.callback(p.id, out);
        }
      }
      for (RequestId id : cancels) core_->cancel(id);
      if (cancel_all) core_->cancel_all();
      if (stop && !core_->has_work()) {
        publish();
        return;
      }
      core_->step();
      publish();
    }
  }

  std::unique_ptr<ModelRunner> runner_;  // before core_: the core refers to it
  std::unique_ptr<Drafter> drafter_;     // likewise
  std::unique_ptr<EngineCore> core_;

  mutable std::mutex mu_;  // guards the inbox, cancels and the stop flags
  std::condition_variable cv_;
  std::deque<Pending> inbox_;
  std::vector<RequestId> cancels_;
  bool stopping_ = false, cancel_all_ = false;
  RequestId next_id_ = 1;

  mutable std::mutex metrics_mu_;
  EngineMetrics published_;
  std::optional<SloQueue> slo_queue_;  // under the slo policy: what admission prices
  EngineClock::time_point published_at_;

  std::mutex join_mu_;
  std::thread thread_;
};

}  // namespace

Result<std::unique_ptr<Engine>> Engine::create(std::unique_ptr<ModelRunner> runner, const Tokenizer* tokenizer,
                                               const EngineOptions& options, std::unique_ptr<Drafter> drafter) {
  if (!runner) return Status::error("Engine::create: no model runner");
  if (options.block_size <= 0 || options.block_size > 4096)
    return Status::error(fmt::format("KV block size {} is invalid: must be in [1, 4096]", options.block_size));
  TERN_ASSIGN_OR_RETURN(const KvPoolPlan plan, plan_kv_pool(*runner, options, available_memory_bytes()));
  TERN_RETURN_IF_ERROR(runner->allocate_kv({plan.num_blocks, options.block_size, options.kv_dtype}));
  EngineCoreConfig cfg;
  cfg.num_blocks = plan.num_blocks;
  cfg.block_size = options.block_size;
  cfg.prefix_caching = options.prefix_caching;
  cfg.scheduler.max_step_tokens = options.max_step_tokens;
  cfg.scheduler.max_running = options.max_running;
  cfg.scheduler.watermark_blocks = plan.num_blocks / 100;  // 1%, as vLLM: admissions keep room for decodes
  cfg.speculative = options.speculative;
  cfg.policy = options.policy;
  TERN_ASSIGN_OR_RETURN(auto core, EngineCore::create(*runner, tokenizer, cfg, drafter.get()));
  return std::unique_ptr<Engine>(new EngineImpl(std::move(runner), std::move(drafter), std::move(core)));
}

}  // namespace tern
