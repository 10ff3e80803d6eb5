// bench_link's fits as a file (issue 17 item 6): what `tern plan --devices N --link-fits FILE` and
// `tern plan --check --measured FILE` price a link with. Two shapes are read:
// - bench_link's own output (one JSON object a line; mpirun's banners and other lines skipped):
//   {"fit": kind, "min_bytes", "max_bytes", "alpha_us", "beta_ns_per_byte", ...} per kind and size
//   range, and since fits_version 2 {"alpha_gap": kind, "min_bytes", "max_bytes", "beta_ns_per_byte",
//   "alpha0_us", "wake_us", "tau_us", "points": [[gap_us, alpha_us], ...]} per kind (α as a function
//   of the compute before the call). A version 1 file has no alpha_gap rows: its α is the one at
//   the gap bench_link ran with, whatever the model's.
// - bench/netns_tp.sh's results.jsonl: the same rows inside {"kind": "link", "rate", "rows": [...]}
//   lines, one link per rate (and model): pick the rate with rate_gbps.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/status.h"
#include "plan/comm_cost.h"

namespace tern::plan {

// The rows bench_link writes (and read_link_fit_row reads back): a size range's line at `gap_us`,
// and a kind's α(gap) (`gap_work`: what the ranks did in the gaps, "stream" or "spin").
nlohmann::ordered_json link_fit_row(CallKind k, const RangedFit& f, double gap_us);
nlohmann::ordered_json gap_fit_row(CallKind k, const RangedGapFit& f, const std::string& gap_work);

// One of bench_link's fit rows into `into`: true if `row` was one; false for any other object (a
// size row, the summary). A fit row with an unknown kind or without its numbers is an error.
Result<bool> read_link_fit_row(const nlohmann::json& row, LinkFits& into);

// The fits of `text` (read from `source`, named in errors with the line). rate_gbps > 0 picks a
// results.jsonl's link at that rate ("10gbit" = 10); 0 takes the only rate there is. Errors: a line
// that is not JSON, no fit rows, several rates and none picked or none matching.
Result<LinkFits> parse_link_fits(const std::string& text, const std::string& source, double rate_gbps);

}  // namespace tern::plan
