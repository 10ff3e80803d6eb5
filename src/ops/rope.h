// Rotary position embedding over the first rotary_dim = 2·inv_freq.size() dims of each head (the
// rest pass unchanged), in one of two pairings:
//   kHalf (Hugging Face "rotate_half", Llama): element j pairs with j + rotary_dim/2;
//   kInterleaved (GLM-4, GPT-J): elements 2i and 2i+1 pair, at frequency inv_freq[i].
// Supports rope_type "default" and "llama3".
#pragma once

#include <cstdint>
#include <vector>

#include "core/exec_context.h"

namespace tern {

enum class RopeLayout : uint8_t {
  kNone,         // no rotary embedding (positions enter elsewhere, e.g. GPT-2's learned wpe)
  kHalf,         // rotate_half pairs (j, j + rotary_dim/2)
  kInterleaved,  // pairs (2i, 2i + 1)
};

struct RopeConfig {
  double theta = 10000.0;
  int rotary_dim = 0;  // = head_dim unless partial rotary
  // llama3 frequency scaling (rope_type "llama3"); factor == 0 means off.
  double llama3_factor = 0.0;
  double llama3_low_freq_factor = 1.0;
  double llama3_high_freq_factor = 4.0;
  double llama3_original_max_position = 8192.0;
  // "linear" scaling divides positions by this factor (1 = off).
  double linear_factor = 1.0;
};

// inv_freq[rotary_dim/2], computed exactly as transformers does (fp32 result).
std::vector<float> rope_inv_freq(const RopeConfig& cfg);

// x: [m, n_heads, head_dim] f32, rotated in place; positions: [m].
// Angles are float32(inv_freq) * float32(pos) as transformers computes them, cos/sin then in fp32.
void rope_apply(ExecContext& ctx, float* x, int64_t m, int n_heads, int head_dim, const int32_t* positions,
                const std::vector<float>& inv_freq, RopeLayout layout = RopeLayout::kHalf);

}  // namespace tern
