// Speculative decoding settings (docs/speculative.md). A drafter proposes up to k tokens for a
// decoding sequence; the target model checks all of them in one forward step (k + 1 rows of the
// ragged batch) and keeps the longest prefix its own sampling agrees with, plus one token of its
// own, so the output is exactly what decoding without speculation gives (greedy: token for token;
// sampling: the same distribution, by rejection sampling).
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace tern {

enum class SpeculativeMethod { kNone, kNgram, kDraftModel };

// "none" | "ngram" | "draft" (the --speculative values); anything else is an error naming it.
Result<SpeculativeMethod> parse_speculative_method(const std::string& name);
const char* speculative_method_name(SpeculativeMethod m);

struct SpeculativeConfig {
  SpeculativeMethod method = SpeculativeMethod::kNone;
  // Most drafts per sequence and step (vLLM num_speculative_tokens). The length used adapts per
  // request to its acceptance: it grows by one after a fully accepted step and falls to
  // accepted + 1 after a rejection; a step with nothing accepted pauses drafting for that request
  // for 1, 2, 4 .. 64 steps while it goes on.
  int num_speculative_tokens = 5;
  // n-gram (prompt lookup) drafting: the longest and shortest suffix of the sequence that is looked
  // up in its own prompt + output (vLLM prompt_lookup_max / prompt_lookup_min).
  int prompt_lookup_max = 4;
  int prompt_lookup_min = 2;
  // No drafts in a step where more than this many sequences decode. On the 2-core CPU with
  // docs-llama-28m each extra row costs ~20% of a one-row step, so a draft pays only if it is
  // accepted with probability above ~0.2 at 1 sequence, ~0.5 at 4, ~0.65 at 8; measured end to end,
  // 4 in flight with n-gram drafts ran at 0.9x (docs/speculative.md): speculation is for 1-2 streams.
  int disable_by_batch_size = 2;
  // Decode rows (one per decoding sequence plus the drafts) a step may have when drafts are added:
  // drafts only fill what is left below it. On the CPU a matmul of up to 8 rows streams each weight
  // once (the GEMV path, kernels/cpu/matmul_kernels.h kGemvMaxRows); past 8 it becomes a packed GEMM
  // and a step costs 2-4x (bench_spec_verify, docs/speculative.md).
  int max_batch_rows = 8;

  bool enabled() const { return method != SpeculativeMethod::kNone; }
  // Extra logits rows a step may need beyond one per sequence.
  int64_t max_draft_rows() const { return enabled() ? int64_t(max_batch_rows) : 0; }
  // One-line error naming the field for values out of range.
  Status validate() const;
};

}  // namespace tern
