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
  if (l.tp > 1) {
    const double T = l.tp;
    const double reduces = 2.0 * s.layers;
    c.tp.messages = reduces * std::ceil(std::log2(T));
    c.tp.bytes = reduces * 2.0 * (T - 1) / T * B * h * tp_a;
    // Rank 0's broadcasts (forward header + payload, logits header + the [B, hidden] f32 rows; the
    // forward payload is ids and block tables: a few bytes per token, counted as 16) and the gather
    // of the T − 1 other logits slices into rank 0.
    const double slice = std::ceil(double(s.vocab) / T);
    c.protocol.messages += 5;
    c.protocol.bytes += B * h * 4 + B * 16 + (T - 1) * B * slice * 4;
  }
  if (l.pp > 1) {
    c.pp.messages = l.pp - 1;
    c.pp.bytes = (l.pp - 1) * B * h * a;
    c.protocol.messages += 1;  // the last stage's rows back to rank 0, which samples
    c.protocol.bytes += B * h * 4;
  }
  if (l.ep > 1 && s.is_moe()) {
    const double E = l.ep;
    const double layers = s.moe_layers();
    const double copies = B * std::max(s.experts_per_token, 1);
    c.ep.messages = layers * 2.0 * (E - 1);
    c.ep.bytes = layers * 2.0 * copies * h * a * (E - 1) / E;
  }
  return c;
}

}  // namespace tern::plan
