// Turns a row of logits into the next token: penalties, then temperature, then the top-k, top-p
// and min-p filters, then a draw (or argmax when temperature is 0). One Sampler per sequence:
// it owns the sequence's random stream and the token counts the penalties need.
#pragma once

#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

#include "runtime/sampling_params.h"

namespace tern {

class Sampler {
 public:
  Sampler(const SamplingParams& params, int64_t vocab_size);

  // Tokens of the prompt: they count for the repetition penalty only.
  void add_prompt(const std::vector<int32_t>& ids);
  // A token the sequence produced (counts for all penalties).
  void add_output(int32_t id);

  // logits: [vocab], modified in place (penalties, scaling). Returns the chosen id.
  int32_t sample(float* logits);

  // Speculative verification of one drafted token against this row (exact, Leviathan et al. 2023):
  // p = the distribution sample() would draw from (penalties, temperature, top-k/p, min-p applied),
  // q = the drafter's distribution [vocab] over the position (null: a deterministic drafter, q is a
  // point mass on draft). Greedy: *accepted iff draft is the argmax, which is returned. Sampling:
  // accepts draft with probability min(1, p(draft) / q(draft)) and returns it; otherwise returns a
  // draw from max(0, p - q) renormalized. Either way the returned token is distributed as p.
  int32_t verify(float* logits, int32_t draft, const float* q, bool* accepted);

 private:
  void apply_penalties(float* logits) const;
  int32_t draw(const float* logits);
  // Leaves the tokens that survive the filters in candidates_[0, keep) with their probabilities in
  // probs_[0, keep) (summing to 1); returns keep (>= 1).
  size_t filter(const float* logits);
  size_t pick(const double* weights, size_t n);

  SamplingParams params_;
  int64_t vocab_;
  std::mt19937_64 rng_;
  std::unordered_map<int32_t, int> output_counts_;
  std::vector<uint8_t> seen_;  // [vocab] token appeared in prompt or output (repetition penalty)
  std::vector<std::pair<float, int32_t>> candidates_;  // scratch
  std::vector<double> probs_, residual_;               // scratch, aligned with candidates_
};

// Index of the largest logit (lowest index among equals, as torch.argmax does).
int32_t argmax(const float* logits, int64_t n);

}  // namespace tern
