#include "plan/comm_cost.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace tern::plan {

double CommCost::seconds(const Link& link) const {
  const double bw = link.gbps > 0 ? link.gbps * 1e9 / 8 : 0;
  double shaped = bytes;
  if (link.burst_bytes > 0 && messages > 0) shaped = messages * std::max(0.0, bytes / messages - link.burst_bytes);
  return messages * link.latency_us * 1e-6 + (bw > 0 ? shaped / bw : 0);
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
  // `count` all-reduces of [B, hidden] over n ranks, `elem` bytes an element.
  auto all_reduce = [&](CommCost& into, double count, double n, double elem) {
    if (n <= 1 || count <= 0) return;
    into.messages += count * std::ceil(std::log2(n));
    into.bytes += count * 2.0 * (n - 1) / n * B * h * elem;
  };
  // Under --ep every MoE layer's feed-forward ends in one f32 all-reduce over all tp·ep ranks (the
  // tensor-parallel reduction and the expert combine in one, model/decoder_ep.cpp); the attention and
  // the dense layers' feed-forward keep the group's all-reduce (none when tp = 1: replicated).
  const int moe = l.ep > 1 && s.is_moe() ? s.moe_layers() : 0;
  all_reduce(c.tp, double(s.layers), l.tp, tp_a);        // attention, every layer
  all_reduce(c.tp, double(s.layers - moe), l.tp, tp_a);  // the feed-forward of the group's layers
  all_reduce(c.ep, double(moe), double(l.tp) * l.ep, 4);  // MoE layers under --ep: f32 whatever --tp-comm
  if (l.tp > 1) {
    const double T = l.tp;
    // Rank 0's broadcasts (forward header + payload, logits header + the [B, hidden] f32 rows; the
    // forward payload is ids and block tables: a few bytes per token, counted as 16) and the gather
    // of the T − 1 other logits slices into rank 0 (under --ep the first group's).
    const double slice = std::ceil(double(s.vocab) / T);
    c.protocol.messages += 5;
    c.protocol.bytes += B * h * 4 + B * 16 + (T - 1) * B * slice * 4;
  } else if (l.ep > 1) {
    // Expert parallelism alone: the forward's header and payload; rank 0 alone computes the logits.
    c.protocol.messages += 2;
    c.protocol.bytes += B * 16;
  }
  if (l.pp > 1) {
    c.pp.messages = l.pp - 1;
    c.pp.bytes = (l.pp - 1) * B * h * a;
    c.protocol.messages += 1;  // the last stage's rows back to rank 0, which samples
    c.protocol.bytes += B * h * 4;
  }
  return c;
}

}  // namespace tern::plan
