// The engine without its thread: requests, the scheduler, the KV block manager and one step at a
// time. The threaded Engine (engine.cpp) drives it; tests drive it directly, step by step, and check
// invariants in between. Not thread-safe; callbacks run inside step()/cancel() and must not call back
// into the core.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/drafter.h"
#include "engine/engine.h"
#include "engine/kv_block_manager.h"
#include "engine/metrics_recorder.h"
#include "engine/request_state.h"
#include "engine/scheduler.h"
#include "engine/slo_policy.h"

namespace tern {

// The engine's steady clock in seconds: the time base of latency deadlines.
double clock_seconds(EngineClock::time_point t);

struct EngineCoreConfig {
  int64_t num_blocks = 0;
  int block_size = 16;
  bool prefix_caching = true;
  SchedulerConfig scheduler;
  std::string policy = "priority";  // "priority" (FCFS among equal priorities), "fcfs" or "slo"
  SpeculativeConfig speculative;
};

class EngineCore {
 public:
  // The runner's KV pool must already be allocated with config.num_blocks blocks. drafter (not owned,
  // outlives the core): required for speculative method draft, optional for ngram (the core makes
  // its own NgramDrafter when null), an error for none.
  ~EngineCore();  // waits for the steps still in the pipeline (their logits are dropped)

  static Result<std::unique_ptr<EngineCore>> create(ModelRunner& runner, const Tokenizer* tokenizer,
                                                    const EngineCoreConfig& config, Drafter* drafter = nullptr);

  // One-line error if the request can never run: empty prompt, ids outside the vocabulary, prompt
  // beyond the context, prompt + max_new_tokens beyond the whole KV pool, bad sampling parameters.
  Status validate(const EngineRequest& request) const;
  Status add(RequestId id, EngineRequest request, OutputCallback on_output);
  // Releases the request's blocks now and sends its last event (kCancelled). Unknown ids: ignored.
  void cancel(RequestId id);
  void cancel_all();
  // Runs one step: schedule, forward, sample, emit. A runner error ends that step's requests with
  // kError; the core stays usable. Under pipeline parallelism (the runner keeps P > 1 steps in
  // flight): starts the steps of the groups whose previous step is back, then samples the oldest.
  void step();

  bool has_work() const { return !requests_.empty() || !in_flight_.empty(); }
  // Pipeline parallelism: the groups requests are split into (1: none) and the steps in the pipeline now.
  int groups() const { return groups_; }
  size_t steps_in_flight() const { return in_flight_.size(); }
  size_t num_requests() const { return requests_.size(); }
  const KvBlockManager& kv() const { return kv_; }
  const Scheduler& scheduler() const { return scheduler_; }
  // Everything but `waiting` of requests not yet handed to the core (the Engine adds those).
  EngineMetrics metrics() const;
  // The last step's batch size in tokens (tests: the budget).
  int64_t last_step_tokens() const { return last_step_tokens_; }
  // Under the "slo" policy, the queue admission prices (slo_policy.h); null under the others.
  std::optional<SloQueue> slo_queue() const;

 private:
  EngineCore(ModelRunner& runner, const Tokenizer* tokenizer, const EngineCoreConfig& config,
             std::unique_ptr<SchedulingPolicy> policy);
  void finish(RequestState& r, EngineOutput& out, EngineFinish why);  // emits, removes, erases
  void fail_step(const SchedulerStep& step, const std::string& error);
  void finish_zero_length();  // the max_new_tokens = 0 requests
  void note_admitted(const SchedulerStep& step);
  // Fills batch_ from the step; returns its rows of logits and adds its prompt tokens to *prompt_tokens.
  int64_t build_batch(const SchedulerStep& step, int64_t* prompt_tokens);
  // Samples (or verifies) one request's logits rows, records latency, emits or finishes it.
  void on_request_logits(RequestState& r, float* logits, int64_t* generated);

  // Pipeline parallelism (runner_.max_steps_in_flight() = P > 1, no speculative decoding; vLLM's
  // virtual engines): each request joins the group with the fewest unfinished requests when it is
  // added; a group's step is scheduled only once its previous step's logits are back, so while group
  // g's step is in the pipeline the core samples, schedules and starts the others'.
  struct InFlight {
    SchedulerStep step;
    std::vector<RequestId> ids;       // per chunk: its request, and that request's arrival number (a
    std::vector<uint64_t> arrivals;   // request cancelled while in flight is gone, or its id reused)
    std::vector<float> logits;        // [rows, vocab]
    int group = 0;
    int64_t prompt_tokens = 0;
    EngineClock::time_point start;
  };
  void step_pipelined();
  bool start_group(int group);  // false: nothing to run in the group (or the start failed)
  void finish_oldest();
  // Speculative decoding (engine_speculative.cpp): drafts appended to decoding sequences before the
  // scheduler runs, drafts it could not place taken off after, and the verification of a chunk's
  // k + 1 logits rows. Returns the finish reason as on_logits does.
  void propose_drafts();
  void drop_unscheduled_drafts();
  EngineFinish verify(RequestState& r, float* rows, EngineOutput* out);

  ModelRunner& runner_;
  const Tokenizer* tokenizer_;
  EngineCoreConfig config_;
  int64_t vocab_;
  KvBlockManager kv_;
  Scheduler scheduler_;
  MetricsRecorder metrics_;
  std::unordered_map<RequestId, std::unique_ptr<RequestState>> requests_;
  std::vector<RequestId> finish_now_;  // max_new_tokens = 0: done without a step
  uint64_t next_arrival_ = 0;
  StepBatch batch_;
  std::vector<float> logits_;
  int64_t last_step_tokens_ = 0;

  // Speculative decoding: the drafter (owned_drafter_ when the core made it), each request's current
  // drafting state (length adapting to its acceptance, back-off) and the drafter's q of the step's
  // proposals.
  std::unique_ptr<Drafter> owned_drafter_;
  Drafter* drafter_ = nullptr;
  std::unordered_map<RequestId, DraftPacer> draft_state_;
  std::unordered_map<RequestId, std::vector<float>> draft_probs_;
  std::vector<DraftSlot> slots_;
  int64_t spec_drafted_ = 0, spec_accepted_ = 0, spec_steps_ = 0, spec_emitted_ = 0;

  int groups_ = 1;
  std::vector<int64_t> group_load_;  // [groups] unfinished requests
  std::vector<char> group_busy_;     // [groups] a step of the group is in the pipeline
  int next_group_ = 0;
  std::deque<InFlight> in_flight_;   // oldest first
  std::vector<std::vector<float>> spare_logits_;  // buffers of finished steps, reused
};

}  // namespace tern
