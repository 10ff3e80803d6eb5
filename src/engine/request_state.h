// One request inside the engine: its Sequence (what the scheduler sees), its Sampler, its streaming
// detokenizer and stop-string matcher, and its timing. Turns a row of logits into an EngineOutput.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include "constrain/token_constraint.h"
#include "engine/engine.h"
#include "engine/scheduler_policy.h"
#include "text/tokenizer/tokenizer.h"
#include "runtime/generator.h"
#include "runtime/sampler.h"

namespace tern {

using EngineClock = std::chrono::steady_clock;

class RequestState {
 public:
  // max_new: the request's limit already capped by the context. arrival: FCFS order.
  RequestState(RequestId id, EngineRequest request, OutputCallback callback, const Tokenizer* tokenizer,
               int64_t vocab_size, int64_t max_new, uint64_t arrival);

  // Samples the next token from raw logits row [vocab] (modified in place unless logprobs are
  // wanted), appends it to the sequence and describes it in *out. Returns the finish reason, or
  // kNone when the request goes on.
  EngineFinish on_logits(float* row, EngineOutput* out);
  // Speculative verification: rows [k + 1, vocab] are the logits after the last accepted token and
  // after each of the k drafts (the sequence's tokens must not hold the drafts any more). Emits the
  // accepted drafts and then the corrected or bonus token, stopping early on a finish; *accepted =
  // drafts kept. draft_probs: [k, vocab] the drafter's distributions, or null (deterministic drafter).
  EngineFinish on_verify(float* rows, const int32_t* drafts, int64_t k, const float* draft_probs, EngineOutput* out,
                         int64_t* accepted);
  int64_t completion_tokens() const { return completion_; }
  // A request that ends with no token to sample (max_new_tokens = 0).
  void fill_counts(EngineOutput* out) const;

  Sequence seq;
  OutputCallback callback;
  EngineClock::time_point arrived, first_token, last_token;
  bool has_first_token = false;
  bool started = false;            // admitted at least once (prompt counted in the metrics)
  int64_t cached_prompt_tokens = 0;
  int64_t max_new = 0;

 private:
  void add_logprobs(const float* raw, int32_t id, EngineOutput* out);
  float* sampler_row(float* row);  // row itself, or a copy when logprobs need the raw row
  // Samples from row, or with a draft verifies it (q: the drafter's distribution, null = point mass),
  // after the constraint's mask; a finish instead when the grammar ends before this row.
  EngineFinish choose(float* row, const int32_t* draft, const float* q, int32_t* id, bool* accepted, EngineOutput* out);
  EngineFinish emit(int32_t id, const float* raw, EngineOutput* out);  // appends one sampled token
  void flush_text(EngineOutput* out);
  // Constrained decoding: sets the logits of tokens the grammar forbids to -inf (EOS kept iff it may end).
  // Returns false when nothing at all may be sampled.
  bool apply_grammar(float* row);

  RequestId id_;
  EngineRequest req_;
  int64_t vocab_;
  Sampler sampler_;
  std::optional<StreamingDecoder> detok_;
  StopMatcher stops_;
  std::vector<float> scratch_;     // [vocab] logits for the sampler when the raw row must stay intact
  int64_t completion_ = 0;
  std::optional<TokenConstraint> constraint_;  // when the request has a grammar
  std::vector<uint32_t> mask_;                  // [ceil(vocab/32)] scratch
};

}  // namespace tern
