// Scheduling policies as small classes (DESIGN.md principle 6): which sequence runs first and which
// one is preempted when KV blocks run out. The scheduler asks; the policy never touches state.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace tern {

// What the scheduler knows about one request. tokens = prompt followed by the generated tokens;
// num_computed of them have their K/V in the sequence's blocks.
struct Sequence {
  uint64_t id = 0;
  std::vector<int32_t> tokens;
  int64_t prompt_len = 0;
  int64_t num_computed = 0;
  int priority = 0;        // larger runs first
  uint64_t arrival = 0;    // admission order (smaller = earlier)
  int64_t num_preemptions = 0;
  int group = 0;           // pipeline parallelism: the engine's group of requests (engine_core.h); 0 otherwise
  bool running = false;
  int64_t scheduled = 0;   // scheduler scratch: tokens given to it in the step being built
  // Speculative drafts at the end of tokens, for the step being built only: the engine appends them
  // before scheduling and takes them off after verification (they are never prompt or output).
  int64_t num_draft = 0;
  // Latency targets (the SLO policy's; others ignore them): when the first token is due, in seconds of
  // the engine's steady clock (infinity: no target), and the time per output token after it (0: none).
  double ttft_deadline_s = std::numeric_limits<double>::infinity();
  double tpot_target_s = 0;

  int64_t known() const { return int64_t(tokens.size()); }
  int64_t pending() const { return known() - num_computed; }  // tokens still to run through the model
  int64_t verified() const { return known() - num_draft; }     // tokens without the drafts
  bool decoding() const { return pending() - num_draft == 1 && verified() > prompt_len; }
  bool has_output() const { return verified() > prompt_len; }  // its first token is out
  // Takes the last n drafts off (n <= num_draft).
  void drop_drafts(int64_t n) {
    tokens.resize(tokens.size() - size_t(n));
    num_draft -= n;
  }
};

class SchedulingPolicy {
 public:
  virtual ~SchedulingPolicy() = default;
  virtual const char* name() const = 0;
  // True if a should be served before b (a strict weak order).
  virtual bool before(const Sequence& a, const Sequence& b) const = 0;
  // Preemption victim among the running sequences: by default the one served last.
  virtual const Sequence* victim(const std::vector<Sequence*>& running) const;
  // Called by the scheduler before it orders its queues (now_s: the engine's steady clock, seconds).
  virtual void begin_step(double now_s) { (void)now_s; }
  // The step's token budget given what runs (at most max_tokens, at least one token per decode).
  virtual int64_t step_budget(const std::vector<Sequence*>& running, int64_t max_tokens) const {
    (void)running;
    return max_tokens;
  }
  // A finished forward pass: its batch in tokens and its wall time (the SLO policy's cost model learns it).
  virtual void observe_step(int64_t tokens, double seconds) {
    (void)tokens;
    (void)seconds;
  }
};

// First come, first served: arrival order only.
class FcfsPolicy final : public SchedulingPolicy {
 public:
  const char* name() const override { return "fcfs"; }
  bool before(const Sequence& a, const Sequence& b) const override { return a.arrival < b.arrival; }
};

// Larger priority first; first come, first served among equals. The victim is the lowest-priority,
// newest sequence.
class PriorityPolicy final : public SchedulingPolicy {
 public:
  const char* name() const override { return "priority"; }
  bool before(const Sequence& a, const Sequence& b) const override {
    if (a.priority != b.priority) return a.priority > b.priority;
    return a.arrival < b.arrival;
  }
};

// "fcfs", "priority", or "slo" (slo_policy.h).
Result<std::unique_ptr<SchedulingPolicy>> make_scheduling_policy(const std::string& name);

}  // namespace tern
