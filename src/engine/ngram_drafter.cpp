#include "engine/ngram_drafter.h"

#include <algorithm>

namespace tern {

NgramDrafter::Match NgramDrafter::longest_match(std::span<const int32_t> t, int min_n, int max_n) {
  const int64_t L = int64_t(t.size());
  Match best;
  if (L < 2 || max_n < 1) return best;
  const int32_t last = t[size_t(L - 1)];
  // Candidate occurrences end at e (t[e] lines up with the last token), most recent first; one
  // pass over the sequence, comparing backwards only where the last token agrees.
  for (int64_t e = L - 2; e >= 0 && best.n < max_n; --e) {
    if (t[size_t(e)] != last) continue;
    int64_t n = 1;
    while (n < max_n && e - n >= 0 && t[size_t(e - n)] == t[size_t(L - 1 - n)]) ++n;
    if (n > best.n) best = {n, e + 1};
  }
  if (best.n < min_n) return {};
  return best;
}

std::vector<int32_t> NgramDrafter::continuation(std::span<const int32_t> t, Match m, int64_t k) {
  std::vector<int32_t> out;
  if (m.n == 0 || k <= 0) return out;
  const int64_t L = int64_t(t.size());
  // Read on past the end of the sequence into the proposal itself: a match one period back in a
  // repeating stretch proposes the next k tokens of the repetition, not one period.
  for (int64_t j = 0; j < k; ++j) {
    const int64_t at = m.next + j;
    out.push_back(at < L ? t[size_t(at)] : out[size_t(at - L)]);
  }
  return out;
}

std::vector<int32_t> NgramDrafter::lookup(std::span<const int32_t> t, int min_n, int max_n, int64_t k) {
  return continuation(t, longest_match(t, min_n, max_n), k);
}

int64_t NgramDrafter::draft_length(int64_t n, int64_t max_tokens) {
  if (n <= 0 || max_tokens <= 0) return 0;
  return n > 20 ? max_tokens : std::min<int64_t>(max_tokens, int64_t(1) << (n - 1));
}

Status NgramDrafter::propose(std::vector<DraftSlot>& slots) {
  for (DraftSlot& s : slots) {
    s.tokens.clear();
    s.probs.clear();
    s.tentative = false;
    const std::span<const int32_t> t = s.seq->tokens;
    const Match m = longest_match(t, min_n_, max_n_);
    if (m.n == 0) continue;
    const bool tentative = m.n < kFirmMatch;
    if (tentative && !s.allow_tentative) continue;
    s.tentative = tentative;
    s.tokens = continuation(t, m, draft_length(m.n, s.max_tokens));
  }
  return Status::ok();
}

}  // namespace tern
