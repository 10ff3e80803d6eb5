// Which way to split a model over N devices joined by a link (issue 17 item 6): every TP × PP × EP
// layout with tp·pp·ep = N that the model allows, each priced — memory per device, the decode step's
// compute (the planner's roofline with a free link) and its communication (plan/comm_cost.h) at the
// link's latency and at that latency plus each `added_latency_us` — and the fastest that fits chosen.
// With bench_link's fits in the link (tern plan --link-fits FILE) each call is priced α(gap) + β·bytes,
// the gap being the roofline's compute before it (plan/comm_cost.h set_compute_gaps).
//
// Under EP (MoE only) attention, dense layers and shared experts are replicated on the EP groups
// (cut tp ways in each) and the routed experts split: a decode step streams 1/ep of the experts it
// visits per rank, and each MoE layer all-reduces over all tp·ep ranks (plan/comm_cost.h). Under
// PP × EP each stage is a --tp T --ep E job on its layers (parallel/pp_layout.h): a device holds its
// stage's layers with 1/ep of their experts and the stage's KV; the step adds PP's sends between
// stages and the last stage's logits back to rank 0.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "plan/comm_cost.h"
#include "plan/planner.h"

namespace tern::plan {

struct LayoutRequest {
  PlanRequest base;  // model, precisions, device, context, prompt, concurrency (0: 1 sequence)
  int devices = 2;
  Link link;
  std::vector<double> added_latency_us = {50, 200};
  double tp_bytes_per_element = 0;  // the TP all-reduce's element size (0: the activations'; ~1 for --tp-comm int8)
  std::string link_fits_source;     // where link.fits came from (the table names it); "" when none
};

struct LayoutPlan {
  Layout layout;
  bool fits = false;
  std::string why_not;           // the memory that does not fit
  double weights_per_device = 0;  // bytes
  double used_per_device = 0;     // weights + KV of the planned sequences + activations + runtime
  double capacity = 0;
  LayoutComm comm;                // per decode step, each call group with its compute gap
  double call_gap_s = -1;         // the compute before each TP / EP collective (PP: a stage's), priced with it
  double compute_s = 0;           // the step's roofline with a free link (fixed costs included)
  double comm_s = 0;              // at link.latency_us
  std::vector<double> comm_s_added;  // at latency + each added_latency_us
  // The communication of one prompt of base.prompt_tokens (in chunks of base.chunk_tokens: TP's
  // all-reduces and PP's sends of [chunk, hidden] per chunk): what it adds to the time to first token.
  double prompt_comm_s = 0;
  int64_t prompt_tokens = 0;
  double step_s() const { return compute_s + comm_s; }
  double comm_share() const { return comm_s / step_s(); }
};

struct LayoutChoice {
  std::vector<LayoutPlan> layouts;  // every valid layout, in (tp, pp, ep) order
  int chosen = -1;                  // the fastest that fits; -1: none fits
  int64_t batch = 1;
};

// Errors: fewer than 1 device, no layout the model allows (e.g. 3 devices for 32 heads and 16 layers).
Result<LayoutChoice> plan_layouts(const LayoutRequest& r);

std::string layouts_to_table(const LayoutRequest& r, const LayoutChoice& c);
std::string layouts_to_json(const LayoutRequest& r, const LayoutChoice& c);

}  // namespace tern::plan
