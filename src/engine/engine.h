// The serving engine's front door inside the process (the server, `tern bench`, tests call it):
// add a request, receive its tokens as they are produced, cancel it. Thread-safe: any thread may
// call add/cancel/metrics; one engine thread runs the scheduler and the model steps, and the
// callbacks run on that thread (they must be quick: copy and hand off).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "engine/drafter.h"
#include "engine/model_runner.h"
#include "engine/speculative_config.h"
#include "runtime/sampling_params.h"

namespace tern {

class Tokenizer;
class Grammar;  // constrain/token_constraint.h

struct EngineOptions {
  size_t kv_memory_bytes = 0;      // KV pool budget; 0 = the planner's default for this machine
  int block_size = 16;
  KvDType kv_dtype = KvDType::BF16;
  int64_t max_step_tokens = 512;   // per-step token budget (decodes + prompt chunks)
  int64_t max_running = 256;       // sequences in flight at once
  bool prefix_caching = true;
  SpeculativeConfig speculative;   // method none: no speculative decoding
  std::string policy = "priority"; // scheduling: "priority" (FCFS among equals), "fcfs", or "slo" (slo_policy.h)
};

struct EngineRequest {
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  int64_t max_new_tokens = 128;
  std::vector<int32_t> eos_ids;     // finish (without emitting) on any of these
  bool ignore_eos = false;
  std::vector<std::string> stop;    // stop strings (needs the engine's tokenizer): never emitted
  int priority = 0;                 // larger runs first; equal priorities are first-come first-served
  int top_logprobs = -1;            // -1: no logprobs; 0: the chosen token's; n: plus the n most likely
  // Constrained decoding (structured output): only tokens the grammar allows are sampled, EOS only where it can
  // end, and the request finishes with "stop" once the grammar must end. Null: unconstrained.
  std::shared_ptr<const Grammar> grammar;
  // Latency targets (0: none), used by the "slo" scheduling policy: time to first token, and time per
  // output token after it.
  double slo_ttft_s = 0;
  double slo_tpot_s = 0;
};

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0;
};

enum class EngineFinish { kNone, kLength, kEos, kStop, kCancelled, kError };
const char* engine_finish_name(EngineFinish f);  // "", "length", "eos", "stop", "cancelled", "error"

// One event per request per step that produced something (and a last one with finish set).
struct EngineOutput {
  std::vector<int32_t> tokens;                     // new token ids
  std::string text;                                // new text (whole UTF-8 characters; stop strings held back)
  std::vector<float> logprobs;                     // [tokens.size()] when requested
  std::vector<std::vector<TokenLogprob>> top;      // [tokens.size()][top_logprobs] when requested
  EngineFinish finish = EngineFinish::kNone;
  std::string error;                               // when finish == kError
  std::string stop_string;                         // when finish == kStop by a stop string: which one
  int64_t prompt_tokens = 0;
  int64_t cached_prompt_tokens = 0;                // prompt tokens served from the prefix cache
  int64_t completion_tokens = 0;                   // so far
};

using RequestId = uint64_t;
using OutputCallback = std::function<void(RequestId, const EngineOutput&)>;

struct EngineMetrics {
  int64_t running = 0, waiting = 0, preempted_total = 0;
  int64_t kv_blocks_used = 0, kv_blocks_free = 0, kv_blocks_total = 0;
  double prefix_cache_hit_rate = 0;               // cached prompt tokens / prompt tokens
  int64_t prompt_tokens_total = 0, generated_tokens_total = 0;
  double prompt_tokens_per_s = 0, generated_tokens_per_s = 0;  // recent rates
  // Cumulative histograms (Prometheus style): counts[i] = observations <= bounds[i]; + sum and count.
  struct Histogram {
    std::vector<double> bounds_s;
    std::vector<int64_t> counts;
    double sum_s = 0;
    int64_t count = 0;
  };
  Histogram time_to_first_token, inter_token_latency, e2e_latency;
  // Speculative decoding (zero without it): drafted and accepted draft tokens, the sequence-steps
  // that verified at least one draft and the tokens those steps emitted (accepted + the corrected or
  // bonus token). acceptance rate = accepted / drafted; mean accepted length = emitted / steps.
  int64_t spec_draft_tokens = 0, spec_accepted_tokens = 0, spec_verify_steps = 0, spec_emitted_tokens = 0;
};

class Engine {
 public:
  // tokenizer may be null (no text, no stop strings). Starts the engine thread. With
  // options.speculative.method = draft, `drafter` is the draft model's (draft_model_drafter.h); for
  // ngram the engine makes its own; a drafter given for another method is an error.
  static Result<std::unique_ptr<Engine>> create(std::unique_ptr<ModelRunner> runner, const Tokenizer* tokenizer,
                                                const EngineOptions& options,
                                                std::unique_ptr<Drafter> drafter = nullptr);
  virtual ~Engine() = default;

  // Validates (prompt length vs context, sampling params) and queues. Errors are one line.
  virtual Result<RequestId> add(EngineRequest request, OutputCallback on_output) = 0;
  // Frees the request's blocks at once; its callback gets a last event with kCancelled. Unknown ids are ignored.
  virtual void cancel(RequestId id) = 0;
  virtual EngineMetrics metrics() const = 0;
  // Under the "slo" policy: when the request's TTFT target cannot be met given the queue, the seconds
  // after which a retry may fare better (admission refuses rather than accepts and misses); otherwise
  // nullopt. Advisory: add() does not check it.
  virtual std::optional<double> slo_retry_after(const EngineRequest& request) const {
    (void)request;
    return std::nullopt;
  }
  // Stops accepting; finishes (or, with cancel_in_flight, cancels) what is in flight; joins the thread.
  virtual void shutdown(bool cancel_in_flight) = 0;
};

}  // namespace tern
