// A perplexity run that also records the base model's distributions (once), or compares a model's
// distributions with recorded base ones: KL divergence and top-1 agreement on the scored positions.
#pragma once

#include <functional>
#include <vector>

#include "eval/kl_divergence.h"
#include "eval/perplexity.h"

namespace tern {

// Runs `model` (the base) and records its top-k distributions for every scored position.
Result<BaseLogits> record_base_logits(const Model& model, ExecContext& ctx, const std::vector<int32_t>& tokens,
                                      const PerplexityOptions& options, int topk,
                                      const std::function<void(int64_t, int64_t)>& on_window = nullptr);

struct QualityResult {
  PerplexityResult ppl;
  KlResult kl;
  double base_ppl = 0;
};

// Runs `model` on the same tokens and settings the base was recorded with (error otherwise).
Result<QualityResult> compare_with_base(const Model& model, ExecContext& ctx, const std::vector<int32_t>& tokens,
                                        const PerplexityOptions& options, const BaseLogits& base,
                                        const std::function<void(int64_t, int64_t)>& on_window = nullptr);

}  // namespace tern
