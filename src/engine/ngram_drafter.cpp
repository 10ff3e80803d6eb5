#include "engine/ngram_drafter.h"

#include <algorithm>

namespace tern {

std::vector<int32_t> NgramDrafter::lookup(std::span<const int32_t> t, int min_n, int max_n, int64_t k) {
  const int64_t L = int64_t(t.size());
  std::vector<int32_t> out;
  if (k <= 0) return out;
  for (int64_t n = std::min<int64_t>(max_n, L - 1); n >= min_n; --n) {
    const int32_t* suffix = t.data() + (L - n);
    // Most recent first: a copy in progress matches where it is copying from. Start i ends before
    // the suffix itself begins, so at least one continuation token exists.
    for (int64_t i = L - n - 1; i >= 0; --i) {
      if (t[size_t(i + n - 1)] != suffix[n - 1] || !std::equal(suffix, suffix + n, t.data() + i)) continue;
      // The continuation, read on past the end of the sequence into the proposal itself: a match one
      // period back in a repeating stretch proposes the next k tokens of the repetition, not one period.
      const int64_t from = i + n;
      for (int64_t j = 0; j < k; ++j) {
        const int64_t at = from + j;
        out.push_back(at < L ? t[size_t(at)] : out[size_t(at - L)]);
      }
      return out;
    }
  }
  return out;
}

Status NgramDrafter::propose(std::vector<DraftSlot>& slots) {
  for (DraftSlot& s : slots) {
    s.tokens = lookup(s.seq->tokens, min_n_, max_n_, s.max_tokens);
    s.probs.clear();
  }
  return Status::ok();
}

}  // namespace tern
