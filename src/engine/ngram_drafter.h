// Prompt lookup ("n-gram") drafting, no extra model: the longest suffix of the sequence (n tokens,
// n in [prompt_lookup_min, prompt_lookup_max]) that occurred earlier in its own prompt + output is
// found; at its most recent such occurrence, the tokens that followed it are the proposal.
// Copy-heavy requests (repeat, quote, edit a passage; code edits) continue what they already
// contain, and so do the loops small models fall into.
//
// The proposal's length follows the evidence: a match of n tokens proposes up to 2^(n-1) tokens
// (1, 2, 4, 8 ...: each further token of agreeing context doubles it), capped by the engine's
// max_tokens. Measured on docs-llama-28m's greedy continuations (bench_spec_drafter), the first
// drafted token stands ~38% of the time after a 1-token match, ~56% after 2, ~80% after 3-4 and
// 87-97% after 8 or more, and a verify row costs ~17% of a one-row step: a long match pays for many
// rows, a one-token match for one. One-token matches are tentative (DraftSlot::tentative): the
// engine stops asking for those for a while after one was wholly rejected (DraftPacer).
#pragma once

#include <span>

#include "engine/drafter.h"

namespace tern {

class NgramDrafter final : public Drafter {
 public:
  NgramDrafter(int min_n, int max_n) : min_n_(min_n), max_n_(max_n) {}
  const char* name() const override { return "ngram"; }
  bool sizes_drafts() const override { return true; }
  Status propose(std::vector<DraftSlot>& slots) override;

  // The longest suffix of tokens, n tokens with n in [min_n, max_n], that occurs earlier in tokens
  // (ending before the last token, so something follows it); among equally long ones the most
  // recent (a copy in progress matches where it is copying from). n = 0: none.
  struct Match {
    int64_t n = 0;
    int64_t next = 0;  // index of the token that followed the occurrence
  };
  static Match longest_match(std::span<const int32_t> tokens, int min_n, int max_n);

  // k tokens that followed the longest match, read on past the end of the sequence into the
  // proposal itself (a repetition goes on repeating). Empty when nothing matches.
  static std::vector<int32_t> lookup(std::span<const int32_t> tokens, int min_n, int max_n, int64_t k);
  static std::vector<int32_t> continuation(std::span<const int32_t> tokens, Match m, int64_t k);

  // Tokens proposed after a match of n tokens: 2^(n-1), at most max_tokens.
  static int64_t draft_length(int64_t n, int64_t max_tokens);
  // A match this short is tentative (DraftSlot::tentative).
  static constexpr int64_t kFirmMatch = 2;

 private:
  int min_n_, max_n_;
};

}  // namespace tern
