// The link between two ranks as tern's communicator sees it (issue 17 items 5, 6): for each kind of
// call the engine makes — all-reduce (f32), all-gather (--tp-comm int8's all-reduce), gather (the
// logits to rank 0), broadcast (rank 0's step messages) and send/recv (pipeline activations) — the
// time of one call over a sweep of message sizes, and a fit of it to α + β · bytes: α the per-call
// cost (software, wake-ups, the wire's latency), β the per-byte cost (1 / the bandwidth reached).
// `tern plan --check` and `tern plan --devices N --link-fits FILE` price a step as Σ over its calls
// of α + β · bytes with the fit of the call's size range (plan/comm_cost.h). Nothing here runs a
// model: the link is measured apart from the decode runs.
//
// Each call is timed as the decoder meets it: both ranks work for --gap-us before it (--gap-work
// stream: reading a 128 MiB buffer, as a layer's matmuls stream weights; spin: a register-only loop),
// so the rank that waits has been idle in MPI for a while, not spinning on the previous call. A
// collective's time is per call the fastest rank's (the one that arrived last waited for the link
// only: what bench_tp's all_reduce_link_s_per_token takes), the median over --reps; a send's is the
// ping-pong's round trip less the peer's gap, halved.
//
// The compute gap sweep (--gaps-us, default 0,250,1000,2000,5000,10000): the per-call cost of a
// small call grows with the work before it (a vCPU that worked for milliseconds, then blocks, wakes
// late; its caches hold the work's data, not MPI's). For each kind 8 B, 2 KiB and 8 KiB are timed
// after each gap (the MEAN per call: a decode token pays every call, tails included, so its sum is
// the mean's; less the slowest 2% of the reps, which on a loaded VM are multi-ms hiccups that a few
// dozen reps cannot average), β is the smallest gap's line, α at each gap its α₀ plus what the gap
// adds per call (the median over the sizes), and α(gap) is fitted to
// α₀ + w · (1 − e^(−gap/τ)) (plan/link_fit.h); the planner prices each call at the gap its model has.
// --p2p-gap-us: the sender's compute before a send (default --gap-us): under pipeline parallelism a
// stage computes its layers before it sends, and the receiver has waited that long.
// Run under `mpirun -np 2` (e.g. scripts/netns mpirun: one rank per network namespace over the shaped veth).
// --p2p-one-way: the sweep times a send one way on the shared steady clock (rank 0 works for the gap
// and sends, rank 1 has waited in its receive: a pipeline stage's handoff; both ranks on ONE machine,
// as scripts/netns places them) instead of the ping-pong, whose "round trip less the peer's gap"
// counts the peer's scheduling delays twice on a loaded VM.
// Usage: mpirun -np 2 bench_link [--reps N] [--gap-us G] [--p2p-gap-us G] [--max-bytes B]
//                                [--gaps-us G1,G2,... | --gaps-us none] [--gap-work stream|spin] [--p2p-one-way]
// Output (rank 0), one JSON object a line — the fits file `tern plan --link-fits` reads:
//   {"kind","bytes","us","mean_us","trimmed_mean_us","reps","gap_us"}  a size at a gap (the sweep's rows too)
//   {"fit","min_bytes","max_bytes","alpha_us","beta_ns_per_byte","gbps","max_rel_residual","gap_us"}
//        per kind and size range (8 B .. 32 KiB: the decode's messages; 128 KiB .. 4 MiB: a prompt's,
//        the logits), at --gap-us (--p2p-gap-us for p2p)
//   {"alpha_gap","min_bytes","max_bytes","beta_ns_per_byte","alpha0_us","wake_us","tau_us",
//    "max_rel_residual","points":[[gap_us, alpha_us], ...],"gap_work"}   per kind: α(gap), the small range
//   {"latency_us" (send/recv of 8 bytes, one way), "bandwidth_gbps" (of the largest send), "gap_us",
//    "fits_version": 2}
// Version 1 files (no alpha_gap rows) still read: their calls are priced at the fit's own gap.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/median.h"
#include "parallel/mpi_communicator.h"
#include "plan/link_fit.h"
#include "plan/link_fits_file.h"

using namespace tern;
using Clock = std::chrono::steady_clock;

namespace {

// The small-message fit takes the sizes up to this, the large-message one the sizes above.
constexpr double kSplitBytes = 32768;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The work between two of the decoder's calls, `us` microseconds of it; returns its seconds.
// stream: sums a 128 MiB buffer 64 KiB at a time from where the last gap stopped (a decode layer's
// matmuls read weights that are not in cache); spin: a register-only loop (the gap as bench_link
// timed it before the sweep).
class GapWork {
 public:
  explicit GapWork(bool stream) : buf_(stream ? size_t(128) << 18 : 0, 1.0f) {}  // 128 MiB of floats: past any L3
  double run(double us) {
    const auto t0 = Clock::now();
    if (us <= 0) return 0;
    if (buf_.empty()) {
      volatile double x = 1.0;
      while (seconds_since(t0) * 1e6 < us) {
        for (int i = 0; i < 64; ++i) x = x * 1.0000001 + 1e-9;
      }
      return seconds_since(t0);
    }
    constexpr size_t kBlock = 16384;  // floats: 64 KiB between clock reads
    float acc = 0;
    while (seconds_since(t0) * 1e6 < us) {
      if (pos_ + kBlock > buf_.size()) pos_ = 0;
      for (size_t i = pos_; i < pos_ + kBlock; ++i) acc += buf_[i];
      pos_ += kBlock;
    }
    sink_ = sink_ + acc;
    return seconds_since(t0);
  }

 private:
  std::vector<float> buf_;
  size_t pos_ = 0;
  volatile float sink_ = 0;
};

enum class Kind { Send, AllReduce, AllGather, Gather, Broadcast };
const char* kind_name(Kind k) {
  switch (k) {
    case Kind::Send: return "p2p";
    case Kind::AllReduce: return "all_reduce";
    case Kind::AllGather: return "all_gather";
    case Kind::Gather: return "gather";
    case Kind::Broadcast: return "broadcast";
  }
  return "?";
}

// One call of `kind` with `bytes` per rank (all_reduce: the vector; all_gather / gather: each rank's
// block; broadcast: the message; send: the message).
Status call(Communicator& c, Kind kind, std::vector<char>& a, std::vector<char>& b, int64_t bytes) {
  switch (kind) {
    case Kind::AllReduce: return c.all_reduce_sum(reinterpret_cast<float*>(a.data()), std::max<int64_t>(1, bytes / 4));
    case Kind::AllGather: return c.all_gather(a.data(), bytes, b.data());
    case Kind::Gather: return c.gather(a.data(), bytes, b.data(), 0);
    case Kind::Broadcast: return c.broadcast(a.data(), bytes, 0);
    case Kind::Send: break;
  }
  return Status::error("bench_link: not a collective");
}

plan::CallKind plan_kind(Kind k) {
  switch (k) {
    case Kind::Send: return plan::CallKind::P2p;
    case Kind::AllReduce: return plan::CallKind::AllReduce;
    case Kind::AllGather: return plan::CallKind::AllGather;
    case Kind::Gather: return plan::CallKind::Gather;
    case Kind::Broadcast: return plan::CallKind::Broadcast;
  }
  return plan::CallKind::AllReduce;
}

struct CallTime {
  double median_s = 0, mean_s = 0;
  double trimmed_s = 0;  // the mean without the slowest 2% (none under 50 reps): a multi-ms hiccup of a loaded VM
};

// Seconds of one call (median and mean over reps, see the header), on rank 0; other ranks return 0s.
// one_way (sends only): instead of the ping-pong, rank 0 works for the gap and sends while rank 1
// waits in its receive (a pipeline stage's handoff); the time is from the send's start to the end of
// the receive on the shared steady clock — both ranks on one machine (scripts/netns), not two.
Result<CallTime> time_kind(Communicator& c, GapWork& work, Kind kind, std::vector<char>& a, std::vector<char>& b,
                           int64_t bytes, int reps, double gap_us, bool one_way = false) {
  std::vector<double> mine;  // collectives: this rank's durations; send: rank 0 round trips, rank 1 its gaps
  for (int i = 0; i < reps; ++i) {
    TERN_RETURN_IF_ERROR(c.barrier());
    if (kind == Kind::Send && one_way) {
      auto since_epoch = [] { return std::chrono::duration<double>(Clock::now().time_since_epoch()).count(); };
      if (c.rank() == 0) {
        work.run(gap_us);
        mine.push_back(since_epoch());
        TERN_RETURN_IF_ERROR(c.send(a.data(), bytes, 1, 7));
      } else {
        TERN_RETURN_IF_ERROR(c.recv(a.data(), bytes, 0, 7));
        mine.push_back(since_epoch());
      }
      continue;
    }
    if (kind == Kind::Send) {
      if (c.rank() == 0) {
        work.run(gap_us);
        const auto t0 = Clock::now();
        TERN_RETURN_IF_ERROR(c.send(a.data(), bytes, 1, 7));
        TERN_RETURN_IF_ERROR(c.recv(a.data(), bytes, 1, 7));
        mine.push_back(seconds_since(t0));
      } else {
        TERN_RETURN_IF_ERROR(c.recv(a.data(), bytes, 0, 7));
        mine.push_back(work.run(gap_us));
        TERN_RETURN_IF_ERROR(c.send(a.data(), bytes, 0, 7));
      }
      continue;
    }
    work.run(gap_us);
    const auto t0 = Clock::now();
    TERN_RETURN_IF_ERROR(call(c, kind, a, b, bytes));
    mine.push_back(seconds_since(t0));
  }
  std::vector<double> all(size_t(reps) * 2);
  TERN_RETURN_IF_ERROR(c.gather(mine.data(), int64_t(reps) * 8, all.data(), 0));
  if (c.rank() != 0) return CallTime{};
  std::vector<double> per_call;
  double sum = 0;
  for (int i = 0; i < reps; ++i) {
    const double r0 = all[size_t(i)], r1 = all[size_t(reps + i)];
    per_call.push_back(kind == Kind::Send ? (one_way ? std::max(0.0, r1 - r0) : std::max(0.0, r0 - r1) / 2) : std::min(r0, r1));
    sum += per_call.back();
  }
  std::vector<double> sorted = per_call;
  std::sort(sorted.begin(), sorted.end());
  const size_t keep = sorted.size() - sorted.size() / 50;
  double kept = 0;
  for (size_t i = 0; i < keep; ++i) kept += sorted[i];
  return CallTime{median(per_call), sum / reps, kept / double(keep)};
}

void print_size_row(Kind kind, int64_t bytes, const CallTime& t, int reps, double gap_us) {
  nlohmann::ordered_json j;
  j["kind"] = kind_name(kind);
  j["bytes"] = bytes;
  j["us"] = t.median_s * 1e6;
  j["mean_us"] = t.mean_s * 1e6;
  j["trimmed_mean_us"] = t.trimmed_s * 1e6;
  j["reps"] = reps;
  j["gap_us"] = gap_us;
  fmt::print("{}\n", j.dump());
}

std::vector<double> parse_gaps(const std::string& s) {
  std::vector<double> out;
  if (s == "none" || s.empty()) return out;
  size_t at = 0;
  while (at <= s.size()) {
    const size_t comma = std::min(s.find(',', at), s.size());
    out.push_back(std::max(0.0, std::stod(s.substr(at, comma - at))));
    at = comma + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 200;
  double gap_us = 200, p2p_gap_us = -1;
  int64_t max_bytes = 4 << 20;
  std::vector<double> gaps = {0, 250, 1000, 2000, 5000, 10000};
  bool stream = true, p2p_one_way = false;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    if (s == "--reps" && i + 1 < argc) reps = std::max(3, std::stoi(argv[++i]));
    else if (s == "--gap-us" && i + 1 < argc) gap_us = std::max(0.0, std::stod(argv[++i]));
    else if (s == "--p2p-gap-us" && i + 1 < argc) p2p_gap_us = std::max(0.0, std::stod(argv[++i]));
    else if (s == "--max-bytes" && i + 1 < argc) max_bytes = std::max<int64_t>(8, std::stoll(argv[++i]));
    else if (s == "--gaps-us" && i + 1 < argc) gaps = parse_gaps(argv[++i]);
    else if (s == "--p2p-one-way") p2p_one_way = true;
    else if (s == "--gap-work" && i + 1 < argc && (std::string(argv[i + 1]) == "stream" || std::string(argv[i + 1]) == "spin")) {
      stream = std::string(argv[++i]) == "stream";
    } else {
      fmt::print(stderr,
                 "usage: mpirun -np 2 bench_link [--reps N] [--gap-us G] [--p2p-gap-us G] [--max-bytes B] "
                 "[--gaps-us G1,G2,...|none] [--gap-work stream|spin] [--p2p-one-way]\n");
      return 2;
    }
  }
  if (p2p_gap_us < 0) p2p_gap_us = gap_us;
  auto opened = open_mpi_communicator();
  if (!opened.is_ok()) {
    fmt::print(stderr, "bench_link: {}\n", opened.status().message());
    return 1;
  }
  Communicator& c = **opened;
  if (c.size() != 2) {
    if (c.rank() == 0) fmt::print(stderr, "bench_link: run it with mpirun -np 2 (this job has {})\n", c.size());
    return 2;
  }
  GapWork work(stream);
  // The engine's sizes lie in this range: decode all-reduces of hidden f32 (2-8 KB), their int8 form
  // (0.5-2 KB), logits slices (64-513 KB), a 512-token prompt's all-reduces (1-4 MB).
  std::vector<int64_t> sizes;
  for (int64_t s : {8, 512, 2048, 8192, 32768, 131072, 524288, 1 << 21, 4 << 20}) {
    if (s <= max_bytes) sizes.push_back(s);
  }
  std::vector<char> a(size_t(sizes.back())), b(size_t(sizes.back()) * 2);
  std::fill(reinterpret_cast<float*>(a.data()), reinterpret_cast<float*>(a.data()) + a.size() / 4, 1.0f);
  double latency = 0, bandwidth = 0;
  for (Kind kind : {Kind::Send, Kind::AllReduce, Kind::AllGather, Kind::Gather, Kind::Broadcast}) {
    const double kind_gap = kind == Kind::Send ? p2p_gap_us : gap_us;
    std::vector<plan::LinkSample> samples;
    for (int64_t bytes : sizes) {
      const int n = bytes >= (1 << 20) ? std::max(3, reps / 20) : bytes >= 65536 ? std::max(3, reps / 4) : reps;
      auto t = time_kind(c, work, kind, a, b, bytes, n, kind_gap);
      if (!t.is_ok()) {
        fmt::print(stderr, "bench_link: rank {}: {}\n", c.rank(), t.status().message());
        return 1;
      }
      if (c.rank() != 0) continue;
      samples.push_back({double(bytes), t->median_s});
      if (kind == Kind::Send && bytes == sizes.front()) latency = t->median_s;
      if (kind == Kind::Send && bytes == sizes.back()) bandwidth = double(bytes) * 8 / std::max(1e-9, t->median_s - latency) / 1e9;
      print_size_row(kind, bytes, *t, n, kind_gap);
    }
    // Two ranges, fitted apart: the decode's messages (hidden-sized, within a shaper's bucket) and the
    // prompt's and logits' (past it). They share no sample: with relative weights a shared small
    // sample would pin the large range's line to itself (seen under load, where times jump by 100×
    // between 32 and 128 KiB).
    double small_max = 0, small_min = 0;
    if (c.rank() == 0) {
      for (bool large : {false, true}) {
        std::vector<plan::LinkSample> in;
        for (const plan::LinkSample& x : samples) {
          if ((x.bytes > kSplitBytes) == large) in.push_back(x);
        }
        if (in.empty()) continue;
        const plan::LinkFit f = plan::fit_link(in);
        if (!large) small_min = in.front().bytes, small_max = in.back().bytes;
        const auto j = plan::link_fit_row(plan_kind(kind), {in.front().bytes, in.back().bytes, f}, kind_gap);
        fmt::print("{}\n", j.dump());
      }
    }
    if (gaps.empty()) continue;
    // The gap sweep over the decode's sizes (8 B, 2 KiB, 8 KiB: within a shaper's bucket), fewer reps
    // at long gaps (about 0.15 s a size, at least 20). β is the smallest gap's line (back to back:
    // the copies and the wire, no wake-ups); α at each gap is its α₀ plus what that gap adds to each
    // size, averaged (plan::alphas_by_gap).
    std::vector<std::vector<plan::LinkSample>> at_gap(gaps.size());
    for (size_t gi = 0; gi < gaps.size(); ++gi) {
      const double g = gaps[gi];
      const int n = std::clamp(int(0.15e6 / std::max(g, 1.0)), 20, reps);
      for (int64_t bytes : {int64_t(8), int64_t(2048), int64_t(8192)}) {
        if (bytes > max_bytes) continue;
        auto t = time_kind(c, work, kind, a, b, bytes, n, g, p2p_one_way);
        if (!t.is_ok()) {
          fmt::print(stderr, "bench_link: rank {}: {}\n", c.rank(), t.status().message());
          return 1;
        }
        if (c.rank() != 0) continue;
        at_gap[gi].push_back({double(bytes), t->trimmed_s});
        print_size_row(kind, bytes, *t, n, g);
      }
    }
    if (c.rank() != 0) continue;
    std::vector<double> gaps_s;
    for (double g : gaps) gaps_s.push_back(g * 1e-6);
    const plan::GapAlphas ga = plan::alphas_by_gap(gaps_s, at_gap);
    const double beta = ga.beta_s_per_byte;
    const std::vector<plan::GapPoint>& points = ga.points;
    const plan::RangedGapFit gf{small_min, small_max, beta, plan::fit_alpha_gap(points)};
    fmt::print("{}\n", plan::gap_fit_row(plan_kind(kind), gf, stream ? "stream" : "spin").dump());
  }
  if (c.rank() == 0) {
    nlohmann::ordered_json j;
    j["latency_us"] = latency * 1e6;
    j["bandwidth_gbps"] = bandwidth;  // the largest send, one way, less the latency
    j["gap_us"] = gap_us;
    j["gap_work"] = stream ? "stream" : "spin";
    j["p2p_sweep"] = p2p_one_way ? "one_way" : "ping_pong";
    j["fits_version"] = 2;
    fmt::print("{}\n", j.dump());
  }
  return 0;
}
