// What splitting a model over devices costs on the link between them, per decode step (issue 17
// item 6): messages on the critical path × the link's per-message latency + bytes on the critical
// path ÷ its bandwidth. Pure arithmetic on the model's shape.
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
// tern's step protocol on top (`protocol`), measured by bench_tp: rank 0 broadcasts a header and a
// payload before the forward (ids, positions, block tables: small) and before the LM head (the
// final-normed rows [B, hidden] f32), and gathers every TP rank's logits slice [B, ⌈vocab/T⌉] f32;
// under PP the last stage's rows return to rank 0 (one more message of [B, hidden]).
#pragma once

#include <cstdint>
#include <string>

#include "plan/model_shape.h"

namespace tern::plan {

struct Link {
  double gbps = 0;        // Gbit/s per direction (1e9 bits)
  double latency_us = 0;  // one-way time of a short message, software included (bench_link measures it)
  // A token-bucket shaper's bucket (tc tbf's burst, scripts/netns): after an idle gap the first
  // burst_bytes of a message leave at once, only the rest at the rate. 0: a wire, every byte at the rate.
  double burst_bytes = 0;
};

struct CommCost {
  double messages = 0;  // one after another on the critical path
  double bytes = 0;     // through the busiest rank's link, one direction
  // messages × latency + (bytes − what each message's first burst_bytes save) ÷ bandwidth; the
  // messages of one cost are taken as equal in size (true of each layout's own traffic).
  double seconds(const Link& link) const;
  CommCost& operator+=(const CommCost& o) {
    messages += o.messages, bytes += o.bytes;
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

// One decode step of `batch` tokens; `activation_bytes` per element on the link (4: tern's f32 on
// CPUs; 2: bf16; 1 + the scales: --tp-comm int8 applies to `tp` only, via tp_bytes_per_element).
LayoutComm decode_step_comm(const ModelShape& s, const Layout& l, int64_t batch, double activation_bytes,
                            double tp_bytes_per_element = 0);

}  // namespace tern::plan
