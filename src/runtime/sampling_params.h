// Per-request sampling parameters, with the meanings OpenAI / vLLM / Hugging Face give them.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "core/status.h"

namespace tern {

struct SamplingParams {
  float temperature = 1.0f;        // 0 = greedy
  int top_k = 0;                   // 0 = off
  float top_p = 1.0f;              // 1 = off
  float min_p = 0.0f;              // 0 = off; keeps tokens with p >= min_p * p_max
  float repetition_penalty = 1.0f; // HF/CTRL: over prompt + output; 1 = off
  float presence_penalty = 0.0f;   // OpenAI: over output tokens
  float frequency_penalty = 0.0f;  // OpenAI: over output tokens
  std::optional<uint64_t> seed;    // none = nondeterministic
  // OpenAI logit_bias: (token id, bias) added to the logit before penalties, temperature and filters;
  // -100 / 100 in practice ban / force the token. Ids outside the vocabulary are ignored here (the API 400s them).
  std::vector<std::pair<int32_t, float>> logit_bias;

  // One-line error for absurd values (NaN, negative temperature, top_p outside (0, 1], ...).
  Status validate() const;
};

}  // namespace tern
