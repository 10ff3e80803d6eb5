#include "engine/metrics_recorder.h"

#include <algorithm>

namespace tern {

EngineMetrics::Histogram MetricsRecorder::make_histogram(std::initializer_list<double> bounds) {
  EngineMetrics::Histogram h;
  h.bounds_s.assign(bounds.begin(), bounds.end());
  h.counts.assign(h.bounds_s.size(), 0);
  return h;
}

void MetricsRecorder::observe(EngineMetrics::Histogram* h, double s) {
  for (size_t i = 0; i < h->bounds_s.size(); ++i) {
    if (s <= h->bounds_s[i]) ++h->counts[i];  // cumulative: every bucket at or above s
  }
  h->sum_s += s;
  ++h->count;
}

MetricsRecorder::MetricsRecorder(double window_s) : window_s_(window_s), start_(Clock::now()) {
  // Bucket bounds as vLLM's Prometheus metrics use (seconds).
  m_.time_to_first_token = make_histogram(
      {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0});
  m_.inter_token_latency = make_histogram(
      {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0});
  m_.e2e_latency = make_histogram(
      {0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0});
}

void MetricsRecorder::add_prompt(int64_t prompt_tokens, int64_t cached_tokens) {
  m_.prompt_tokens_total += prompt_tokens;
  cached_prompt_tokens_ += cached_tokens;
}

void MetricsRecorder::add_step(Clock::time_point now, int64_t prompt_tokens_computed, int64_t generated) {
  m_.generated_tokens_total += generated;
  recent_.push_back({now, prompt_tokens_computed, generated});
  const auto horizon = now - std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(window_s_));
  while (!recent_.empty() && recent_.front().t < horizon) recent_.pop_front();
}

EngineMetrics MetricsRecorder::snapshot(Clock::time_point now) const {
  EngineMetrics m = m_;
  m.prefix_cache_hit_rate = m_.prompt_tokens_total > 0 ? double(cached_prompt_tokens_) / double(m_.prompt_tokens_total) : 0;
  // Rates over the window (or since start, if the engine is younger than the window).
  const double span = std::min(window_s_, std::chrono::duration<double>(now - start_).count());
  const auto horizon = now - std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(window_s_));
  int64_t p = 0, g = 0;
  for (const auto& s : recent_) {
    if (s.t < horizon) continue;
    p += s.prompt;
    g += s.generated;
  }
  if (span > 0) {
    m.prompt_tokens_per_s = double(p) / span;
    m.generated_tokens_per_s = double(g) / span;
  }
  return m;
}

}  // namespace tern
