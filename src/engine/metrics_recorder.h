// The engine's counters and latency histograms, fed by the engine thread after every step.
// Rates are over a sliding window of recent steps, so an idle engine reports 0 after the window.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>

#include "engine/engine.h"

namespace tern {

class MetricsRecorder {
 public:
  using Clock = std::chrono::steady_clock;
  explicit MetricsRecorder(double window_s = 5.0);

  void observe_ttft(double s) { observe(&m_.time_to_first_token, s); }
  void observe_itl(double s) { observe(&m_.inter_token_latency, s); }
  void observe_e2e(double s) { observe(&m_.e2e_latency, s); }
  // A new request's prompt (first admission only): feeds the prefix-cache hit rate.
  void add_prompt(int64_t prompt_tokens, int64_t cached_tokens);
  // Work one step did: prompt tokens run through the model (recomputation included) and tokens generated.
  void add_step(Clock::time_point now, int64_t prompt_tokens_computed, int64_t generated);
  void set_preempted_total(int64_t n) { m_.preempted_total = n; }

  // Counters and histograms; running/waiting/KV gauges are filled in by the caller.
  EngineMetrics snapshot(Clock::time_point now) const;

  static EngineMetrics::Histogram make_histogram(std::initializer_list<double> bounds);
  static void observe(EngineMetrics::Histogram* h, double s);

 private:
  struct StepSample {
    Clock::time_point t;
    int64_t prompt, generated;
  };
  double window_s_;
  EngineMetrics m_;
  int64_t cached_prompt_tokens_ = 0;
  std::deque<StepSample> recent_;
  Clock::time_point start_;
};

}  // namespace tern
