#include <gtest/gtest.h>

#include <memory>
#include <numeric>

#include "engine/scheduler.h"

namespace tern {
namespace {

struct Harness {
  Harness(int64_t blocks, int block_size, SchedulerConfig cfg, std::unique_ptr<SchedulingPolicy> policy = nullptr)
      : kv(blocks, block_size, false), sched(kv, std::move(policy), cfg) {}

  Sequence* add(int64_t prompt_len, int priority = 0) {
    auto s = std::make_unique<Sequence>();
    s->id = seqs.size() + 1;
    s->tokens.resize(size_t(prompt_len));
    std::iota(s->tokens.begin(), s->tokens.end(), 0);
    s->prompt_len = prompt_len;
    s->priority = priority;
    s->arrival = seqs.size();
    sched.add(s.get());
    seqs.push_back(std::move(s));
    return seqs.back().get();
  }

  // Schedules, "runs" the step and appends a token to every sequence that reached its end.
  SchedulerStep step() {
    SchedulerStep st = sched.schedule();
    EXPECT_LE(st.num_tokens, sched.config().max_step_tokens);
    for (const auto& c : st.chunks) {
      EXPECT_GE(kv.table(c.seq->id).size() * size_t(kv.block_size()), size_t(c.pos0 + c.n_tokens));
    }
    sched.complete(st);
    for (const auto& c : st.chunks) {
      if (c.want_logits) c.seq->tokens.push_back(7);
    }
    EXPECT_EQ(kv.check_invariants(), "");
    return st;
  }

  KvBlockManager kv;
  Scheduler sched;
  std::vector<std::unique_ptr<Sequence>> seqs;
};

TEST(Scheduler, DecodesFirstThenPromptChunks) {
  Harness h(64, 4, {.max_step_tokens = 8});
  Sequence* a = h.add(3);
  Sequence* b = h.add(2);
  auto s1 = h.step();  // both prompts fit in 8
  ASSERT_EQ(s1.chunks.size(), 2u);
  EXPECT_TRUE(s1.chunks[0].want_logits);
  Sequence* c = h.add(40);
  auto s2 = h.step();
  ASSERT_EQ(s2.chunks.size(), 3u);
  EXPECT_EQ(s2.chunks[0].seq, a);
  EXPECT_EQ(s2.chunks[0].n_tokens, 1);
  EXPECT_EQ(s2.chunks[1].seq, b);
  EXPECT_EQ(s2.chunks[2].seq, c);
  EXPECT_EQ(s2.chunks[2].n_tokens, 6);  // what the budget leaves
  EXPECT_FALSE(s2.chunks[2].want_logits);
  EXPECT_EQ(s2.num_tokens, 8);
}

TEST(Scheduler, LongPromptNeverStallsRunningStreams) {
  Harness h(1024, 16, {.max_step_tokens = 512});
  std::vector<Sequence*> streams;
  for (int i = 0; i < 3; ++i) streams.push_back(h.add(5));
  h.step();
  Sequence* big = h.add(4000);
  int prompt_steps = 0;
  while (big->known() == big->prompt_len) {
    auto st = h.step();
    ++prompt_steps;
    int decodes = 0;
    for (const auto& c : st.chunks) decodes += c.seq != big ? 1 : 0;
    EXPECT_EQ(decodes, 3) << "every running stream decodes in every step";
  }
  EXPECT_EQ(prompt_steps, 8);  // ceil(4000 / 509)
}

TEST(Scheduler, AdmitsInArrivalOrderUnderFcfs) {
  Harness h(64, 4, {.max_step_tokens = 10}, std::make_unique<FcfsPolicy>());
  Sequence* a = h.add(6, /*priority=*/0);
  Sequence* b = h.add(6, /*priority=*/5);  // priority is ignored by FCFS
  auto st = h.step();
  ASSERT_EQ(st.chunks.size(), 2u);
  EXPECT_EQ(st.chunks[0].seq, a);
  EXPECT_EQ(st.chunks[0].n_tokens, 6);
  EXPECT_EQ(st.chunks[1].seq, b);
  EXPECT_EQ(st.chunks[1].n_tokens, 4);
}

TEST(Scheduler, HigherPriorityIsAdmittedFirst) {
  Harness h(64, 4, {.max_step_tokens = 10});
  Sequence* a = h.add(6, 0);
  Sequence* b = h.add(6, 5);
  auto st = h.step();
  ASSERT_EQ(st.chunks.size(), 2u);
  EXPECT_EQ(st.chunks[0].seq, b);
  EXPECT_EQ(st.chunks[0].n_tokens, 6);
  EXPECT_EQ(st.chunks[1].seq, a);
}

TEST(Scheduler, PolicyVictimIsLowestPriorityThenNewest) {
  PriorityPolicy p;
  Sequence a, b, c;
  a.priority = 1, a.arrival = 0;
  b.priority = 0, b.arrival = 1;
  c.priority = 0, c.arrival = 2;
  std::vector<Sequence*> running = {&a, &b, &c};
  EXPECT_EQ(p.victim(running), &c);
  c.priority = 2;
  EXPECT_EQ(p.victim(running), &b);
  FcfsPolicy f;
  EXPECT_EQ(f.victim(running), &c);
  EXPECT_FALSE(make_scheduling_policy("lottery").is_ok());
}

TEST(Scheduler, AdmissionWaitsForBlocks) {
  Harness h(4, 4, {.max_step_tokens = 64});
  Sequence* a = h.add(12);  // 3 blocks
  Sequence* b = h.add(8);   // 2 blocks: does not fit next to a
  auto st = h.step();
  ASSERT_EQ(st.chunks.size(), 1u);
  EXPECT_EQ(st.chunks[0].seq, a);
  EXPECT_EQ(h.sched.waiting().size(), 1u);
  h.sched.remove(a);  // finished
  st = h.step();
  ASSERT_EQ(st.chunks.size(), 1u);
  EXPECT_EQ(st.chunks[0].seq, b);
}

TEST(Scheduler, MaxRunningCapsAdmissions) {
  Harness h(64, 4, {.max_step_tokens = 64, .max_running = 2});
  for (int i = 0; i < 4; ++i) h.add(2);
  h.step();
  EXPECT_EQ(h.sched.running().size(), 2u);
  EXPECT_EQ(h.sched.waiting().size(), 2u);
}

TEST(Scheduler, PreemptsTheNewestWhenBlocksRunOutAndResumesByRecompute) {
  Harness h(4, 4, {.max_step_tokens = 64});
  Sequence* a = h.add(7);  // 2 blocks
  Sequence* b = h.add(7);  // 2 blocks: the pool is full
  h.step();                // both prompts, each samples token 8 (position 7)
  ASSERT_EQ(h.sched.running().size(), 2u);
  h.step();                // decode position 7: still in block 1
  // Position 8 needs a third block for each: b (newest) is preempted so that a can go on.
  auto st = h.step();
  ASSERT_EQ(st.preempted.size(), 1u);
  EXPECT_EQ(st.preempted[0], b);
  EXPECT_EQ(b->num_computed, 0);
  EXPECT_EQ(b->known(), 9);  // keeps its generated tokens
  EXPECT_EQ(b->num_preemptions, 1);
  ASSERT_EQ(st.chunks.size(), 1u);
  EXPECT_EQ(st.chunks[0].seq, a);
  EXPECT_EQ(h.sched.preemptions_total(), 1);
  h.sched.remove(a);
  st = h.step();  // b comes back and recomputes prompt + output
  ASSERT_EQ(st.chunks.size(), 1u);
  EXPECT_EQ(st.chunks[0].seq, b);
  EXPECT_EQ(st.chunks[0].pos0, 0);
  EXPECT_EQ(st.chunks[0].n_tokens, 9);
  EXPECT_TRUE(st.chunks[0].want_logits);
}

TEST(Scheduler, AdmissionNeverPreemptsRunningSequences) {
  Harness h(4, 4, {.max_step_tokens = 64});
  Sequence* low = h.add(7, 0);
  h.step();
  Sequence* high = h.add(12, 3);  // needs 3 blocks; 2 are free
  auto st = h.step();             // low decodes; high cannot be admitted (no preemption for admission)
  EXPECT_EQ(h.sched.waiting().size(), 1u);
  h.sched.remove(low);
  st = h.step();
  ASSERT_EQ(st.chunks.size(), 1u);
  EXPECT_EQ(st.chunks[0].seq, high);
}

TEST(Scheduler, RemovingAWaitingOrRunningSequenceFreesItsBlocks) {
  Harness h(8, 4, {.max_step_tokens = 64});
  Sequence* a = h.add(10);
  Sequence* b = h.add(3);
  h.step();
  EXPECT_EQ(h.kv.num_used(), 4);
  h.sched.remove(a);
  EXPECT_EQ(h.kv.num_used(), 1);
  h.sched.remove(b);
  EXPECT_EQ(h.kv.num_used(), 0);
  EXPECT_FALSE(h.sched.has_work());
}

}  // namespace
}  // namespace tern

namespace tern {
namespace {

// Pipeline parallelism's groups (engine_core.h): a group's step sees only its own sequences, but the
// others count towards max_running, and the queues are whole again afterwards.
TEST(Scheduler, ScheduleGroupSeesOnlyItsGroup) {
  Harness h(64, 4, {.max_step_tokens = 64, .max_running = 2});
  Sequence* a = h.add(6);
  Sequence* b = h.add(5);
  Sequence* c = h.add(7);
  b->group = 1;
  SchedulerStep s0 = h.sched.schedule_group(0, 0);
  ASSERT_EQ(s0.chunks.size(), 2u);
  EXPECT_EQ(s0.chunks[0].seq, a);
  EXPECT_EQ(s0.chunks[1].seq, c);
  EXPECT_FALSE(b->running);
  EXPECT_EQ(h.sched.running().size(), 2u);
  EXPECT_EQ(h.sched.waiting().size(), 1u);
  h.sched.complete(s0);
  // Group 1's step: b may not be admitted, a and c already fill max_running.
  EXPECT_TRUE(h.sched.schedule_group(0, 1).empty());
  EXPECT_FALSE(b->running);
  // Group 0 again: its two sequences (their prompts done, nothing pending without a token) only.
  a->tokens.push_back(1);
  c->tokens.push_back(2);
  SchedulerStep s1 = h.sched.schedule_group(0, 0);
  ASSERT_EQ(s1.chunks.size(), 2u);
  for (const auto& ch : s1.chunks) EXPECT_NE(ch.seq, b);
  EXPECT_EQ(h.kv.check_invariants(), "");
}

}  // namespace
}  // namespace tern
