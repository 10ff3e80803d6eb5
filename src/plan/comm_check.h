// tern plan --check --measured FILE: the planner's communication per decode token (plan/comm_cost.h)
// next to what bench_tp measured over the shaped link between two network namespaces
// (bench/netns_tp.sh writes FILE: one JSON line per run, and one per link with bench_link's latency).
//
// The link is priced from the file's own link rows (bench_link under the same shaping, run apart
// from the decode runs): per kind of call α + β · bytes (plan/link_fit.h), else bench_link's one-way
// latency and the rate. Compared per run, bound ±20% (the target):
// - TP: the all-reduces' cost over the link (bench_tp's all_reduce_link_s_per_token: per call the
//   fastest rank's time, so neither rank's late arrival counts; --tp-comm int8's all-gathers
//   included) against the TP term, and every collective of the step (comm_link_s_per_token: the
//   broadcasts and the logits gather too) against the TP term + the protocol; rank 0's time in
//   every call (comm_s_per_token, which also holds waits for the other rank's compute): report only.
// - PP: the step's time less every stage's own work (bench_pp's comm_critical_s_per_token: at batch 1
//   the stages run one after another, so what remains is the link) against the PP term + protocol.
// - TTFT runs: the prompt's all-reduces (TP) or its sends (PP: bench_pp's prefill_p2p_link_s, each
//   send from its start to the end of its receive; the older prefill_comm_critical_s, the prompt
//   less the stages' work, is a difference of two windows of seconds: report only).
// Each call is priced at the compute gap before it (bench_link's α(gap), where the file has it): the
// run's own compute per step cut between its calls (measured_compute_s, set_compute_gaps).
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "plan/comm_cost.h"
#include "plan/model_shape.h"

namespace tern::plan {

struct CommMeasurement {
  std::string rate, model, layout;  // "10gbit", "llama-1b", "tp2" (bench/netns_tp.sh's tags; may be empty)
  std::string kind = "decode";      // "decode" or "ttft" (a long prompt: its prefill is compared)
  int64_t prompt_tokens = 0;
  double prefill_all_reduce_link_s = 0;  // the prompt's all-reduces over the link (ttft runs, TP)
  double prefill_comm_critical_s = 0;    // the prompt's step less the stages' work (ttft runs, PP)
  double comm_link_s_per_token = 0;      // TP: every collective of a decode step at its fastest rank
  double comm_critical_s_per_token = 0;  // PP: a decode step less the stages' work
  int ranks = 0;
  double decode_tok_s = 0;
  double all_reduce_link_s_per_token = 0, comm_s_per_token = 0, all_reduce_bytes_per_token = 0;
  // What the ranks computed, for the compute gap before each call (measured_compute_s):
  double ttft_s = 0, prefill_comm_s = 0;  // the prompt's time and rank 0's time in calls during it
  double stage_work_s_per_token = 0;      // PP: Σ over the stages of their own work per decode step
  // PP prompt: each send timed from its start on the sender to the end of the receive (bench_pp).
  double prefill_p2p_link_s = 0;
  double load = -1;          // the 1-minute load average when it ran (-1: not recorded)
  double link_latency_us = 0;  // bench_link's one-way latency at this rate (0: none in the file)
  double link_burst_bytes = 0; // the shaper's bucket at this rate (bench/netns_tp.sh's link row; 0: none)
  LinkFits link_fits;          // bench_link's α, β per kind of call at this rate (empty: none in the file)
};

// "10gbit" → 10, "500mbit" → 0.5; an error for anything else ("none", "shm": no shaped link).
Result<double> parse_rate_gbps(const std::string& rate);

// The decode and TTFT runs of a bench/netns_tp.sh results file, or of bench_tp's / bench_pp's raw
// output (lines with decode_tok_s and all_reduce_link_s_per_token or comm_critical_s_per_token).
// A link row's "rows" may hold bench_link's fits ({"fit": kind, "alpha_us", "beta_ns_per_byte"}); a
// link row with a "model" (bench_link run with that model's compute between calls) serves that
// model's runs at its rate, one without serves the others. `model` keeps the runs of that model name only
// ("" = all). Errors name the file and line of a malformed JSON line.
Result<std::vector<CommMeasurement>> parse_comm_measurements(const std::string& text, const std::string& source,
                                                             const std::string& model);

// The layout a run used: "tp2" → tp 2, "pp2" → pp 2, "tp2-int8" → tp 2 with the int8 all-reduce
// (1 byte per element + an f32 scale per row of `hidden`); "" → tp = ranks.
struct MeasuredLayout {
  Layout layout;
  double tp_bytes_per_element = 4;
};
Result<MeasuredLayout> measured_layout(const CommMeasurement& m, int64_t hidden);

struct CommCheckRow {
  std::string what;
  double predicted_s = 0, measured_s = 0;
  double bound = 0;  // allowed |error|; 0: report only
  double gap_s = -1; // the compute before each call it was priced at (TP: per collective; PP: a stage)
  double error() const { return measured_s > 0 ? (predicted_s - measured_s) / measured_s : 0; }
  bool within() const;
};

// The compute of a run's step (decode: per token; ttft: the prompt's), from the run itself: the
// compute gap each call is priced at (plan/comm_cost.h set_compute_gaps). Measured rather than the
// planner's roofline: --check tests the link's model, so it takes the ranks' compute as it was
// (TP: the step less rank 0's time in calls; PP: bench_pp's stages' own work). 0: not in the run.
double measured_compute_s(const CommMeasurement& m, const MeasuredLayout& ml);

// The rows for one run over `link` (the rate's bandwidth and the latency to price with). A TTFT run
// compares its prompt's all-reduces (one step of prompt_tokens rows) instead of a decode token's.
std::vector<CommCheckRow> check_comm(const ModelShape& s, const CommMeasurement& m, const MeasuredLayout& ml,
                                     const Link& link);

}  // namespace tern::plan
