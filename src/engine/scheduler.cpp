#include "engine/scheduler.h"

#include <algorithm>

namespace tern {

Scheduler::Scheduler(KvBlockManager& kv, std::unique_ptr<SchedulingPolicy> policy, const SchedulerConfig& config)
    : kv_(kv), policy_(std::move(policy)), config_(config) {
  if (!policy_) policy_ = std::make_unique<PriorityPolicy>();
  config_.max_step_tokens = std::max<int64_t>(config_.max_step_tokens, 1);
  config_.max_running = std::max<int64_t>(config_.max_running, 1);
}

void Scheduler::add(Sequence* seq) {
  seq->running = false;
  seq->scheduled = 0;
  waiting_.push_back(seq);
}

void Scheduler::remove(Sequence* seq) {
  for (auto* q : {&running_, &waiting_}) {
    auto it = std::find(q->begin(), q->end(), seq);
    if (it != q->end()) q->erase(it);
  }
  kv_.release(seq->id);
  seq->running = false;
  seq->scheduled = 0;
}

void Scheduler::sort_queues() {
  auto order = [this](const Sequence* a, const Sequence* b) { return policy_->before(*a, *b); };
  std::stable_sort(running_.begin(), running_.end(), order);
  std::stable_sort(waiting_.begin(), waiting_.end(), order);
}

void Scheduler::preempt(Sequence* victim, SchedulerStep* step, int64_t* budget) {
  victim->drop_drafts(victim->num_draft);  // drafts are never recomputed as if they were output
  kv_.release(victim->id);
  *budget += victim->scheduled;  // it may already hold part of this step: give the tokens back
  victim->scheduled = 0;
  victim->num_computed = 0;      // recompute: prompt + generated tokens run again on return
  victim->running = false;
  ++victim->num_preemptions;
  running_.erase(std::find(running_.begin(), running_.end(), victim));
  waiting_.push_back(victim);
  step->preempted.push_back(victim);
  ++preemptions_;
}

// Drafts ride along only where they cost nothing else: they are cut to `limit` tokens (the budget
// left after every decoding sequence's own token) and to the blocks available now, so speculation
// never preempts a sequence and never keeps another one from decoding.
void Scheduler::fit_drafts(Sequence* s, int64_t budget) {
  const int64_t bs = kv_.block_size();
  const int64_t have = int64_t(kv_.table(s->id).size());
  const int64_t fit_blocks = (have + kv_.num_available() - config_.watermark_blocks) * bs - s->num_computed;
  const int64_t fit = std::max<int64_t>(1, std::min(budget, fit_blocks));
  if (s->pending() > fit) s->drop_drafts(std::min(s->num_draft, s->pending() - fit));
}

bool Scheduler::reserve(Sequence* seq, int64_t n, SchedulerStep* step, int64_t* budget) {
  while (!kv_.ensure(seq->id, seq->num_computed + n)) {
    auto* victim = const_cast<Sequence*>(policy_->victim(running_));
    preempt(victim, step, budget);
    if (victim == seq) return false;
  }
  return true;
}

SchedulerStep Scheduler::schedule(double now_s) {
  SchedulerStep step;
  policy_->begin_step(now_s);
  sort_queues();
  int64_t budget = policy_->step_budget(running_, config_.max_step_tokens);

  // (1) decodes, (2) prompt chunks of running sequences; both in policy order. A preemption may
  // remove a sequence later in the order (or already given tokens): the copy keeps iteration valid.
  const std::vector<Sequence*> order = running_;
  // Budget drafts may take: what is left once every decoding sequence has its one token.
  int64_t spare = budget;
  for (const Sequence* s : order) spare -= s->running && s->decoding() ? 1 : 0;
  for (int pass = 0; pass < 2; ++pass) {
    for (Sequence* s : order) {
      if (budget <= 0) break;
      if (!s->running || s->scheduled > 0 || s->pending() <= 0) continue;
      if ((pass == 0) != s->decoding()) continue;
      if (s->num_draft > 0) {
        fit_drafts(s, std::min(budget, 1 + std::max<int64_t>(spare, 0)));
        spare -= s->num_draft;
      }
      const int64_t n = std::min(s->pending(), budget);
      if (!reserve(s, n, &step, &budget)) continue;
      s->scheduled = n;
      budget -= n;
    }
  }

  // (3) admissions, only in a step without preemption (otherwise they would thrash).
  if (step.preempted.empty()) {
    size_t admitted = 0;
    for (Sequence* s : waiting_) {
      if (budget <= 0 || int64_t(running_.size()) + hidden_running_ >= config_.max_running) break;
      auto cached = kv_.start(s->id, s->tokens, budget, config_.watermark_blocks);
      if (!cached.is_ok()) break;  // first come, first served: nobody overtakes the head
      s->num_computed = *cached;
      s->scheduled = std::min(s->pending(), budget);
      s->running = true;
      budget -= s->scheduled;
      running_.push_back(s);
      step.admitted.push_back({s, *cached});
      ++admitted;
    }
    waiting_.erase(waiting_.begin(), waiting_.begin() + std::ptrdiff_t(admitted));
  }

  // The batch: decodes first, then chunks, each group in policy order.
  sort_queues();
  for (int pass = 0; pass < 2; ++pass) {
    for (Sequence* s : running_) {
      if (s->scheduled <= 0 || (pass == 0) != s->decoding()) continue;
      step.chunks.push_back({s, s->num_computed, s->scheduled, s->num_computed + s->scheduled == s->known()});
      step.num_tokens += s->scheduled;
    }
  }
  return step;
}

SchedulerStep Scheduler::schedule_group(double now_s, int group) {
  // Set the other groups' sequences aside for this step, then put them back (the queues are sorted
  // again by policy order at every schedule, so where they go back does not matter).
  std::vector<Sequence*> other_running, other_waiting;
  auto set_aside = [group](std::vector<Sequence*>& q, std::vector<Sequence*>& out) {
    auto mine = std::stable_partition(q.begin(), q.end(), [group](const Sequence* s) { return s->group == group; });
    out.assign(mine, q.end());
    q.erase(mine, q.end());
  };
  set_aside(running_, other_running);
  set_aside(waiting_, other_waiting);
  hidden_running_ = int64_t(other_running.size());
  SchedulerStep step = schedule(now_s);
  hidden_running_ = 0;
  running_.insert(running_.end(), other_running.begin(), other_running.end());
  waiting_.insert(waiting_.end(), other_waiting.begin(), other_waiting.end());
  return step;
}

void Scheduler::complete(const SchedulerStep& step) {
  for (const ScheduledChunk& c : step.chunks) {
    Sequence* s = c.seq;
    if (!s->running) continue;  // removed meanwhile (finished with an error)
    s->num_computed = c.pos0 + c.n_tokens;
    s->scheduled = 0;
    // Never the drafts: blocks holding unverified tokens must not enter the prefix cache.
    kv_.commit(s->id, std::span<const int32_t>(s->tokens.data(), size_t(s->verified())), s->num_computed);
  }
}

void Scheduler::rollback(Sequence* s) {
  if (!s->running) return;
  s->num_computed = std::min(s->num_computed, s->known() - 1);
  kv_.truncate(s->id, s->known());
  kv_.commit(s->id, s->tokens, s->num_computed);
}

}  // namespace tern
