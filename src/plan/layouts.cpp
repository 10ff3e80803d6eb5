#include "plan/layouts.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

namespace tern::plan {

namespace {

// The layouts the model allows on n devices: tp divides the attention heads, pp at most the layers,
// ep > 1 only for a mixture of experts whose expert count it divides. pp and ep combine as the engine
// runs them (--tp T --pp P --ep E, parallel/pp_layout.h rank_groups): each of the P stages is a
// single-stage --tp T --ep E job on its layers, so a stage's T·E ranks sum its MoE layers' experts.
std::vector<Layout> candidates(const ModelShape& s, int n) {
  std::vector<Layout> out;
  for (int tp = 1; tp <= n; ++tp) {
    if (n % tp != 0 || s.heads % tp != 0) continue;
    for (int pp = 1; pp <= n / tp; ++pp) {
      if ((n / tp) % pp != 0 || pp > s.layers) continue;
      const int ep = n / tp / pp;
      if (ep > 1 && (!s.is_moe() || s.n_experts % ep != 0)) continue;
      out.push_back({tp, pp, ep});
    }
  }
  return out;
}

// The compute gap a layout's calls are priced at, for the table: the TP / EP collectives', else a stage's.
double call_gap(const LayoutComm& c) {
  for (const CommCost* cost : {&c.tp, &c.ep, &c.pp, &c.protocol}) {
    if (!cost->groups.empty()) return cost->groups.front().gap_s;
  }
  return -1;
}

}  // namespace

Result<LayoutChoice> plan_layouts(const LayoutRequest& r) {
  if (r.devices < 1 || r.devices > 4096) return Status::error(fmt::format("--devices {}: give 1 to 4096", r.devices));
  if (r.link.gbps < 0 || r.link.latency_us < 0) return Status::error("the link's bandwidth and latency must not be negative");
  if (r.devices > 1 && r.link.gbps <= 0 && r.link.fits.empty()) return Status::error("give the link's bandwidth (--link-gbps) to split over devices");
  const ModelShape& s = r.base.model;
  const std::vector<Layout> layouts = candidates(s, r.devices);
  if (layouts.empty()) {
    return Status::error(fmt::format("no TP × PP × EP layout of {} devices fits this model ({} attention heads, {} layers{})",
                                     r.devices, s.heads, s.layers,
                                     s.is_moe() ? fmt::format(", {} experts", s.n_experts) : ", no experts"));
  }
  LayoutChoice choice;
  choice.batch = std::max<int64_t>(1, r.base.concurrency);
  for (const Layout& l : layouts) {
    PlanRequest q = r.base;
    q.tp = l.tp, q.pp = l.pp;
    q.concurrency = choice.batch;
    q.target_output_tok_s = 0;
    q.suggest = false;
    Result<Plan> planned = make_plan(q);
    if (!planned.is_ok()) return planned.status();
    const Plan& p = *planned;
    LayoutPlan lp;
    lp.layout = l;
    // EP splits the routed experts further (under PP, the largest stage's after the split); everything
    // else is replicated over the EP ranks. The KV per device is the plan's: the stage's layers, its
    // KV heads cut tp ways, the same in each of the stage's ep groups.
    WeightBytes b = p.bytes;
    lp.weights_per_device = weights_per_device(q, p.bytes, p.bytes.total, l.tp, l.pp, l.ep);
    lp.used_per_device = lp.weights_per_device + p.memory.kv_total + p.memory.activations + p.memory.overhead;
    lp.capacity = p.memory.capacity;
    lp.fits = lp.used_per_device <= lp.capacity;
    if (!lp.fits) {
      lp.why_not = fmt::format("needs {:.1f} GB per device, {:.1f} GB usable", lp.used_per_device / 1e9, lp.capacity / 1e9);
    }
    // The step's compute: the planner's roofline on a free link, each EP rank streaming its experts.
    b.per_expert /= l.ep;
    q.device.interconnect_gbs = 1e12;
    q.device.interconnect_latency_us = 0;
    const double avg_tokens = double(p.prompt_tokens) + double(p.context - p.prompt_tokens) / 2.0;
    const double act = q.activation_bytes > 0 ? q.activation_bytes : (q.device.is_gpu() ? 2 : 4);
    lp.compute_s = decode_step(q, b, p.memory.kv_per_token, l.tp, l.pp, choice.batch, avg_tokens).seconds;
    lp.comm = decode_step_comm(s, l, choice.batch, act, r.tp_bytes_per_element);
    // Each call at the compute before it (a measured link's α grows with it): the roofline's step.
    set_compute_gaps(lp.comm, l, lp.compute_s);
    lp.call_gap_s = call_gap(lp.comm);
    lp.comm_s = lp.comm.seconds(r.link);
    for (double added : r.added_latency_us) {
      Link slower = r.link;
      slower.added_latency_us += added;
      lp.comm_s_added.push_back(lp.comm.seconds(slower));
    }
    // The prompt: ⌈prompt / chunk⌉ steps of `chunk` rows, the layout's own traffic each, the
    // protocol once (one row's logits are gathered).
    lp.prompt_tokens = p.prompt_tokens;
    const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(q.chunk_tokens > 0 ? q.chunk_tokens : (q.device.is_gpu() ? 2048 : 512),
                                                                 p.prompt_tokens));
    const int64_t chunks = (p.prompt_tokens + chunk - 1) / chunk;
    LayoutComm pc = decode_step_comm(s, l, chunk, act, r.tp_bytes_per_element);
    pc.protocol = CommCost{};
    if (p.prefill_tok_s > 0) set_compute_gaps(pc, l, double(chunk) / p.prefill_tok_s);
    lp.prompt_comm_s = double(chunks) * pc.seconds(r.link) + lp.comm.protocol.seconds(r.link);
    choice.layouts.push_back(lp);
  }
  for (size_t i = 0; i < choice.layouts.size(); ++i) {
    const LayoutPlan& lp = choice.layouts[i];
    if (!lp.fits) continue;
    if (choice.chosen < 0 || lp.step_s() < choice.layouts[size_t(choice.chosen)].step_s()) choice.chosen = int(i);
  }
  return choice;
}

std::string layouts_to_table(const LayoutRequest& r, const LayoutChoice& c) {
  const bool fits = !r.link.fits.empty();
  std::string o = fits ? fmt::format("tern plan: {} on {} × {}, link priced by bench_link's fits ({}), {} sequence(s) per step\n",
                                     r.base.model.name, r.devices, r.base.device.id, r.link_fits_source, c.batch)
                       : fmt::format("tern plan: {} on {} × {}, link {} Gbit/s, {} us per message, {} sequence(s) per step\n",
                                     r.base.model.name, r.devices, r.base.device.id, r.link.gbps, r.link.latency_us, c.batch);
  std::string added_head;
  for (double a : r.added_latency_us) added_head += fmt::format(" {:>11}", fmt::format("+{:.0f}us", a));
  o += fmt::format("  {:<12} {:>9} {:>6} {:>10} {:>9} {:>10} {:>10} {:>9}{} {:>9} {:>8} {:>13}{}\n", "layout", "GB/dev",
                   "fits", "compute ms", "msgs/tok", "KB/tok", "comm ms/tok", "comm %", added_head, "step ms", "tok/s",
                   "prompt comm s", fits ? fmt::format(" {:>11}", "call gap us") : "");
  for (size_t i = 0; i < c.layouts.size(); ++i) {
    const LayoutPlan& l = c.layouts[i];
    const CommCost t = l.comm.total();
    const double per_tok = 1.0 / double(c.batch);
    std::string added;
    for (double a : l.comm_s_added) added += fmt::format(" {:>11.3f}", a * per_tok * 1e3);
    o += fmt::format("{} {:<12} {:>9.2f} {:>6} {:>10.3f} {:>9.1f} {:>10.1f} {:>10.3f} {:>8.1f}%{} {:>9.3f} {:>8.2f} {:>13.3f}{}\n",
                     int(i) == c.chosen ? "*" : " ", l.layout.name(), l.weights_per_device / 1e9, l.fits ? "yes" : "NO",
                     l.compute_s * 1e3, t.messages * per_tok, t.bytes * per_tok / 1e3, l.comm_s * per_tok * 1e3,
                     100 * l.comm_share(), added, l.step_s() * 1e3, double(c.batch) / l.step_s(), l.prompt_comm_s,
                     fits ? (l.call_gap_s >= 0 ? fmt::format(" {:>11.0f}", l.call_gap_s * 1e6) : fmt::format(" {:>11}", "-")) : "");
  }
  o += fits ? "  comm per token = Σ over the step's calls of α(gap) + β × bytes, per kind of call (bench_link's fits; α at the\n"
              "  compute before each call, 'call gap': the roofline's step ÷ the calls, a stage's under PP); +Nus: N µs more per message\n"
            : "  comm per token = messages × latency + bytes ÷ bandwidth; +Nus: with N µs more per message\n";
  if (!c.layouts.empty()) {
    o += fmt::format("  prompt comm: what the link adds to the time to first token of a {}-token prompt\n",
                     c.layouts[0].prompt_tokens);
  }
  o += "  (TP: 2 all-reduces per layer; PP: one send per stage boundary; EP: a MoE layer's all-reduce spans tp·ep;\n"
       "   plus tern's step protocol: rank 0's broadcasts and the logits gather)\n";
  if (c.chosen >= 0) {
    const LayoutPlan& l = c.layouts[size_t(c.chosen)];
    o += fmt::format("chosen: {} ({:.2f} tok/s per sequence, {:.0f}% of the step on the link)\n", l.layout.name(),
                     1.0 / l.step_s(), 100 * l.comm_share());
  } else {
    o += "no layout fits: more devices, smaller weights (-w) or a shorter context\n";
  }
  return o;
}

std::string layouts_to_json(const LayoutRequest& r, const LayoutChoice& c) {
  nlohmann::ordered_json j;
  j["model"] = r.base.model.name;
  j["device"] = r.base.device.id;
  j["devices"] = r.devices;
  j["link"] = {{"gbps", r.link.gbps}, {"latency_us", r.link.latency_us},
               {"priced_by", r.link.fits.empty() ? "rate_and_latency" : "bench_link_fits"}, {"fits_file", r.link_fits_source}};
  j["batch"] = c.batch;
  j["added_latency_us"] = r.added_latency_us;
  j["chosen"] = c.chosen >= 0 ? nlohmann::ordered_json(c.layouts[size_t(c.chosen)].layout.name()) : nlohmann::ordered_json();
  j["layouts"] = nlohmann::ordered_json::array();
  for (const LayoutPlan& l : c.layouts) {
    auto cost = [](const CommCost& x) { return nlohmann::ordered_json{{"messages", x.messages}, {"bytes", x.bytes}}; };
    j["layouts"].push_back({{"name", l.layout.name()}, {"tp", l.layout.tp}, {"pp", l.layout.pp}, {"ep", l.layout.ep},
                            {"fits", l.fits}, {"why_not", l.why_not}, {"weights_per_device", l.weights_per_device},
                            {"used_per_device", l.used_per_device}, {"capacity", l.capacity},
                            {"comm_per_step", {{"tp", cost(l.comm.tp)}, {"pp", cost(l.comm.pp)}, {"ep", cost(l.comm.ep)},
                                               {"protocol", cost(l.comm.protocol)}}},
                            {"compute_s", l.compute_s}, {"comm_s", l.comm_s}, {"comm_s_added_latency", l.comm_s_added},
                            {"step_s", l.step_s()}, {"prompt_tokens", l.prompt_tokens}, {"prompt_comm_s", l.prompt_comm_s}, {"comm_s_per_token", l.comm_s / double(c.batch)}, {"call_gap_s", l.call_gap_s},
                            {"decode_tok_s_per_seq", 1.0 / l.step_s()}});
  }
  return j.dump(2);
}

}  // namespace tern::plan
