// Scheduling to latency targets (engine/slo_policy.h): the cost model, the order, the step budget, the
// admission prediction, and a replay of a recorded bursty arrival trace through the real scheduler and KV
// block manager on a virtual clock (a weightless runner whose step costs fixed + per-token time), where the
// SLO policy must give more goodput than FCFS at the same offered load. Nothing here reads a real clock.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>

#include "engine/scheduler.h"
#include "engine/slo_policy.h"

namespace tern {
namespace {

TEST(StepCostModel, FitsFixedAndPerTokenCosts) {
  StepCostModel m;
  EXPECT_FALSE(m.calibrated());
  for (int i = 0; i < 40; ++i) {
    const int64_t n = 1 + (i * 37) % 200;
    m.observe(n, 0.004 + 0.0001 * double(n));
  }
  EXPECT_TRUE(m.calibrated());
  EXPECT_NEAR(m.fixed_s(), 0.004, 1e-6);
  EXPECT_NEAR(m.per_token_s(), 0.0001, 1e-8);
  EXPECT_NEAR(m.predict_s(100), 0.014, 1e-6);
  // Steps all of one size (decodes) say nothing of what a prompt costs: not calibrated.
  StepCostModel same;
  for (int i = 0; i < 10; ++i) same.observe(1, 0.008);
  EXPECT_FALSE(same.calibrated());
  same.observe(0, 1.0);   // ignored: no tokens
  same.observe(8, NAN);   // ignored
  EXPECT_FALSE(same.calibrated());
  // Full steps only (a saturated engine): the line through the origin.
  StepCostModel full;
  for (int i = 0; i < 10; ++i) full.observe(512, 0.256);
  EXPECT_TRUE(full.calibrated());
  EXPECT_NEAR(full.per_token_s(), 0.0005, 1e-12);
  EXPECT_NEAR(full.fixed_s(), 0, 1e-12);
  // A step time that does not grow with tokens (a weightless runner): all fixed cost.
  StepCostModel flat;
  for (int i = 0; i < 20; ++i) flat.observe(1 + i * 25, 0.05);
  EXPECT_TRUE(flat.calibrated());
  EXPECT_NEAR(flat.per_token_s(), 0, 1e-12);
  EXPECT_NEAR(flat.fixed_s(), 0.05, 1e-9);
}

Sequence seq(uint64_t arrival, int64_t prompt, double deadline, int64_t out = 0) {
  Sequence s;
  s.id = arrival + 1;
  s.arrival = arrival;
  s.tokens.assign(size_t(prompt + out), 1);
  s.prompt_len = prompt;
  s.num_computed = out > 0 ? prompt + out - 1 : 0;
  s.ttft_deadline_s = deadline;
  return s;
}

TEST(SloPolicy, StreamsFirstThenEarliestReachableDeadlineThenMissedByArrival) {
  SloPolicy p;
  for (int i = 0; i < 20; ++i) p.observe_step(50 + 5 * i, 0.001 * (50 + 5 * i));  // 1 ms per token
  p.begin_step(10.0);
  const Sequence streaming = seq(5, 50, 10.05, 3);  // first token out: TPOT-bound
  const Sequence late = seq(0, 100, 10.05);         // 100 tokens = 0.1 s: cannot make 10.05 any more
  const Sequence soon = seq(3, 10, 10.5);
  const Sequence later = seq(1, 10, 11.0);
  const Sequence none = seq(2, 10, INFINITY);       // no target
  EXPECT_TRUE(p.before(streaming, soon));
  EXPECT_TRUE(p.before(soon, later));  // deadline over arrival
  EXPECT_TRUE(p.before(later, none));
  EXPECT_TRUE(p.before(none, late));   // a missed deadline goes last
  EXPECT_FALSE(p.before(late, none));
}

TEST(SloPolicy, StepBudgetKeepsTheTightestTpotButLetsPromptsProgress) {
  SloPolicy p;
  std::vector<Sequence*> running;
  EXPECT_EQ(p.step_budget(running, 512), 512);  // nothing measured yet
  for (int i = 0; i < 20; ++i) p.observe_step(10 + i * 20, 0.002 + 0.0001 * double(10 + i * 20));
  Sequence a = seq(0, 10, INFINITY, 2), b = seq(1, 10, INFINITY, 2);
  a.tpot_target_s = 0.05;
  b.tpot_target_s = 0.02;
  running = {&a};
  // 0.9 × 50 ms = 45 ms: (45 - 2) / 0.1 = 430 tokens (the fit rounds either way).
  EXPECT_NEAR(double(p.step_budget(running, 512)), 430, 1);
  running = {&a, &b};
  EXPECT_NEAR(double(p.step_budget(running, 512)), 160, 1);  // (18 - 2) / 0.1
  b.tpot_target_s = 0.001;  // unreachable: the decodes and a 16-token prompt chunk still run
  EXPECT_EQ(p.step_budget(running, 512), 2 + kSloMinPromptChunk);
}

TEST(SloPolicy, PredictedTtftCountsOnlyWorkDueFirst) {
  SloQueue q;
  EXPECT_LT(predict_ttft_s(q, 100, 5, 0), 0);  // uncalibrated
  for (int i = 0; i < 20; ++i) q.cost.observe(50 + 5 * i, 0.001 * (50 + 5 * i));  // 1 ms per token
  q.step_tokens = 100;
  q.decoding = 0;
  EXPECT_NEAR(predict_ttft_s(q, 100, 5, 0), 0.1, 1e-9);  // one step
  q.prompts = {{1.0, 300}, {9.0, 1000}, {-1.0, 500}};     // due earlier, due later, already missed
  EXPECT_NEAR(predict_ttft_s(q, 100, 5, 0), 0.4, 1e-9);  // 300 + 100 tokens
  EXPECT_NEAR(predict_ttft_s(q, 100, 5, 0, 200), 0.6, 1e-9);
  q.decoding = 50;  // half of each step decodes: twice the steps, each still 100 tokens
  EXPECT_NEAR(predict_ttft_s(q, 100, 5, 0), 0.8, 1e-9);
}

// ---- replay of a recorded arrival trace ----

struct TraceRequest {
  double at;
  int64_t prompt, output;
};

// Bursts of requests (Poisson within a burst), quiet in between: the arrivals a chat service sees.
struct TraceShape {
  int bursts = 6, per_burst = 25;
  double rate = 40, quiet_s = 3;
  int64_t prompt_lo = 50, prompt_hi = 600, out_lo = 20, out_hi = 80;
};
std::vector<TraceRequest> bursty_trace(uint32_t seed, const TraceShape& sh = {}) {
  std::mt19937 rng(seed);
  std::exponential_distribution<double> gap(sh.rate);  // requests/s inside a burst
  std::uniform_int_distribution<int64_t> prompt(sh.prompt_lo, sh.prompt_hi), output(sh.out_lo, sh.out_hi);
  std::vector<TraceRequest> t;
  double now = 0;
  for (int burst = 0; burst < sh.bursts; ++burst) {
    for (int i = 0; i < sh.per_burst; ++i) {
      now += gap(rng);
      t.push_back({now, prompt(rng), output(rng)});
    }
    now += sh.quiet_s;
  }
  return t;
}

struct Outcome {
  int good = 0, rejected = 0, total = 0;
};

// Runs the trace through Scheduler + KvBlockManager with `policy`; a step costs fixed + per_token × tokens
// of virtual time. With admission, a request the SLO queue predicts late is refused at arrival.
Outcome replay(const std::vector<TraceRequest>& trace, const std::string& policy, bool admission, double ttft_s,
               double tpot_s) {
  constexpr double kFixed = 0.004, kPerToken = 0.0002;  // 256 tokens ≈ 55 ms
  KvBlockManager kv(4096, 16, false);
  auto made = make_scheduling_policy(policy);
  EXPECT_TRUE(made.is_ok());
  auto* slo = dynamic_cast<SloPolicy*>(made.value().get());
  Scheduler sched(kv, std::move(made.value()), {.max_step_tokens = 512, .max_running = 64});
  struct Live {
    Sequence seq;
    double arrived = 0, first = -1, last = -1;
    int64_t output = 0;
  };
  std::vector<std::unique_ptr<Live>> live;
  Outcome o;
  o.total = int(trace.size());
  double now = 0;
  size_t next = 0;
  int64_t ids = 0;
  auto judge = [&](const Live& l) {
    const double ttft = l.first - l.arrived;
    const double tpot = l.output > 1 ? (l.last - l.first) / double(l.output - 1) : 0;
    if (ttft <= ttft_s && tpot <= tpot_s) ++o.good;
  };
  while (next < trace.size() || sched.has_work()) {
    if (!sched.has_work() && trace[next].at > now) now = trace[next].at;
    for (; next < trace.size() && trace[next].at <= now; ++next) {
      const TraceRequest& r = trace[next];
      if (admission && slo) {
        const double ttft = predict_ttft_s(slo_queue_of(*slo, sched), r.prompt, now + ttft_s, now);
        if (ttft > ttft_s) {
          ++o.rejected;
          continue;
        }
      }
      auto l = std::make_unique<Live>();
      l->seq.id = uint64_t(++ids);
      l->seq.arrival = uint64_t(ids);
      l->seq.tokens.resize(size_t(r.prompt));
      for (auto& t : l->seq.tokens) t = int32_t(ids);
      l->seq.prompt_len = r.prompt;
      l->seq.ttft_deadline_s = r.at + ttft_s;
      l->seq.tpot_target_s = tpot_s;
      l->arrived = r.at;
      l->output = r.output;
      sched.add(&l->seq);
      live.push_back(std::move(l));
    }
    SchedulerStep step = sched.schedule(now);
    if (step.empty()) {
      if (next < trace.size()) now = std::max(now, trace[next].at);
      continue;
    }
    const double cost = kFixed + kPerToken * double(step.num_tokens);
    sched.observe_step(step.num_tokens, cost);
    now += cost;
    sched.complete(step);
    for (const auto& c : step.chunks) {
      if (!c.want_logits) continue;
      for (auto& l : live) {
        if (&l->seq != c.seq) continue;
        l->seq.tokens.push_back(1);
        if (l->first < 0) l->first = now;
        l->last = now;
        if (l->seq.known() - l->seq.prompt_len >= l->output) {
          judge(*l);
          sched.remove(&l->seq);
        }
      }
    }
    EXPECT_EQ(kv.check_invariants(), "");
  }
  return o;
}

TEST(SloPolicy, ReplayedBurstyTraceGivesMoreGoodputThanFcfs) {
  // Bursts of 40 requests at 40/s, 3 s apart: each burst brings ~2.6 s of prompt work, so FCFS's later
  // arrivals miss 1 s TTFT and its early streams decode in 100 ms steps while the prompts run.
  TraceShape busy;
  busy.per_burst = 40;
  const auto trace = bursty_trace(7, busy);
  const double ttft = 1.0, tpot = 0.05;
  const Outcome fcfs = replay(trace, "fcfs", false, ttft, tpot);
  const Outcome slo = replay(trace, "slo", true, ttft, tpot);
  const Outcome slo_no_admission = replay(trace, "slo", false, ttft, tpot);
  EXPECT_EQ(fcfs.total, int(trace.size()));
  EXPECT_GE(slo.good * 2, fcfs.good * 3) << "fcfs " << fcfs.good << ", slo " << slo.good << " (rejected " << slo.rejected
                                         << "), slo without admission " << slo_no_admission.good;
  EXPECT_GT(slo.rejected, 0);
  EXPECT_GT(slo_no_admission.good, fcfs.good);  // the order and the step budget alone already help
  // At a load FCFS copes with, the SLO policy costs little.
  const auto light = bursty_trace(7);
  const Outcome fcfs_light = replay(light, "fcfs", false, ttft, tpot);
  const Outcome slo_light = replay(light, "slo", true, ttft, tpot);
  EXPECT_GE(slo_light.good * 10, fcfs_light.good * 9) << fcfs_light.good << " vs " << slo_light.good;
}

}  // namespace
}  // namespace tern
