// Rotary position embedding over the first rotary_dim = 2·inv_freq.size() dims of each head (the
// rest pass unchanged), in one of two pairings:
//   kHalf (Hugging Face "rotate_half", Llama): element j pairs with j + rotary_dim/2;
//   kInterleaved (GLM-4, GPT-J): elements 2i and 2i+1 pair, at frequency inv_freq[i].
// Supports rope_type "default", "linear", "llama3" and "yarn" (DeepSeek-V3's long-context scaling).
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
  // YaRN (rope_type "yarn"); factor == 0 means off. Frequencies below the correction range
  // [low, high] (from beta_fast / beta_slow rotations over original_max_position) are
  // interpolated (inv / factor), above it kept (extrapolated), with a linear ramp between.
  double yarn_factor = 0.0;
  double yarn_beta_fast = 32.0;
  double yarn_beta_slow = 1.0;
  double yarn_original_max_position = 0.0;
  bool yarn_truncate = true;          // floor / ceil the correction range (transformers' default)
  double yarn_attention_factor = 0.0; // explicit attention_factor; 0 = derived from mscale / mscale_all_dim
  double yarn_mscale = 0.0;           // 0 = absent
  double yarn_mscale_all_dim = 0.0;   // 0 = absent; DeepSeek also scales the softmax by its mscale²
};

// YaRN's magnitude correction: 0.1 · mscale · ln(scale) + 1 for scale > 1, else 1.
double yarn_get_mscale(double scale, double mscale = 1.0);

// The factor transformers multiplies cos and sin by (so q·k of the rotated dims scales by its
// square): 1 except for yarn, where it is attention_factor, else mscale(factor, mscale) /
// mscale(factor, mscale_all_dim) when both are set, else mscale(factor).
double rope_attention_factor(const RopeConfig& cfg);

// inv_freq[rotary_dim/2], computed exactly as transformers does (fp32 result).
std::vector<float> rope_inv_freq(const RopeConfig& cfg);

// x: [m, n_heads, head_dim] f32, rotated in place; positions: [m].
// Angles are float32(inv_freq) * float32(pos) as transformers computes them, cos/sin then in fp32.
void rope_apply(ExecContext& ctx, float* x, int64_t m, int n_heads, int head_dim, const int32_t* positions,
                const std::vector<float>& inv_freq, RopeLayout layout = RopeLayout::kHalf);

}  // namespace tern
