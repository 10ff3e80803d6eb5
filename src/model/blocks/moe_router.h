// Which experts each token row goes to, and with what weight, from the router's logits.
//   softmax (Mixtral, Qwen-MoE): p = softmax(logits); the k largest p; if norm_topk_prob, divided by
//     their sum (Mixtral always; Qwen with norm_topk_prob false keeps the raw probabilities).
//   sigmoid (DeepSeek-V3, noaux_tc): s = sigmoid(logits); the choice uses c = s + bias; each of the
//     n_group groups scores the sum of its two best c; outside the topk_group best groups c is
//     replaced by 0 (as transformers' masked_fill(0.0)); the k largest c are chosen, but weighted
//     by the uncorrected s, divided by (Σ s + 1e-20) if norm_topk_prob, times routed_scaling_factor.
// Ties go to the lower index.
#pragma once

#include <cstdint>
#include <vector>

#include "formats/moe_config.h"

namespace tern {

// logits: [rows, E]; bias: [E] (only with cfg.correction_bias; may be null otherwise).
// idx, weight: [rows, k], each row's experts in descending order of what chose them.
// Reused between calls, so routing allocates only the first time.
struct MoeRouteScratch {
  std::vector<float> f;
  std::vector<int32_t> i;
};

void moe_route(const MoeConfig& cfg, const float* logits, const float* bias, int64_t rows, int32_t* idx,
               float* weight, MoeRouteScratch& scratch);

}  // namespace tern
