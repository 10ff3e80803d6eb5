#include "engine/slo_policy.h"

#include <algorithm>
#include <cmath>

#include "engine/scheduler.h"

namespace tern {

namespace {
constexpr double kDecay = 0.98;     // per step: weight halves in ~35 steps
constexpr double kTpotMargin = 0.9;  // aim under the target: the model's prediction is not exact
}  // namespace

void StepCostModel::observe(int64_t tokens, double seconds) {
  if (tokens <= 0 || !(seconds >= 0) || !std::isfinite(seconds)) return;
  const double x = double(tokens);
  w_ = w_ * kDecay + 1;
  sx_ = sx_ * kDecay + x;
  sy_ = sy_ * kDecay + seconds;
  sxx_ = sxx_ * kDecay + x * x;
  sxy_ = sxy_ * kDecay + x * seconds;
  ++steps_;
}

bool StepCostModel::calibrated() const {
  if (steps_ < 8 || w_ <= 0) return false;
  const double mx = sx_ / w_;
  // Sizes spread by more than 10% of their mean, or steps big enough that the line through the origin
  // prices prompts conservatively (a saturated engine runs full steps only; the budgets it then sets
  // spread the sizes and refine the fit).
  return sxx_ / w_ - mx * mx > 0.01 * mx * mx || mx >= 64;
}

// The weighted least-squares slope, kept in [0, the line through the origin] so both costs stay >= 0.
double StepCostModel::per_token_s() const {
  if (w_ <= 0 || sx_ <= 0) return 0;
  const double mx = sx_ / w_, my = sy_ / w_;
  const double var = sxx_ / w_ - mx * mx;
  if (var <= 0) return my / mx;
  return std::clamp((sxy_ / w_ - mx * my) / var, 0.0, my / mx);
}

double StepCostModel::fixed_s() const {
  if (w_ <= 0) return 0;
  return std::max(0.0, (sy_ - per_token_s() * sx_) / w_);
}

int SloPolicy::group(const Sequence& s) const {
  if (s.has_output()) return 0;
  if (!std::isfinite(s.ttft_deadline_s)) return 1;
  // Reachable if its own remaining prompt, alone, could still finish in time.
  const double alone = cost_.calibrated() ? cost_.predict_s(s.pending()) : 0;
  return now_s_ + alone <= s.ttft_deadline_s ? 1 : 2;
}

bool SloPolicy::before(const Sequence& a, const Sequence& b) const {
  const int ga = group(a), gb = group(b);
  if (ga != gb) return ga < gb;
  if (ga == 1 && a.ttft_deadline_s != b.ttft_deadline_s) return a.ttft_deadline_s < b.ttft_deadline_s;
  return a.arrival < b.arrival;
}

int64_t SloPolicy::step_budget(const std::vector<Sequence*>& running, int64_t max_tokens) const {
  double tpot = 0;
  int64_t decodes = 0;
  for (const Sequence* s : running) {
    if (!s->has_output()) continue;
    ++decodes;
    if (s->tpot_target_s > 0) tpot = tpot > 0 ? std::min(tpot, s->tpot_target_s) : s->tpot_target_s;
  }
  if (tpot <= 0 || !cost_.calibrated() || cost_.per_token_s() <= 0) return max_tokens;
  const double fit = (kTpotMargin * tpot - cost_.fixed_s()) / cost_.per_token_s();
  const int64_t tokens = fit >= double(max_tokens) ? max_tokens : int64_t(std::max(0.0, fit));
  return std::clamp(tokens, std::min(max_tokens, decodes + kSloMinPromptChunk), max_tokens);
}

SloQueue slo_queue_of(const SloPolicy& policy, const Scheduler& scheduler) {
  SloQueue q;
  q.cost = policy.cost();
  q.step_tokens = policy.step_budget(scheduler.running(), scheduler.config().max_step_tokens);
  for (const Sequence* s : scheduler.running()) q.decoding += s->has_output() ? 1 : 0;
  for (const auto* list : {&scheduler.running(), &scheduler.waiting()}) {
    for (const Sequence* s : *list) {
      if (!s->has_output()) q.prompts.emplace_back(s->ttft_deadline_s, s->pending());
    }
  }
  return q;
}

double predict_ttft_s(const SloQueue& q, int64_t prompt_tokens, double deadline_s, double now_s, int64_t extra_tokens) {
  if (!q.cost.calibrated() || q.step_tokens <= 0) return -1;
  int64_t ahead = prompt_tokens + extra_tokens;
  for (const auto& [deadline, tokens] : q.prompts) {
    if (deadline <= deadline_s && deadline >= now_s) ahead += tokens;
  }
  const int64_t share = std::max<int64_t>(kSloMinPromptChunk, q.step_tokens - q.decoding);
  const int64_t steps = (ahead + share - 1) / share;
  return double(steps) * q.cost.predict_s(std::min(q.step_tokens, q.decoding + share));
}

}  // namespace tern
