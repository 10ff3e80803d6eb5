// A link described by what its calls cost (issue 17 item 6): one kind of call (an all-reduce, a
// send, ...) of b bytes takes α + β·b seconds — α the per-call cost (the software on both sides,
// waking the waiting rank, the wire's latency), β the per-byte cost (1 / the bandwidth the call
// reaches). bench_link times each kind over a sweep of sizes; fit_link fits the line.
//
// The fit minimises the *relative* error Σ ((α + β·bᵢ − tᵢ) / tᵢ)² (weights 1 / tᵢ²): the sizes span
// 8 bytes to 4 MiB and times 10 µs to 50 ms, and an unweighted fit would let the largest messages
// set α too. α and β are kept ≥ 0 (a line through the origin, or a flat one, when the data say so).
//
// α depends on the compute before the call (GapFit): on a shared VM a rank that computed for
// milliseconds and then calls finds its peer (or itself) slower to get going than one that calls
// back to back — the decode's small all-reduces cost more than back-to-back calls, and how much
// more grows with the gap and levels off. bench_link measures α at several gaps g (β held at the
// line's) and fit_alpha_gap fits α(g) = α₀ + w · (1 − e^(−g/τ)): α₀ back to back, w what a long gap
// adds, τ how soon it levels off.
#pragma once

#include <vector>

namespace tern::plan {

struct LinkSample {
  double bytes = 0;
  double seconds = 0;
};

struct LinkFit {
  double alpha_s = 0;          // per call
  double beta_s_per_byte = 0;  // per byte of the call's payload (what each rank hands over)
  double max_rel_residual = 0; // max |fit − t| / t over the samples
  bool empty() const { return alpha_s <= 0 && beta_s_per_byte <= 0; }
  double seconds(double bytes) const { return alpha_s + beta_s_per_byte * bytes; }
};

// Samples with seconds ≤ 0 are ignored; none left: an empty fit. One size: α = its time, β = 0.
LinkFit fit_link(const std::vector<LinkSample>& samples);

// α at one gap with β held: the relative-weighted mean of tᵢ − β·bᵢ (≥ 0; 0 for no samples).
double alpha_at_beta(const std::vector<LinkSample>& samples, double beta_s_per_byte);

struct GapPoint {
  double gap_s = 0;    // compute before each call
  double alpha_s = 0;  // α measured at that gap
};

struct GapFit {
  double alpha0_s = 0;  // back to back
  double wake_s = 0;    // what a long gap adds (may be < 0 if the data say so)
  double tau_s = 0;     // > 0 once fitted
  double max_rel_residual = 0;
  std::vector<GapPoint> points;  // what it was fitted to (kept in the fits file)
  bool empty() const { return points.empty(); }
  double alpha(double gap_s) const;  // α₀ + w · (1 − e^(−g/τ)), g < 0 taken as 0
};

// α at each gap from the sweep's samples (at_gap[i]: the sizes timed after gaps_s[i], the same sizes
// at every gap). The smallest gap's samples give the line (α₀, β: back to back, the copies and the
// wire); each gap's α is α₀ plus the median over the sizes of its time less the line at that size —
// the wake-up is per call, the same for every size (the median: one size hit by a scheduling hiccup
// does not move it). Sizes the back-to-back run lacks are skipped; α is kept ≥ 1 ns.
struct GapAlphas {
  double beta_s_per_byte = 0;
  std::vector<GapPoint> points;
};
GapAlphas alphas_by_gap(const std::vector<double>& gaps_s, const std::vector<std::vector<LinkSample>>& at_gap);

// Relative least squares over the points (weights 1 / αᵢ², αᵢ floored at a quarter of the median α so
// that one near-zero point cannot carry the fit): τ from a log grid of 20 µs .. 50 ms,
// α₀ and w linear for each τ. One point (or all at one gap): α₀ = their mean, w = 0. Points with
// α ≤ 0 are ignored; none left: an empty fit.
GapFit fit_alpha_gap(const std::vector<GapPoint>& points);

}  // namespace tern::plan
