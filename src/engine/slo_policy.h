// Scheduling to latency targets (TTFT: time to first token; TPOT: time per output token after it), a policy
// beside FCFS and priority (DESIGN.md principle 6):
//  - order: sequences whose first token is out come first (they are bound by TPOT, and decode anyway);
//    then prompts whose TTFT can still be met, earliest deadline first; then prompts that already missed
//    it, first come first served (serving a lost cause first would make the next request miss too);
//  - budget: each step's tokens are cut so the step, priced by a cost model learnt from the engine's own
//    steps (time = fixed + per_token × tokens), fits the tightest TPOT among the streams (less 10%), but
//    never below the decodes plus a 16-token prompt chunk, so prompts still progress;
//  - admission: predict_ttft_s() prices the prompt work queued ahead of a new request (EDF: everything
//    due no later) at the same step sizes; the engine refuses a request whose TTFT target it cannot meet.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "engine/scheduler_policy.h"

namespace tern {

// Step wall time = fixed_s + per_token_s × tokens, fitted by exponentially weighted least squares over
// recent steps (weight halves every ~35 steps, so it follows load and thermal changes). It is calibrated
// once steps of different sizes were seen, or big ones (decode steps alone say nothing of a prompt's
// cost): until then the policy neither cuts step budgets nor refuses requests.
class StepCostModel {
 public:
  void observe(int64_t tokens, double seconds);
  bool calibrated() const;
  double fixed_s() const;
  double per_token_s() const;
  double predict_s(int64_t tokens) const { return fixed_s() + per_token_s() * double(tokens); }

 private:
  double w_ = 0, sx_ = 0, sy_ = 0, sxx_ = 0, sxy_ = 0;  // weighted sums of tokens (x) and seconds (y)
  int64_t steps_ = 0;
};

inline constexpr int64_t kSloMinPromptChunk = 16;  // prompt tokens every step may take, whatever the TPOT

class SloPolicy final : public SchedulingPolicy {
 public:
  const char* name() const override { return "slo"; }
  bool before(const Sequence& a, const Sequence& b) const override;
  void begin_step(double now_s) override { now_s_ = now_s; }
  int64_t step_budget(const std::vector<Sequence*>& running, int64_t max_tokens) const override;
  void observe_step(int64_t tokens, double seconds) override { cost_.observe(tokens, seconds); }
  const StepCostModel& cost() const { return cost_; }

 private:
  int group(const Sequence& s) const;  // 0: first token out; 1: TTFT still reachable; 2: missed

  double now_s_ = 0;
  StepCostModel cost_;
};

// What admission needs to know of the queue, published by the engine after each step.
struct SloQueue {
  StepCostModel cost;
  int64_t step_tokens = 0;  // the current step budget
  int64_t decoding = 0;     // streams taking one token per step
  // Prompt work not yet done: (TTFT deadline in seconds, prompt tokens still to compute) per sequence.
  std::vector<std::pair<double, int64_t>> prompts;
};

class Scheduler;
// The scheduler's queue as admission sees it under this policy.
SloQueue slo_queue_of(const SloPolicy& policy, const Scheduler& scheduler);

// The predicted time to first token of a request with `prompt_tokens` and this deadline, arriving at now_s:
// the queued prompt work due no later than it (but not already past due: that goes last), plus its own and
// `extra_tokens` (requests not yet in the queue), at the steps' prompt share. < 0 when the cost model has
// not seen enough steps.
double predict_ttft_s(const SloQueue& q, int64_t prompt_tokens, double deadline_s, double now_s,
                      int64_t extra_tokens = 0);

}  // namespace tern
