#include "plan/comm_cost.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace tern::plan {

const char* call_kind_name(CallKind k) {
  switch (k) {
    case CallKind::AllReduce: return "all_reduce";
    case CallKind::AllGather: return "all_gather";
    case CallKind::Gather: return "gather";
    case CallKind::Broadcast: return "broadcast";
    case CallKind::P2p: return "p2p";
  }
  return "?";
}

void LinkFits::add(CallKind k, const RangedFit& f) {
  auto& v = kind[int(k)];
  v.insert(std::upper_bound(v.begin(), v.end(), f, [](const RangedFit& a, const RangedFit& b) { return a.min_bytes < b.min_bytes; }), f);
}

const LinkFit& LinkFits::at(CallKind k, double bytes) const {
  const auto& v = kind[int(k)];
  for (const RangedFit& f : v) {
    if (bytes >= f.min_bytes && bytes <= f.max_bytes) return f.fit;
  }
  if (bytes < v.front().min_bytes) return v.front().fit;
  // Past the last range, or between two: the nearest range below.
  const RangedFit* best = &v.front();
  for (const RangedFit& f : v) {
    if (f.min_bytes <= bytes) best = &f;
  }
  return best->fit;
}

void LinkFits::add(CallKind k, const RangedGapFit& f) {
  auto& v = gap[int(k)];
  v.insert(std::upper_bound(v.begin(), v.end(), f, [](const RangedGapFit& a, const RangedGapFit& b) { return a.min_bytes < b.min_bytes; }), f);
}

bool LinkFits::empty() const {
  for (int k = 0; k < kCallKinds; ++k) {
    if (!kind[k].empty() || !gap[k].empty()) return false;
  }
  return true;
}

double LinkFits::call_seconds(CallKind k, double bytes, double gap_s) const {
  if (gap_s >= 0) {
    for (const RangedGapFit& g : gap[int(k)]) {
      if (bytes >= g.min_bytes && bytes <= g.max_bytes && !g.alpha.empty()) return g.alpha.alpha(gap_s) + g.beta_s_per_byte * bytes;
    }
  }
  return at(k, bytes).seconds(bytes);
}

void set_compute_gaps(LayoutComm& c, const Layout& l, double step_compute_s) {
  if (step_compute_s <= 0) return;
  const double stage = step_compute_s / std::max(1, l.pp);
  auto stage_gap = [&](const CallGroup& g) { return g.kind == CallKind::P2p || (l.pp > 1 && g.kind == CallKind::Broadcast); };
  double spread_calls = 0;  // per step, all stages
  for (CommCost* cost : {&c.tp, &c.pp, &c.ep, &c.protocol}) {
    for (const CallGroup& g : cost->groups) {
      if (!stage_gap(g)) spread_calls += g.calls;
    }
  }
  for (CommCost* cost : {&c.tp, &c.pp, &c.ep, &c.protocol}) {
    for (CallGroup& g : cost->groups) g.gap_s = stage_gap(g) ? stage : step_compute_s / std::max(1.0, spread_calls);
  }
}

bool CommCost::priced_by_fits(const Link& link) const {
  if (groups.empty()) return false;
  for (const CallGroup& g : groups) {
    if (!link.fits.has(g.kind)) return false;
  }
  return true;
}

double CommCost::seconds(const Link& link) const {
  const double added = messages * link.added_latency_us * 1e-6;
  if (priced_by_fits(link)) {
    double s = 0;
    for (const CallGroup& g : groups) {
      s += g.calls * link.fits.call_seconds(g.kind, g.payload / g.calls, g.gap_s);  // the group's calls are of one size
    }
    return s + added;
  }
  const double bw = link.gbps > 0 ? link.gbps * 1e9 / 8 : 0;
  double shaped = bytes;
  if (link.burst_bytes > 0 && messages > 0) shaped = messages * std::max(0.0, bytes / messages - link.burst_bytes);
  return messages * link.latency_us * 1e-6 + added + (bw > 0 ? shaped / bw : 0);
}

std::string Layout::name() const {
  std::string n;
  auto add = [&](const char* k, int v) {
    if (v <= 1) return;
    n += (n.empty() ? "" : "×") + fmt::format("{}{}", k, v);
  };
  add("tp", tp), add("pp", pp), add("ep", ep);
  return n.empty() ? "single" : n;
}

LayoutComm decode_step_comm(const ModelShape& s, const Layout& l, int64_t batch, double a, double tp_a) {
  LayoutComm c;
  if (tp_a <= 0) tp_a = a;
  const double B = double(batch), h = double(s.hidden);
  // `count` all-reduces of [B, hidden] over n ranks, `elem` bytes an element; --tp-comm int8 (an
  // element of about 1 byte) exchanges its codes by an all-gather (parallel/compressed_all_reduce.h).
  auto all_reduce = [&](CommCost& into, double count, double n, double elem) {
    if (n <= 1 || count <= 0) return;
    const double rounds = std::ceil(std::log2(n)), share = 2.0 * (n - 1) / n;
    const CallKind kind = elem < 2 ? CallKind::AllGather : CallKind::AllReduce;
    into.add(kind, count * rounds, count * share * B * h * elem, count * rounds, count * share * B * h * elem);
  };
  // Under --ep every MoE layer's feed-forward ends in one f32 all-reduce over all tp·ep ranks (the
  // tensor-parallel reduction and the expert combine in one, model/decoder_ep.cpp); the attention and
  // the dense layers' feed-forward keep the group's all-reduce (none when tp = 1: replicated).
  const int moe = l.ep > 1 && s.is_moe() ? s.moe_layers() : 0;
  all_reduce(c.tp, double(s.layers), l.tp, tp_a);        // attention, every layer
  all_reduce(c.tp, double(s.layers - moe), l.tp, tp_a);  // the feed-forward of the group's layers
  all_reduce(c.ep, double(moe), double(l.tp) * l.ep, 4);  // MoE layers under --ep: f32 whatever --tp-comm
  // Rank 0's announcements reach every rank of the job (⌈log₂ N⌉ rounds of a binomial tree); the
  // headers (parallel/step_message.h) are a few dozen bytes: priced as calls, their bytes left out,
  // and the forward's payload (ids, positions, block tables) counted as 16 bytes per token.
  const double bcast_rounds = std::ceil(std::log2(double(l.devices())));
  // The gather of the T − 1 other logits slices [B, ⌈vocab/T⌉] f32 into the TP group's first rank (the
  // first group's under --ep; the last stage's under --pp).
  auto gather_logits = [&] {
    const double T = l.tp, slice = std::ceil(double(s.vocab) / T);
    c.protocol.add(CallKind::Gather, 1, B * slice * 4, 1, (T - 1) * B * slice * 4);
  };
  if (l.pp > 1) {
    // The serving engine's fused step (kForwardLogits): rank 0 broadcasts the forward's header and
    // payload, the last stage computes the logits after its layers (gathered inside its first TP
    // group) and its first rank sends the step's rows [B, vocab] f32 back to rank 0, which samples.
    // No LM-head broadcast. Under --ep the same: each stage is a --tp T --ep E job on its layers.
    c.protocol.add(CallKind::Broadcast, 2 * bcast_rounds, B * 16, 2, B * 16);
    if (l.tp > 1) gather_logits();
    c.protocol.add(CallKind::P2p, 1, B * double(s.vocab) * 4, 1, B * double(s.vocab) * 4);
    c.pp.add(CallKind::P2p, l.pp - 1, (l.pp - 1) * B * h * a, l.pp - 1, (l.pp - 1) * B * h * a);
  } else if (l.tp > 1) {
    // Forward header + payload, logits header + the final-normed rows [B, hidden] f32, then the gather.
    c.protocol.add(CallKind::Broadcast, 4 * bcast_rounds, B * h * 4 + B * 16, 4, B * h * 4 + B * 16);
    gather_logits();
  } else if (l.ep > 1) {
    // Expert parallelism alone: the forward's header and payload; rank 0 computes the logits itself.
    c.protocol.add(CallKind::Broadcast, 2 * bcast_rounds, B * 16, 2, B * 16);
  }
  return c;
}

}  // namespace tern::plan
