// Continuous batching under a per-step token budget (vLLM v1 style: every sequence simply has
// computed tokens catching up with known tokens; there is no prefill or decode mode).
//
// One step: (1) running sequences that decode get their one token each, (2) running sequences still
// in their prompt get a chunk of what budget is left (chunked prefill: a 4,000-token prompt never
// stalls the streams), (3) waiting sequences are admitted in policy order while blocks, budget and
// max_running allow. When a running sequence needs a block and none is left, the policy's victim
// (lowest priority, newest) is preempted by recompute: its blocks are released and it goes back to
// the waiting queue keeping its generated tokens, so on return it recomputes prompt + output.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/kv_block_manager.h"
#include "engine/scheduler_policy.h"

namespace tern {

struct SchedulerConfig {
  int64_t max_step_tokens = 512;
  int64_t max_running = 256;
  int64_t watermark_blocks = 0;  // admissions leave at least this many blocks available (anti-thrash)
};

struct ScheduledChunk {
  Sequence* seq = nullptr;
  int64_t pos0 = 0;       // = seq->num_computed when scheduled
  int64_t n_tokens = 0;
  bool want_logits = false;  // the chunk reaches the last known token: sample after it
};

struct SchedulerStep {
  std::vector<ScheduledChunk> chunks;  // batch order: decodes first, then prompt chunks
  std::vector<Sequence*> preempted;    // preempted during this step (now waiting again)
  struct Admitted {
    Sequence* seq;
    int64_t cached_tokens;             // served by the prefix cache
  };
  std::vector<Admitted> admitted;
  int64_t num_tokens = 0;
  bool empty() const { return chunks.empty(); }
};

class Scheduler {
 public:
  Scheduler(KvBlockManager& kv, std::unique_ptr<SchedulingPolicy> policy, const SchedulerConfig& config);

  void add(Sequence* seq);     // joins the waiting queue (seq outlives its time in the scheduler)
  void remove(Sequence* seq);  // finished or cancelled: leaves the queues, its blocks are released
  // now_s: the engine's steady clock in seconds (policies with deadlines use it).
  SchedulerStep schedule(double now_s = 0);
  // The same over the sequences of one group only (Sequence::group): the others are neither scheduled,
  // admitted nor preempted (their step may be in the pipeline), but count towards max_running.
  SchedulerStep schedule_group(double now_s, int group);
  // The forward pass of a step took this long (the policy's cost model learns from it).
  void observe_step(int64_t tokens, double seconds) { policy_->observe_step(tokens, seconds); }
  // The step's forward pass succeeded: advance num_computed and register newly full blocks (of
  // verified tokens only: drafts never reach the prefix cache).
  void complete(const SchedulerStep& step);
  // After verification took a sequence's drafts off: its KV is valid for num_computed = known - 1
  // positions at most; blocks past its known tokens go back to the pool (the rejected drafts' slots
  // are overwritten by the next step) and newly verified full blocks join the prefix cache.
  void rollback(Sequence* seq);

  const std::vector<Sequence*>& running() const { return running_; }
  const std::vector<Sequence*>& waiting() const { return waiting_; }
  bool has_work() const { return !running_.empty() || !waiting_.empty(); }
  int64_t preemptions_total() const { return preemptions_; }
  const SchedulerConfig& config() const { return config_; }
  const SchedulingPolicy& policy() const { return *policy_; }

 private:
  void sort_queues();
  void preempt(Sequence* victim, SchedulerStep* step, int64_t* budget);
  void fit_drafts(Sequence* seq, int64_t budget);
  // Blocks for seq's next n tokens, preempting victims as needed. False if seq itself was preempted.
  bool reserve(Sequence* seq, int64_t n, SchedulerStep* step, int64_t* budget);

  KvBlockManager& kv_;
  std::unique_ptr<SchedulingPolicy> policy_;
  SchedulerConfig config_;
  std::vector<Sequence*> running_, waiting_;
  int64_t preemptions_ = 0;
  int64_t hidden_running_ = 0;  // schedule_group: running sequences of the other groups
};

}  // namespace tern
