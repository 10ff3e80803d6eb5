// A link described by what its calls cost (issue 17 item 6): one kind of call (an all-reduce, a
// send, ...) of b bytes takes α + β·b seconds — α the per-call cost (the software on both sides,
// waking the waiting rank, the wire's latency), β the per-byte cost (1 / the bandwidth the call
// reaches). bench_link times each kind over a sweep of sizes; fit_link fits the line.
//
// The fit minimises the *relative* error Σ ((α + β·bᵢ − tᵢ) / tᵢ)² (weights 1 / tᵢ²): the sizes span
// 8 bytes to 4 MiB and times 10 µs to 50 ms, and an unweighted fit would let the largest messages
// set α too. α and β are kept ≥ 0 (a line through the origin, or a flat one, when the data say so).
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

}  // namespace tern::plan
