// A closed-loop load on an in-process Engine: N requests with at most C in flight (a new one is
// added as soon as one finishes), EOS ignored so every request makes exactly its max_new_tokens.
// `tern bench offline` reports it; `tern plan --check` compares it with the planner's prediction.
// The phases are measured from the engine's own events:
//   prefill phase: from the first add until every request of the first wave has its first token;
//   decode phase:  the gaps between consecutive engine events while no request waits for its first
//                  token (so no prompt chunk runs), and the tokens those events carried.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "engine/engine.h"

namespace tern {

struct OfflineRunOptions {
  int64_t concurrency = 1;
  int64_t max_new_tokens = 128;
};

struct OfflineRunStats {
  double wall_s = 0;
  int64_t requests = 0, prompt_tokens = 0, output_tokens = 0;
  double first_wave_prefill_s = 0;        // first add -> the first wave's last first token
  int64_t first_wave_prompt_tokens = 0;   // prompt tokens of that wave (min(C, N) requests)
  double decode_s = 0;                    // decode phase (see above)
  int64_t decode_tokens = 0;
  std::vector<double> ttft_s, itl_s, e2e_s;  // per request / per token after a request's first
  EngineMetrics metrics;                  // the engine's, read at the last event (the last step's own
                                          // bookkeeping may not be in it yet)

  double decode_tokens_per_s() const { return decode_s > 0 ? double(decode_tokens) / decode_s : 0.0; }
  double first_wave_prefill_tokens_per_s() const {
    return first_wave_prefill_s > 0 ? double(first_wave_prompt_tokens) / first_wave_prefill_s : 0.0;
  }
};

// Runs every prompt (in order) through `engine`, greedy, and waits for all of them. An error when
// the engine refuses a request or a request fails; the engine is left running either way.
Result<OfflineRunStats> run_offline_load(Engine& engine, const std::vector<std::vector<int32_t>>& prompts,
                                        const OfflineRunOptions& options);

// Nearest-rank percentile of seconds, in milliseconds (0 for no observations).
double percentile_ms(std::vector<double> seconds, double p);

}  // namespace tern
