#include "engine/offline_run.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>

namespace tern {

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

struct PerRequest {
  Clock::time_point added, first, last;
  bool have_first = false;
  EngineFinish finish = EngineFinish::kNone;
  std::string error;
};

// What the callbacks (engine thread) and the submitting thread share, under mu.
struct Shared {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<PerRequest> req;  // [requests], in submission order
  std::vector<double> itl_s;
  int64_t in_flight = 0, done = 0, pending_first = 0, output_tokens = 0;
  int64_t first_wave = 0, first_wave_done = 0;
  Clock::time_point start, first_wave_end;
  Clock::time_point last_event;
  bool have_event = false, clean = false;
  double decode_s = 0;
  int64_t decode_tokens = 0;
};

void on_output(Shared& sh, size_t i, const EngineOutput& out) {
  const auto now = Clock::now();
  std::lock_guard lk(sh.mu);
  PerRequest& r = sh.req[i];
  const int64_t n = int64_t(out.tokens.size());
  int64_t after_first = n;
  if (n > 0) {
    if (!r.have_first) {
      r.have_first = true;
      r.first = now;
      --sh.pending_first;
      after_first = n - 1;
      if (int64_t(i) < sh.first_wave && ++sh.first_wave_done == sh.first_wave) sh.first_wave_end = now;
    } else {
      // Tokens that arrive together share the gap since this request's previous event.
      for (int64_t k = 0; k < n; ++k) sh.itl_s.push_back(seconds(now - r.last) / double(n));
    }
    r.last = now;
    sh.output_tokens += n;
  }
  if (sh.have_event && sh.clean) {
    sh.decode_s += seconds(now - sh.last_event);
    sh.decode_tokens += after_first;
  }
  sh.last_event = now;
  sh.have_event = true;
  sh.clean = sh.pending_first == 0;
  if (out.finish != EngineFinish::kNone) {
    if (!r.have_first) --sh.pending_first;
    r.finish = out.finish;
    r.error = out.error;
    --sh.in_flight;
    ++sh.done;
    sh.cv.notify_all();
  }
}

}  // namespace

double percentile_ms(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  // Nearest rank: the smallest value with at least p% of the observations at or below it.
  const size_t rank = size_t(std::ceil(p / 100.0 * double(v.size())));
  return 1e3 * v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

Result<OfflineRunStats> run_offline_load(Engine& engine, const std::vector<std::vector<int32_t>>& prompts,
                                        const OfflineRunOptions& o) {
  if (o.concurrency < 1) return Status::error("concurrency must be at least 1");
  const int64_t n = int64_t(prompts.size());
  Shared sh;  // outlives every callback: this function waits for all added requests before returning
  sh.req.resize(prompts.size());
  sh.first_wave = std::min(n, o.concurrency);
  OfflineRunStats st;
  st.requests = n;
  std::vector<RequestId> ids;
  Status failed = Status::ok();
  sh.start = Clock::now();
  for (int64_t i = 0; i < n; ++i) {
    {
      std::unique_lock lk(sh.mu);
      sh.cv.wait(lk, [&] { return sh.in_flight < o.concurrency; });
      ++sh.in_flight;
      ++sh.pending_first;
      sh.clean = false;
      sh.req[size_t(i)].added = Clock::now();
    }
    EngineRequest r;
    r.prompt = prompts[size_t(i)];
    st.prompt_tokens += int64_t(r.prompt.size());
    if (i < sh.first_wave) st.first_wave_prompt_tokens += int64_t(r.prompt.size());
    r.max_new_tokens = o.max_new_tokens;
    r.ignore_eos = true;
    r.sampling.temperature = 0;
    auto id = engine.add(std::move(r), [&sh, i](RequestId, const EngineOutput& out) { on_output(sh, size_t(i), out); });
    if (!id.is_ok()) {
      failed = Status::error("request " + std::to_string(i) + ": " + id.status().message());
      std::lock_guard lk(sh.mu);
      --sh.in_flight;
      --sh.pending_first;
      sh.req.resize(size_t(i));  // callbacks only ever index added requests
      break;
    }
    ids.push_back(*id);
  }
  if (!failed.is_ok()) {
    for (RequestId id : ids) engine.cancel(id);
  }
  {
    std::unique_lock lk(sh.mu);
    sh.cv.wait(lk, [&] { return sh.done == int64_t(ids.size()); });
  }
  if (!failed.is_ok()) return failed;
  st.wall_s = seconds(Clock::now() - sh.start);
  st.metrics = engine.metrics();
  for (const PerRequest& r : sh.req) {
    if (r.finish == EngineFinish::kError) return Status::error("a request failed: " + r.error);
    if (r.have_first) st.ttft_s.push_back(seconds(r.first - r.added));
    st.e2e_s.push_back(seconds((r.have_first ? r.last : r.added) - r.added));
  }
  st.output_tokens = sh.output_tokens;
  st.first_wave_prefill_s = sh.first_wave_done == sh.first_wave ? seconds(sh.first_wave_end - sh.start) : 0.0;
  st.decode_s = sh.decode_s;
  st.decode_tokens = sh.decode_tokens;
  st.itl_s = std::move(sh.itl_s);
  return st;
}

}  // namespace tern
