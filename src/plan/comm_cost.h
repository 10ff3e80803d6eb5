// What splitting a model over devices costs on the link between them, per decode step (issue 17
// item 6). Pure arithmetic on the model's shape, priced two ways:
// - a link given by its rate and latency (--link-gbps, --link-latency-us): messages on the critical
//   path × the per-message latency + bytes on the critical path ÷ the bandwidth;
// - a link measured by bench_link (Link::fits): each kind of call the step makes (all-reduce,
//   all-gather, gather, broadcast, send) priced as calls × α + payload bytes × β of that kind's fit
//   (plan/link_fit.h). The step's calls are counted here, per kind (CommCost::calls).
//
// The layouts' inherent traffic (`model`), for a step of B tokens, activations of `a` bytes:
// - TP = T: two all-reduces per layer (after attention's o and the MLP's down) of [B, hidden]:
//   each ⌈log₂ T⌉ messages (recursive doubling, what MPI does for the small messages of decode)
//   and 2(T−1)/T × B·hidden·a bytes through each rank's link (ring bandwidth; T = 2: the whole
//   vector once each way, as MPI's pairwise exchange sends it).
// - PP = P: one send of the activations [B, hidden] per stage boundary: P − 1 messages, stages
//   one after another for one step.
// - EP = E (MoE only), as tern runs it (docs/parallel.md): every rank runs every token through the
//   attention (cut T ways in its group) and the router, holds 1/E of the routed experts (each cut T
//   ways), and each MoE layer ends in ONE all-reduce of [B, hidden] f32 over all T·E ranks — no
//   all-to-all (the tokens are already everywhere), and --tp-comm int8 does not apply to it. The
//   attention all-reduce (and the dense layers' feed-forward one) stays in the T ranks of a group.
//   So tp2×ep2 on a 48-layer all-MoE model: 48 all-reduces over 2 ranks plus 48 over 4 per step.
// - PP × EP (--tp T --pp P --ep E, parallel/pp_layout.h): each stage is a --tp T --ep E job on its
//   layers, the stages one after another: the sums above over all layers, plus PP's P − 1 sends.
// tern's step protocol on top (`protocol`), measured by bench_tp: rank 0 broadcasts a header and a
// payload before the forward (ids, positions, block tables: small) and before the LM head (the
// final-normed rows [B, hidden] f32), and gathers every TP rank's logits slice [B, ⌈vocab/T⌉] f32;
// under PP (the serving engine's fused step, kForwardLogits) rank 0 broadcasts the forward's header
// and payload, the last stage gathers its TP slices (T > 1) and sends the logits [B, vocab] f32 back
// to rank 0 (no LM-head broadcast). Broadcasts span all N ranks: ⌈log₂ N⌉ calls each.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "plan/link_fit.h"
#include "plan/model_shape.h"

namespace tern::plan {

// The kinds of call a step makes (the communicator's, parallel/communicator.h).
enum class CallKind : uint8_t { AllReduce, AllGather, Gather, Broadcast, P2p };
constexpr int kCallKinds = 5;
const char* call_kind_name(CallKind k);  // "all_reduce", "all_gather", "gather", "broadcast", "p2p" (bench_link's)

// Per kind, α and β of one call between two ranks as bench_link measured them, each fitted over a
// range of sizes (a shaper's bucket makes small messages cheaper per byte than large ones, so one
// line over 8 B .. 4 MiB fits neither end: bench_link fits the decode sizes and the prompt sizes
// apart). A call is priced by the fit whose range holds its size, else the nearest range's.
struct RangedFit {
  double min_bytes = 0, max_bytes = 0;
  LinkFit fit;
};
// α as a function of the compute before the call (bench_link's gap sweep, plan/link_fit.h) for the
// calls of min_bytes .. max_bytes (the decode's sizes), with its own β (the back-to-back line's: the
// wake-up is per call, not per byte).
struct RangedGapFit {
  double min_bytes = 0, max_bytes = 0;
  double beta_s_per_byte = 0;
  GapFit alpha;
};
struct LinkFits {
  std::vector<RangedFit> kind[kCallKinds];
  std::vector<RangedGapFit> gap[kCallKinds];  // empty: α does not depend on the gap (a version 1 fits file)
  bool has(CallKind k) const { return !kind[int(k)].empty(); }
  bool has_gap(CallKind k) const { return !gap[int(k)].empty(); }
  bool empty() const;
  void add(CallKind k, const RangedFit& f);  // kept in order of min_bytes
  void add(CallKind k, const RangedGapFit& f);
  // The fit for one call of `bytes` (has(k) must hold).
  const LinkFit& at(CallKind k, double bytes) const;
  // One call of `bytes` after `gap_s` seconds of compute: α(gap) + β·bytes where a gap fit's range
  // holds the size and gap_s ≥ 0, else the size range's α + β·bytes (has(k) must hold).
  double call_seconds(CallKind k, double bytes, double gap_s) const;
};

struct Link {
  double gbps = 0;        // Gbit/s per direction (1e9 bits)
  double latency_us = 0;  // one-way time of a short message, software included (bench_link measures it)
  // A token-bucket shaper's bucket (tc tbf's burst, scripts/netns): after an idle gap the first
  // burst_bytes of a message leave at once, only the rest at the rate. 0: a wire, every byte at the rate.
  double burst_bytes = 0;
  // Latency added to every message on top of either pricing ("what if the machines were farther
  // apart": --added-latency-us; netem is not in these kernels, so it is priced, not measured).
  double added_latency_us = 0;
  // Measured per-call costs; where the fit of every kind a cost uses is here, it prices the cost
  // instead of latency, rate and bucket.
  LinkFits fits;
};

// Calls of one kind as bench_link times them between two ranks: `calls` of them, `payload` bytes
// handed over by each rank in all. Over n > 2 ranks a call is priced as ⌈log₂ n⌉ two-rank calls and
// 2(n−1)/n of its payload (an extrapolation: bench_link measures 2 ranks).
struct CallGroup {
  CallKind kind = CallKind::AllReduce;
  double calls = 0, payload = 0;
  double gap_s = -1;  // compute before each call (set_compute_gaps); < 0: unknown, the fit's own gap
};

struct CommCost {
  double messages = 0;  // one after another on the critical path
  double bytes = 0;     // through the busiest rank's link, one direction
  std::vector<CallGroup> groups;  // the same traffic as calls by kind (what a fitted link prices)
  // With fits for every group's kind: Σ calls × α + payload × β (+ added latency per message).
  // Otherwise messages × latency + (bytes − what each message's first burst_bytes save) ÷ bandwidth;
  // the messages of one cost are taken as equal in size (true of each layout's own traffic).
  double seconds(const Link& link) const;
  bool priced_by_fits(const Link& link) const;
  void add(CallKind kind, double calls, double payload, double messages, double bytes) {
    this->messages += messages, this->bytes += bytes;
    if (calls > 0) groups.push_back({kind, calls, payload});
  }
  CommCost& operator+=(const CommCost& o) {
    messages += o.messages, bytes += o.bytes;
    groups.insert(groups.end(), o.groups.begin(), o.groups.end());
    return *this;
  }
};

struct Layout {
  int tp = 1, pp = 1, ep = 1;
  int devices() const { return tp * pp * ep; }
  std::string name() const;  // "tp2", "tp2×pp2", "ep4"
};

struct LayoutComm {
  CommCost tp, pp, ep;  // the layout's inherent traffic, by kind (ep: the MoE layers' all-reduce over tp·ep)
  CommCost protocol;    // tern's step broadcasts, logits gather, the return to rank 0
  CommCost model() const {
    CommCost c = tp;
    c += pp, c += ep;
    return c;
  }
  CommCost total() const {
    CommCost c = model();
    c += protocol;
    return c;
  }
  // Each kind priced on its own (their messages differ in size: a shaper's bucket saves per message).
  double seconds(const Link& link) const {
    return tp.seconds(link) + pp.seconds(link) + ep.seconds(link) + protocol.seconds(link);
  }
};

// Sets each call group's compute gap from the step's compute (seconds, one replica, the link free):
// the time a rank works before each call, which a measured link's α depends on (bench_link's sweep).
// - P2p sends (PP), and under PP the step's broadcasts: one stage's compute, step_compute_s / pp
//   (the sender computed its layers; the receivers waited that long);
// - every other collective (TP / EP all-reduces, TP's broadcasts and logits gather): the step's
//   compute cut evenly between those calls, step_compute_s / their count per step (under PP: a
//   stage's compute over its own calls, the same ratio).
// step_compute_s ≤ 0 leaves the gaps unknown.
void set_compute_gaps(LayoutComm& c, const Layout& l, double step_compute_s);

// One decode step of `batch` tokens; `activation_bytes` per element on the link (4: tern's f32 on
// CPUs; 2: bf16; 1 + the scales: --tp-comm int8 applies to `tp` only, via tp_bytes_per_element).
LayoutComm decode_step_comm(const ModelShape& s, const Layout& l, int64_t batch, double activation_bytes,
                            double tp_bytes_per_element = 0);

}  // namespace tern::plan
