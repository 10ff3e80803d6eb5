// Tensor parallelism over MPI (issue 17), one model split over the ranks of `mpirun -np T`:
//   greedy:  the greedy continuation of given ids (the e2e tests compare it with the single process)
//   decode:  batch-1 decode tok/s after a prompt, the bytes each rank sent per token, RSS per rank,
//            the prompt's time to first token, and the time spent communicating (parallel/timed_communicator.h):
//            rank 0's share of a decode step in communicator calls, and each kind of collective's cost
//            over the link (Σ over calls of the fastest rank's duration: what a rank that came last
//            waited). The all-reduces include --tp-comm int8's, which are all-gathers of int8 codes.
// Usage: [mpirun -np T] bench_tp MODEL_DIR [--threads N] [--ids 1,2,3 | --reference-ids reference.json]
//        [--greedy 16] [--prompt 128] [--decode 64] [--tp-comm auto|int8] [--touch-all]
// --touch-all: before the runs, map every page of this rank's layer weights and LM head (MoE experts
// and MLA included, the embedding not) so rss_mib is the shard's steady state, not what a short run
// happened to route through (a MoE prompt reaches only the experts it picks).
// Without mpirun (or -np 1) it runs the whole model in one process: the baseline.
// Output (rank 0): "tokens: ..." with --greedy; with --decode one JSON line per rank (rss) and one summary.
#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_common.h"
#include "core/cpu_features.h"
#include "core/exec_context.h"
#include "core/thread_pool.h"
#include "kv/sequence_kv_cache.h"
#include "model/decoder.h"
#include "model/blocks/mla_attention.h"
#include "model/blocks/moe.h"
#include "model/model.h"
#include "model/tp_slice.h"
#include "parallel/mpi_communicator.h"
#include "parallel/step_message.h"
#include "parallel/timed_communicator.h"
#include "parallel/tp_worker.h"

using namespace tern;
using tern::bench::rss_kib;
using Clock = std::chrono::steady_clock;

namespace {

std::string pending_summary;  // rank 0's JSON line, completed after the ranks compare their all-reduce times

int32_t argmax(const std::vector<float>& v) {
  size_t b = 0;
  for (size_t i = 1; i < v.size(); ++i) {
    if (v[i] > v[b]) b = i;
  }
  return int32_t(b);
}

struct Args {
  std::string model;
  int threads = 1;
  std::vector<int32_t> ids;
  int greedy = 0;
  int64_t prompt = 128, decode = 0;
  TpCommMode tp_comm = TpCommMode::Activation;
  bool touch_all = false;
};

void touch(const WeightMatrix& w) {
  if (!w.data || w.format == WeightFormat::SparseBitmask) return;
  const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  const uintptr_t end = uintptr_t(w.data) + data_bytes(w);
  volatile uint8_t sink = 0;
  for (uintptr_t a = uintptr_t(w.data) & ~(page - 1); a < end; a += page) {
    sink = sink + *reinterpret_cast<const uint8_t*>(std::max(a, uintptr_t(w.data)));
  }
}

void touch_all(const Model& m) {
  for (const DecoderLayerWeights& l : m.weights().layers) {
    for (const WeightMatrix* w : {&l.attn.q, &l.attn.k, &l.attn.v, &l.attn.o, &l.mlp.gate, &l.mlp.up, &l.mlp.down}) {
      touch(*w);
    }
    if (l.mla) {
      for (const WeightMatrix* w : {&l.mla->q, &l.mla->q_a, &l.mla->q_b, &l.mla->kv_a, &l.mla->kv_b, &l.mla->o}) touch(*w);
    }
    if (l.moe) {
      touch(l.moe->router), touch(l.moe->shared_gate);
      for (const ExpertMlp& e : l.moe->experts) touch(e.gate), touch(e.up), touch(e.down);
      touch(l.moe->shared.gate), touch(l.moe->shared.up), touch(l.moe->shared.down);
    }
  }
  touch(m.weights().lm_head);
}

bool parse(int argc, char** argv, Args& a) {
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (s == "--threads") a.threads = std::stoi(next());
    else if (s == "--greedy") a.greedy = std::stoi(next());
    else if (s == "--prompt") a.prompt = std::stoll(next());
    else if (s == "--decode") a.decode = std::stoll(next());
    else if (s == "--touch-all") a.touch_all = true;
    else if (s == "--tp-comm") {
      auto m = parse_tp_comm(next());
      if (!m.is_ok()) return false;
      a.tp_comm = *m;
    }
    else if (s == "--ids") a.ids = bench::ids_from_list(next());
    else if (s == "--reference-ids") a.ids = bench::ids_from_reference(next());
    else if (!s.empty() && s[0] != '-' && a.model.empty()) a.model = s;
    else return false;
  }
  return !a.model.empty();
}

// Where rank 0's phases start and end in the all-reduce call sequence, and what they took.
// Indices count collective calls (TimedCommunicator::calls without the point-to-point ones).
struct Phases {
  size_t prefill_first = 0, decode_first = 0, decode_end = 0;
  double prefill_s = 0, decode_s = 0;
  CommTimes prefill_comm, decode_comm;
};

CommTimes minus(const CommTimes& a, const CommTimes& b) {
  return {a.all_reduce_s - b.all_reduce_s, a.broadcast_s - b.broadcast_s, a.gather_s - b.gather_s, a.p2p_s - b.p2p_s,
          a.barrier_s - b.barrier_s};
}

// Rank 0's work; the other ranks run run_tp_worker meanwhile.
Status lead(const Model& model, ExecContext& ctx, const Args& a, TimedCommunicator* comm, Phases* ph) {
  const ModelConfig& c = model.config();
  Decoder dec(model);
  std::vector<float> hidden(size_t(c.hidden_size)), logits(size_t(c.vocab_size));
  if (a.greedy > 0) {
    SequenceKvCache kv(c, int64_t(a.ids.size()) + a.greedy);
    std::vector<int32_t> next = a.ids, out;
    for (int i = 0; i < a.greedy; ++i) {
      TERN_RETURN_IF_ERROR(dec.forward(ctx, kv, next.data(), int64_t(next.size()), 1, hidden.data()));
      TERN_RETURN_IF_ERROR(dec.logits(ctx, hidden.data(), 1, logits.data()));
      out.push_back(argmax(logits));
      next = {out.back()};
    }
    std::string line = "tokens:";
    for (int32_t t : out) line += fmt::format(" {}", t);
    fmt::print("{}\n", line);
  }
  if (a.decode > 0) {
    SequenceKvCache kv(c, a.prompt + a.decode + 1);
    std::vector<int32_t> prompt(size_t(a.prompt));
    for (int64_t i = 0; i < a.prompt; ++i) prompt[size_t(i)] = int32_t((i * 7919 + 13) % std::min<int64_t>(c.vocab_size, 32000));
    const CommTimes c0 = comm ? comm->times() : CommTimes{};
    ph->prefill_first = comm ? collective_calls(comm->calls()).size() : 0;
    const auto tp0 = Clock::now();
    TERN_RETURN_IF_ERROR(dec.forward(ctx, kv, prompt.data(), a.prompt, 1, hidden.data()));
    TERN_RETURN_IF_ERROR(dec.logits(ctx, hidden.data(), 1, logits.data()));
    int32_t tok = argmax(logits);
    ph->prefill_s = std::chrono::duration<double>(Clock::now() - tp0).count();
    const CommTimes c1 = comm ? comm->times() : CommTimes{};
    ph->prefill_comm = minus(c1, c0);
    ph->decode_first = comm ? collective_calls(comm->calls()).size() : 0;
    const CommStats before = comm ? comm->stats() : CommStats{};
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < a.decode; ++i) {
      TERN_RETURN_IF_ERROR(dec.forward(ctx, kv, &tok, 1, 1, hidden.data()));
      TERN_RETURN_IF_ERROR(dec.logits(ctx, hidden.data(), 1, logits.data()));
      tok = argmax(logits);
    }
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    const CommStats after = comm ? comm->stats() : CommStats{};
    ph->decode_s = s;
    ph->decode_comm = minus(comm ? comm->times() : CommTimes{}, c1);
    ph->decode_end = comm ? collective_calls(comm->calls()).size() : 0;
    nlohmann::ordered_json j;
    j["ranks"] = comm ? comm->size() : 1;
    j["threads_per_rank"] = a.threads;
    j["decode_tok_s"] = double(a.decode) / s;
    j["all_reduce_bytes_per_token"] = double(after.all_reduce_bytes - before.all_reduce_bytes) / double(a.decode);
    j["rank0_sent_bytes_per_token"] = double(after.total() - before.total()) / double(a.decode);
    j["tp_comm"] = tp_comm_name(a.tp_comm);
    // 2 all-reduces per layer of one row [hidden]: f32, or int8 codes + one f32 scale.
    j["arithmetic_bytes_per_token"] = comm ? 2.0 * c.n_layers * double(tp_all_reduce_bytes(a.tp_comm, 1, c.hidden_size)) : 0.0;
    j["prompt_tokens"] = a.prompt;
    j["ttft_s"] = ph->prefill_s;  // the prompt's forward + its logits, batch 1
    if (comm) {
      const double n = double(a.decode);
      const std::vector<TimedCall> calls = collective_calls(comm->calls());
      double ar = 0;
      for (size_t i = ph->decode_first; i < ph->decode_end; ++i) {
        ar += calls[i].kind == CommKind::AllReduce || calls[i].kind == CommKind::AllGather ? 1 : 0;
      }
      j["all_reduces_per_token"] = ar / n;
      j["collectives_per_token"] = double(ph->decode_end - ph->decode_first) / n;
      j["comm_s_per_token"] = ph->decode_comm.total_s() / n;  // rank 0, every communicator call
      j["comm_share"] = ph->decode_comm.total_s() / s;
      j["all_reduce_s_per_token_rank0"] = ph->decode_comm.all_reduce_s / n;
      j["prefill_comm_s"] = ph->prefill_comm.total_s();
    }
    // The rest (the link's cost of the all-reduces) is printed by main once every rank's durations are in.
    pending_summary = j.dump();
  }
  return Status::ok();
}

// Every rank's collective calls (kind, seconds) on rank 0 ([ranks][calls]); empty when the ranks made
// different numbers.
std::vector<std::vector<TimedCall>> collect_calls(Communicator& comm, const std::vector<TimedCall>& mine) {
  int64_t n = int64_t(mine.size());
  std::vector<int64_t> counts(size_t(comm.size()));
  if (!comm.all_gather(&n, sizeof(n), counts.data()).is_ok()) return {};
  for (int64_t c : counts) {
    if (c != n) return {};
  }
  std::vector<float> packed(size_t(2 * n));  // [calls, (kind, seconds)]
  for (size_t i = 0; i < mine.size(); ++i) packed[2 * i] = float(int(mine[i].kind)), packed[2 * i + 1] = mine[i].seconds;
  std::vector<float> all(packed.size() * counts.size());
  if (!comm.gather(packed.data(), 2 * n * int64_t(sizeof(float)), all.data(), 0).is_ok()) return {};
  std::vector<std::vector<TimedCall>> out(counts.size());
  for (size_t r = 0; r < counts.size(); ++r) {
    for (size_t i = 0; i < size_t(n); ++i) {
      const float* e = all.data() + (r * size_t(n) + i) * 2;
      out[r].push_back({CommKind(int(e[0])), 0.0, e[1]});
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  if (!parse(argc, argv, a)) {
    fmt::print(stderr, "usage: [mpirun -np T] bench_tp MODEL_DIR [--threads N] [--ids a,b,c | --reference-ids FILE] "
                       "[--greedy N] [--prompt N] [--decode N] [--tp-comm auto|int8] [--touch-all]\n");
    return 2;
  }
  std::unique_ptr<Communicator> comm;
  if (mpi_available()) {
    auto c = open_mpi_communicator();
    if (!c.is_ok()) {
      fmt::print(stderr, "bench_tp: {}\n", c.status().message());
      return 1;
    }
    comm = std::move(c).value();
  }
  ThreadPool pool(a.threads);
  const CpuFeatures cpu = CpuFeatures::detect();
  ExecContext ctx(pool, cpu);
  const bool tp = comm && comm->size() > 1;
  std::unique_ptr<TimedCommunicator> timed;
  if (tp) timed = std::make_unique<TimedCommunicator>(*comm);
  ModelLoadOptions lo;
  lo.tp = tp ? timed.get() : comm.get();
  lo.tp_comm = a.tp_comm;
  auto model = Model::load(a.model, lo);
  if (!model.is_ok()) {
    fmt::print(stderr, "bench_tp: {}\n", model.status().message());
    return 1;
  }
  if (a.touch_all) touch_all(**model);
  Phases ph;
  Status s = tp && comm->rank() != 0 ? run_tp_worker(**model, ctx, *timed) : lead(**model, ctx, a, timed.get(), &ph);
  if (tp && comm->rank() == 0) (void)broadcast_stop(*timed);
  if (!s.is_ok()) {
    fmt::print(stderr, "bench_tp: rank {}: {}\n", comm ? comm->rank() : 0, s.message());
    return 1;
  }
  if (a.decode > 0 && tp) {
    const auto per_rank = collect_calls(*comm, collective_calls(timed->calls()));
    if (comm->rank() == 0 && !per_rank.empty() && !pending_summary.empty()) {
      nlohmann::ordered_json j = nlohmann::ordered_json::parse(pending_summary);
      const KindSums d = sum_of_min_by_kind(per_rank, ph.decode_first, ph.decode_end);
      const KindSums p = sum_of_min_by_kind(per_rank, ph.prefill_first, ph.decode_first);
      const double n = double(a.decode);
      j["all_reduce_link_s_per_token"] = (d[CommKind::AllReduce] + d[CommKind::AllGather]) / n;
      j["broadcast_link_s_per_token"] = d[CommKind::Broadcast] / n;
      j["gather_link_s_per_token"] = d[CommKind::Gather] / n;
      j["comm_link_s_per_token"] = d.total() / n;  // every collective of the step, each at its fastest rank
      j["prefill_all_reduce_link_s"] = p[CommKind::AllReduce] + p[CommKind::AllGather];
      j["prefill_comm_link_s"] = p.total();
      pending_summary = j.dump();
    }
  }
  if (!pending_summary.empty()) fmt::print("{}\n", pending_summary);
  if (a.decode > 0) {
    // Resident memory of every rank, reported by rank 0 in rank order.
    int64_t mine = rss_kib();
    std::vector<int64_t> all(size_t(tp ? comm->size() : 1), mine);
    if (tp) (void)comm->gather(&mine, sizeof(mine), all.data(), 0);
    if (!tp || comm->rank() == 0) {
      for (size_t r = 0; r < all.size(); ++r) fmt::print("{{\"rank\": {}, \"rss_mib\": {:.1f}}}\n", r, double(all[r]) / 1024);
    }
  }
  return 0;
}
