// Prompt lookup ("n-gram") drafting, no extra model: the last n tokens of the sequence (n from
// prompt_lookup_max down to prompt_lookup_min) are looked up in its own prompt + output; at the most
// recent earlier occurrence, the tokens that followed it are the proposal. Copy-heavy requests
// (repeat, quote, edit a passage; code edits) continue what they already contain.
#pragma once

#include <span>

#include "engine/drafter.h"

namespace tern {

class NgramDrafter final : public Drafter {
 public:
  NgramDrafter(int min_n, int max_n) : min_n_(min_n), max_n_(max_n) {}
  const char* name() const override { return "ngram"; }
  Status propose(std::vector<DraftSlot>& slots) override;

  // The proposal for tokens (k tokens): the continuation of the most recent earlier match of the
  // longest suffix of length in [min_n, max_n] that has one, read on into itself past the end (a
  // repetition goes on repeating). Empty when none matches.
  static std::vector<int32_t> lookup(std::span<const int32_t> tokens, int min_n, int max_n, int64_t k);

 private:
  int min_n_, max_n_;
};

}  // namespace tern
