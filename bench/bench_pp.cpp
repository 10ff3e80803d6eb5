// Pipeline (and TP × PP, and expert) parallelism over MPI (issue 17), one model split over the ranks
// of `mpirun -np T·P·E`:
//   greedy:  the greedy continuation of given ids (the e2e tests compare it with the single process)
//   decode:  prefill tok/s of --batch prompts (one forward each; ttft_s: the first prompt's forward
//            and logits), then decode tok/s of the --batch sequences stepped together, with each
//            rank's resident memory and its pipeline stage's idle share (time not computing, over the
//            whole run). Under --pp the steps go as the serving engine's (forward_logits_start /
//            finish: the last stage sends rank 0 the logits), and the communicator is timed
//            (parallel/timed_communicator.h): comm_s_per_token is rank 0's time in calls per decode
//            step, comm_critical_s_per_token the step less every stage's own work (its ranks' time
//            outside communicator calls over the same window; ranks on one machine share the steady
//            clock): with one micro-batch at batch 1 the stages run one after another, so what is
//            left is what the link adds — bench/netns_tp.sh compares it with tern plan.
//            prefill_comm_critical_s: the same for the first prompt; prefill_p2p_link_s (--pp 2, --tp 1):
//            the first prompt's messages timed directly, each from its start on the sender to the end of
//            the receiver's call (the broadcasts, the activations, the logits back).
//   --engine: the same --batch greedy requests through the serving engine's core (EngineCore over a
//            CpuModelRunner, as `tern serve`): under --pp its requests go in groups whose steps are
//            in flight together (--steps-in-flight, default --pp; 1: one step at a time). decode_tok_s
//            counts the tokens emitted after every request has its first one, over that time.
// Usage: [mpirun -np N] bench_pp MODEL_DIR [--pp P] [--tp T] [--ep E] [--micro-batches M] [--threads N]
//        [--ids 1,2,3 | --reference-ids reference.json] [--greedy 16] [--prompt 128] [--decode 64] [--batch 1]
//        [--engine [--steps-in-flight S]]
// Without mpirun (or -np 1 and no layout) it runs the whole model in one process: the baseline.
// Output (rank 0): "tokens: ..." with --greedy; with --decode one JSON summary and one JSON line per rank.
#include <fmt/format.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_common.h"
#include "core/cpu_features.h"
#include "core/exec_context.h"
#include "core/thread_pool.h"
#include "engine/cpu_model_runner.h"
#include "engine/engine_core.h"
#include "kv/paged_kv_cache.h"
#include "model/decoder.h"
#include "model/model.h"
#include "parallel/group_communicator.h"
#include "parallel/mpi_communicator.h"
#include "parallel/pp_layout.h"
#include "parallel/step_message.h"
#include "parallel/timed_communicator.h"
#include "parallel/tp_worker.h"

using namespace tern;
using tern::bench::rss_kib;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  std::string model;
  int threads = 1, pp = 1, tp = 1, ep = 1, micro = 0, batch = 1, in_flight = 0;
  bool engine = false;
  std::vector<int32_t> ids;
  int greedy = 0;
  int64_t prompt = 128, decode = 0;
};

bool parse(int argc, char** argv, Args& a) {
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : "0"; };
    if (s == "--threads") a.threads = std::stoi(next());
    else if (s == "--pp") a.pp = std::stoi(next());
    else if (s == "--tp") a.tp = std::stoi(next());
    else if (s == "--ep") a.ep = std::stoi(next());
    else if (s == "--micro-batches") a.micro = std::stoi(next());
    else if (s == "--batch") a.batch = std::stoi(next());
    else if (s == "--engine") a.engine = true;
    else if (s == "--steps-in-flight") a.in_flight = std::stoi(next());
    else if (s == "--greedy") a.greedy = std::stoi(next());
    else if (s == "--prompt") a.prompt = std::stoll(next());
    else if (s == "--decode") a.decode = std::stoll(next());
    else if (s == "--ids") a.ids = bench::ids_from_list(next());
    else if (s == "--reference-ids") a.ids = bench::ids_from_reference(next());
    else if (!s.empty() && s[0] != '-' && a.model.empty()) a.model = s;
    else return false;
  }
  return !a.model.empty() && a.pp >= 1 && a.tp >= 1 && a.ep >= 1 && a.batch >= 1 && a.threads >= 1 &&
         a.in_flight >= 0 && (!a.engine || a.decode > 1);
}

int32_t argmax(const float* v, int64_t n) { return int32_t(std::max_element(v, v + n) - v); }

double now_s() { return std::chrono::duration<double>(Clock::now().time_since_epoch()).count(); }

// Rank 0's timing windows (steady-clock seconds): the first prompt, the decode steps.
struct Windows {
  double prefill0 = 0, prefill1 = 0, decode0 = 0, decode1 = 0;
};

// One step of `n` sequences and their logits: under --pp as the serving engine runs it (the last
// stage computes the logits and sends them to rank 0), otherwise forward then logits.
Status step(const Model& model, Decoder& dec, ExecContext& ctx, PagedKvCache& kv, const int32_t* ids, const SeqStep* seqs,
            int n, float* hidden, float* logits, int micro) {
  if (model.pp().stages > 1) {
    PendingRecv pending;
    TERN_RETURN_IF_ERROR(dec.forward_logits_start(ctx, kv, ids, seqs, n, logits, &pending, micro));
    return dec.forward_logits_finish(pending);
  }
  TERN_RETURN_IF_ERROR(dec.forward_batch(ctx, kv, ids, seqs, n, hidden));
  int64_t rows = 0;
  for (int s = 0; s < n; ++s) rows += seqs[s].n_out;
  return dec.logits(ctx, hidden, rows, logits);
}

// Rank 0: greedy tokens of a.ids, then a.decode steps of a.batch sequences.
Status lead(const Model& model, ExecContext& ctx, const Args& a, nlohmann::ordered_json& summary, Windows& w,
            TimedCommunicator* timed) {
  const ModelConfig& c = model.config();
  const int64_t V = c.vocab_size, H = c.hidden_size;
  const int B = a.greedy > 0 ? 1 : a.batch;
  const int64_t len = std::max<int64_t>(int64_t(a.ids.size()) + a.greedy, a.prompt + a.decode) + 1;
  constexpr int kBlock = 16;
  const int64_t per_seq = (len + kBlock - 1) / kBlock;
  Decoder dec(model, std::max<int64_t>(512, a.prompt));
  PagedKvCache kv(c, kBlock, KvDType::F32);
  TERN_RETURN_IF_ERROR(kv.allocate(per_seq * std::max(B, a.batch)));
  std::vector<std::vector<int32_t>> tables(size_t(std::max(B, a.batch)));
  for (size_t s = 0; s < tables.size(); ++s) {
    for (int64_t b = 0; b < per_seq; ++b) tables[s].push_back(int32_t(int64_t(s) * per_seq + b));
  }
  std::vector<float> hidden(size_t(std::max(B, a.batch)) * size_t(H)), logits(size_t(std::max(B, a.batch)) * size_t(V));
  if (a.greedy > 0) {
    std::vector<int32_t> next = a.ids, out;
    int64_t pos = 0;
    for (int i = 0; i < a.greedy; ++i) {
      SeqStep st{pos, int64_t(next.size()), tables[0].data(), per_seq, 1};
      TERN_RETURN_IF_ERROR(dec.forward_batch(ctx, kv, next.data(), &st, 1, hidden.data()));
      TERN_RETURN_IF_ERROR(dec.logits(ctx, hidden.data(), 1, logits.data()));
      pos += int64_t(next.size());
      out.push_back(argmax(logits.data(), V));
      next = {out.back()};
    }
    std::string line = "tokens:";
    for (int32_t t : out) line += fmt::format(" {}", t);
    fmt::print("{}\n", line);
  }
  if (a.decode > 0) {
    // Prompts: one forward each; then every step decodes one token of each of the a.batch sequences.
    std::vector<int32_t> prompt(size_t(a.prompt)), tok(size_t(a.batch));
    std::vector<SeqStep> steps(size_t(a.batch));
    const auto p0 = Clock::now();
    for (int s = 0; s < a.batch; ++s) {
      for (int64_t i = 0; i < a.prompt; ++i) prompt[size_t(i)] = int32_t((i * 7919 + 13 + s * 31) % std::min<int64_t>(V, 32000));
      SeqStep st{0, a.prompt, tables[size_t(s)].data(), per_seq, 1};
      const double t = now_s();
      TERN_RETURN_IF_ERROR(step(model, dec, ctx, kv, prompt.data(), &st, 1, hidden.data(), logits.data(), a.micro));
      if (s == 0) w.prefill0 = t, w.prefill1 = now_s();
      tok[size_t(s)] = argmax(logits.data(), V);
    }
    // Each prompt is one forward (micro-batches pipeline its chunks over the stages).
    summary["prefill_tok_s"] = double(a.prompt) * a.batch / std::chrono::duration<double>(Clock::now() - p0).count();
    summary["prompt_tokens"] = a.prompt;
    summary["ttft_s"] = w.prefill1 - w.prefill0;  // the first prompt's forward + its logits, batch 1
    const CommTimes c0 = timed ? timed->times() : CommTimes{};
    const auto t0 = Clock::now();
    w.decode0 = now_s();
    for (int64_t i = 0; i < a.decode; ++i) {
      for (int s = 0; s < a.batch; ++s) steps[size_t(s)] = {a.prompt + i, 1, tables[size_t(s)].data(), per_seq, 1};
      TERN_RETURN_IF_ERROR(step(model, dec, ctx, kv, tok.data(), steps.data(), a.batch, hidden.data(), logits.data(), a.micro));
      for (int s = 0; s < a.batch; ++s) tok[size_t(s)] = argmax(logits.data() + int64_t(s) * V, V);
    }
    w.decode1 = now_s();
    const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
    summary["decode_tok_s"] = double(a.decode) * a.batch / sec;
    summary["step_ms"] = 1e3 * sec / double(a.decode);
    if (timed) {
      const double in_calls = timed->times().total_s() - c0.total_s();
      summary["comm_s_per_token"] = in_calls / double(a.decode);  // rank 0, every communicator call, per step
      summary["comm_share"] = in_calls / sec;
    }
  }
  return Status::ok();
}

// Rank 0 with --engine: a.batch greedy requests of a.prompt tokens and a.decode new tokens each
// through the engine core, stepped until done.
Status lead_engine(const Model& model, ExecContext& ctx, const Args& a, nlohmann::ordered_json& summary) {
  const int64_t V = model.config().vocab_size;
  constexpr int kBlock = 16;
  const int64_t per_seq = (a.prompt + a.decode + kBlock) / kBlock + 1;
  CpuModelRunner runner(model, ctx, std::max<int64_t>(512, a.prompt), a.batch);
  EngineCoreConfig cfg;
  cfg.num_blocks = per_seq * a.batch;
  cfg.block_size = kBlock;
  cfg.prefix_caching = false;  // distinct prompts anyway
  cfg.scheduler.max_step_tokens = std::max<int64_t>(512, a.prompt * a.batch);
  TERN_RETURN_IF_ERROR(runner.allocate_kv({cfg.num_blocks, kBlock, KvDType::F32}));
  TERN_ASSIGN_OR_RETURN(auto core, EngineCore::create(runner, nullptr, cfg));
  // Each token's emission time; the first token of each request.
  std::vector<Clock::time_point> emitted;
  emitted.reserve(size_t(a.batch * a.decode));
  std::vector<Clock::time_point> first(size_t(a.batch));
  std::vector<int> got(size_t(a.batch), 0);
  const auto t0 = Clock::now();
  for (int s = 0; s < a.batch; ++s) {
    EngineRequest r;
    r.prompt.resize(size_t(a.prompt));
    for (int64_t i = 0; i < a.prompt; ++i) r.prompt[size_t(i)] = int32_t((i * 7919 + 13 + s * 31) % std::min<int64_t>(V, 32000));
    r.max_new_tokens = a.decode;
    r.ignore_eos = true;
    r.sampling.temperature = 0;
    TERN_RETURN_IF_ERROR(core->add(RequestId(s), std::move(r), [&](RequestId id, const EngineOutput& out) {
      const auto now = Clock::now();
      for (size_t k = 0; k < out.tokens.size(); ++k) {
        if (got[size_t(id)]++ == 0) first[size_t(id)] = now;
        emitted.push_back(now);
      }
    }));
  }
  while (core->has_work()) core->step();
  const auto t_end = Clock::now();
  const auto all_first = *std::max_element(first.begin(), first.end());
  int64_t after = 0;
  for (const auto& t : emitted) after += t > all_first ? 1 : 0;
  summary["engine"] = true;
  summary["groups"] = core->groups();
  summary["tokens"] = int64_t(emitted.size());
  summary["ttft_all_s"] = std::chrono::duration<double>(all_first - t0).count();
  summary["decode_tok_s"] = double(after) / std::chrono::duration<double>(t_end - all_first).count();
  summary["total_s"] = std::chrono::duration<double>(t_end - t0).count();
  return Status::ok();
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  if (!parse(argc, argv, a)) {
    fmt::print(stderr, "usage: [mpirun -np N] bench_pp MODEL_DIR [--pp P] [--tp T] [--ep E] [--micro-batches M] "
                       "[--threads N] [--ids a,b,c | --reference-ids FILE] [--greedy N] [--prompt N] [--decode N] "
                       "[--batch B] [--engine [--steps-in-flight S]]\n");
    return 2;
  }
  std::unique_ptr<Communicator> world, group;
  const int N = a.pp * a.tp * a.ep;
  if (N > 1) {
    auto c = open_mpi_communicator();
    if (!c.is_ok()) {
      fmt::print(stderr, "bench_pp: {}\n", c.status().message());
      return 1;
    }
    world = std::move(c).value();
    if (world->size() != N) {
      if (world->rank() == 0) fmt::print(stderr, "bench_pp: the layout needs {} ranks, the job has {}\n", N, world->size());
      return 1;
    }
  }
  // Every call of the model's ranks goes through a timer (rank 0's time in calls, each rank's work).
  std::unique_ptr<TimedCommunicator> timed;
  if (world) timed = std::make_unique<TimedCommunicator>(*world);
  Communicator* comm = timed.get();
  ModelLoadOptions lo;
  PpStats stats;
  if (a.pp > 1) {
    lo.pp = comm;
    lo.pp_stages = a.pp;
    lo.pp_micro_batches = a.micro > 0 ? a.micro : a.pp;
    lo.pp_steps_in_flight = a.in_flight;
    lo.pp_stats = &stats;
  }
  // The same groups as the CLI's (parallel/pp_layout.h rank_groups): the rank's T tensor-parallel peers,
  // and under --ep with --pp its stage's T·E ranks, over which each MoE layer's outputs are summed.
  std::unique_ptr<Communicator> stage;
  const RankGroups groups = rank_groups(world ? world->rank() : 0, a.tp, a.ep);
  if ((a.pp > 1 || a.ep > 1) && a.tp > 1) {
    group = make_group_communicator(*comm, groups.tp).value();
    lo.tp = group.get();
  } else if (a.tp > 1) {
    lo.tp = comm;
  }
  if (a.ep > 1 && a.pp > 1) {
    stage = make_group_communicator(*comm, groups.stage).value();
    lo.ep = stage.get();
  } else if (a.ep > 1) {
    lo.ep = comm;
  }
  ThreadPool pool(a.threads);
  ExecContext ctx(pool, CpuFeatures::detect());
  auto model = Model::load(a.model, lo);
  if (!model.is_ok()) {
    fmt::print(stderr, "bench_pp: {}\n", model.status().message());
    return 1;
  }
  nlohmann::ordered_json summary;
  Windows w;
  const bool lead_rank = !world || world->rank() == 0;
  Status s = !lead_rank  ? run_tp_worker(**model, ctx, *comm)
             : a.engine ? lead_engine(**model, ctx, a, summary)
                        : lead(**model, ctx, a, summary, w, timed.get());
  if (world && lead_rank) (void)broadcast_stop(*comm);
  if (!s.is_ok()) {
    fmt::print(stderr, "bench_pp: rank {}: {}\n", world ? world->rank() : 0, s.message());
    return 1;
  }
  if (a.decode > 0 && world && a.pp > 1 && a.ep == 1 && !a.engine) {
    // The stages' own work over rank 0's windows: each rank's window less its time in calls; a stage's
    // work is its slowest rank's. The step less Σ over stages of their work is the link's share.
    double win[4] = {w.prefill0, w.prefill1, w.decode0, w.decode1};
    if (world->broadcast(win, sizeof(win), 0).is_ok()) {
      double mine[2] = {(win[1] - win[0]) - seconds_in_window(timed->calls(), win[0], win[1]),
                        (win[3] - win[2]) - seconds_in_window(timed->calls(), win[2], win[3])};
      std::vector<double> all(size_t(2 * world->size()));
      if (world->gather(mine, sizeof(mine), all.data(), 0).is_ok() && lead_rank) {
        std::vector<double> prefill_work(size_t(a.pp), 0), decode_work(size_t(a.pp), 0);
        for (int r = 0; r < world->size(); ++r) {
          const size_t stage = size_t(r / a.tp);
          prefill_work[stage] = std::max(prefill_work[stage], all[size_t(2 * r)]);
          decode_work[stage] = std::max(decode_work[stage], all[size_t(2 * r + 1)]);
        }
        double pw = 0, dw = 0;
        for (int st = 0; st < a.pp; ++st) pw += prefill_work[size_t(st)], dw += decode_work[size_t(st)];
        summary["prefill_comm_critical_s"] = (win[1] - win[0]) - pw;
        summary["comm_critical_s_per_token"] = ((win[3] - win[2]) - dw) / double(a.decode);
        summary["stage_work_s_per_token"] = dw / double(a.decode);
      }
    }
    if (a.pp == 2 && a.tp == 1) {
      // The prompt's messages measured directly (the difference above is of two windows of seconds:
      // noise at this size): rank 0 broadcasts the step, sends the activations, then waits for the
      // logits; rank 1 waits for each message before it comes. A message's link time is from its
      // start on the sender to the end of the receiver's call: the broadcasts (rank 0's first start
      // to rank 1's last broadcast end), the activations (the first point-to-point call of each),
      // the logits (rank 1's last send to rank 0's last receive). Calls that overlap the window (a
      // receiver's wait began before it; the last send may return after rank 0 has the logits).
      double edges[6] = {0, 0, 0, 0, 0, 0};  // first p2p start, end; last p2p start, end; first bcast start, last bcast end
      bool p2p = false, bcast = false;
      for (const TimedCall& call : timed->calls()) {
        const double end = call.start_s + double(call.seconds);
        if (end <= win[0] || call.start_s >= win[1]) continue;  // not in the window
        if (call.kind == CommKind::P2p) {
          if (!p2p) edges[0] = call.start_s, edges[1] = end, p2p = true;
          edges[2] = call.start_s, edges[3] = end;
        } else if (call.kind == CommKind::Broadcast && !p2p) {
          if (!bcast) edges[4] = call.start_s, bcast = true;
          edges[5] = end;
        }
      }
      double all[12];
      if (world->gather(edges, sizeof(edges), all, 0).is_ok() && lead_rank && p2p && all[6 + 1] > 0) {
        const double* r0 = all;
        const double* r1 = all + 6;
        const double activations = r1[1] - r0[0], logits = r0[3] - r1[2], broadcasts = bcast && r1[5] > 0 ? r1[5] - r0[4] : 0;
        summary["prefill_p2p_link_s"] = activations + logits + broadcasts;
        summary["prefill_p2p_link_parts_s"] = {{"broadcasts", broadcasts}, {"activations", activations}, {"logits", logits}};
      }
    }
  }
  if (a.decode > 0) {
    // Per rank: resident memory and the pipeline stage's busy / wall seconds, gathered to rank 0.
    const double wall = double(stats.last_ns - stats.first_ns) * 1e-9, busy = double(stats.busy_ns) * 1e-9;
    double mine[3] = {double(rss_kib()) / 1024, busy, wall};
    std::vector<double> all(size_t(3 * (world ? world->size() : 1)));
    std::copy(mine, mine + 3, all.begin());
    if (world) (void)world->gather(mine, sizeof(mine), all.data(), 0);
    if (lead_rank) {
      summary["ranks"] = N;
      summary["pp"] = a.pp, summary["tp"] = a.tp, summary["ep"] = a.ep;
      summary["micro_batches"] = a.pp > 1 ? lo.pp_micro_batches : 1;
      if (a.engine) summary["steps_in_flight"] = a.pp > 1 ? (**model).pp().steps_in_flight : 1;
      summary["batch"] = a.batch;
      summary["threads_per_rank"] = a.threads;
      fmt::print("{}\n", summary.dump());
      for (size_t r = 0; r < all.size() / 3; ++r) {
        nlohmann::ordered_json j;
        j["rank"] = r;
        j["rss_mib"] = all[3 * r];
        if (a.pp > 1) j["idle_share"] = all[3 * r + 2] > 0 ? 1.0 - all[3 * r + 1] / all[3 * r + 2] : 0.0;
        fmt::print("{}\n", j.dump());
      }
    }
  }
  return 0;
}
