// What proposes speculative tokens (speculative_config.h): the n-gram lookup (ngram_drafter.h), a
// small draft model with the same vocabulary (draft_model_drafter.h), or a test's own. The engine
// calls propose once per step with every sequence it wants drafts for, and release when a request
// ends. A drafter must not change the sequences.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "engine/scheduler_policy.h"

namespace tern {

struct DraftSlot {
  const Sequence* seq = nullptr;  // its tokens are prompt + verified output (no drafts)
  int64_t max_tokens = 0;         // propose at most this many (>= 1)
  // in: whether a tentative proposal is wanted now (false while the engine backs off after this
  // request's tentative proposals were wholly rejected; DraftPacer).
  bool allow_tentative = true;
  std::vector<int32_t> tokens;    // out: the proposal, possibly empty
  // out: the proposal rests on little evidence (the n-gram drafter: a one-token match).
  bool tentative = false;
  // out, optional: [tokens.size(), vocab] the drafter's distribution at each proposed position, when
  // it sampled them; empty means deterministic proposals (q is a point mass on each token).
  std::vector<float> probs;
};

class Drafter {
 public:
  virtual ~Drafter() = default;
  virtual const char* name() const = 0;
  // True: the drafter chooses each proposal's length itself, from its own evidence (up to
  // max_tokens, which the engine then keeps at num_speculative_tokens), and marks tentative
  // proposals. False: the engine sizes the proposals by the request's acceptance (DraftPacer) and
  // treats every proposal as tentative.
  virtual bool sizes_drafts() const { return false; }
  // Fills each slot's proposal. An error abandons drafting for this step (the engine decodes
  // normally) and is reported once per step; it never fails the requests.
  virtual Status propose(std::vector<DraftSlot>& slots) = 0;
  // The request ended (finished, cancelled, preempted by recompute is not an end): drop its state.
  virtual void release(uint64_t seq_id) {}
};

}  // namespace tern
