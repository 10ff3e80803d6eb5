// Speculative decoding settings (docs/speculative.md). A drafter proposes up to k tokens for a
// decoding sequence; the target model checks all of them in one forward step (k + 1 rows of the
// ragged batch) and keeps the longest prefix its own sampling agrees with, plus one token of its
// own, so the output is exactly what decoding without speculation gives (greedy: token for token;
// sampling: the same distribution, by rejection sampling).
#pragma once

#include <algorithm>
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
  // Most drafts per sequence and step (vLLM num_speculative_tokens). The length used adapts below
  // it per request and step (DraftPacer; the n-gram drafter sizes each proposal by its match).
  int num_speculative_tokens = 5;
  // n-gram (prompt lookup) drafting: the longest and shortest suffix of the sequence that is looked
  // up in its own prompt + output (vLLM prompt_lookup_max / prompt_lookup_min). One-token matches
  // propose one token, and only while that request's recent ones were not all wrong; longer
  // matches propose more (ngram_drafter.h).
  int prompt_lookup_max = 8;
  int prompt_lookup_min = 1;
  // No drafts in a step where more than this many sequences decode. On the 2-core CPU with
  // docs-llama-28m each extra row costs ~20% of a one-row step, so a draft pays only if it is
  // accepted with probability above ~0.2 at 1 sequence, ~0.5 at 4, ~0.65 at 8; measured end to end,
  // 4 in flight with n-gram drafts ran at 0.9x (docs/speculative.md): speculation is for 1-2 streams.
  int disable_by_batch_size = 2;
  // Decode rows (one per decoding sequence plus the drafts) a step may have when drafts are added:
  // drafts only fill what is left below it. On the CPU a matmul of up to 8 rows streams each weight
  // once (the GEMV path, kernels/cpu/matmul_kernels.h kGemvMaxRows); past 8 it becomes a packed GEMM
  // and a step costs 2-4x (bench_spec_verify, docs/speculative.md). Within the GEMV, with the
  // AVX-512 even/odd bf16 kernel (kernels/cpu/matmul_gemv_evenodd_avx512.cpp), a step of 2 / 3 / 4 /
  // 5 / 6 rows costs 1.00 / 1.05-1.13 / 1.16-1.36 / 1.26-1.41 / 1.44-1.69 plain steps (docs-llama-28m,
  // 2 threads, dev-zen5, bench_spec_drafter --timed), and 8 rows decoded 2-8% faster than 4 on both
  // prompt sets there (4 alternate runs; with the former kernel, 5 / 6 rows cost 1.87 / 2.09 and 8
  // rows tied with 4). Drafts per sequence stay capped by num_speculative_tokens.
  int max_batch_rows = 8;

  bool enabled() const { return method != SpeculativeMethod::kNone; }
  // Extra logits rows a step may need beyond one per sequence.
  int64_t max_draft_rows() const { return enabled() ? int64_t(max_batch_rows) : 0; }
  // One-line error naming the field for values out of range.
  Status validate() const;
};

// One request's drafting between steps (engine_speculative.cpp; bench_spec_drafter replays it).
// For a drafter that sizes its own proposals (Drafter::sizes_drafts, the n-gram lookup): it may
// always propose up to k_max, and a step whose tentative proposal was wholly rejected pauses
// tentative proposals for 1, 2, 4 .. 64 steps while that goes on (firm ones go on meanwhile).
// For any other (the draft model): the length starts at k_max, grows by one after a step that
// accepted every draft and falls to accepted + 1 after a rejection; a step that accepted nothing
// pauses drafting for 1, 2, 4 .. 64 steps while that goes on. Either way a request whose text
// does not repeat stops paying for rows that are always wrong.
class DraftPacer {
 public:
  DraftPacer(int k_max, bool drafter_sizes) : k_max_(k_max), len_(k_max), drafter_sizes_(drafter_sizes) {}
  struct Ask {
    int max_tokens = 0;           // 0: no drafts this step
    bool allow_tentative = true;
  };
  // What to ask the drafter for this step; each call during a pause counts one step of it.
  Ask next() {
    const bool paused = skip_ > 0;
    if (paused) --skip_;
    if (drafter_sizes_) return {k_max_, !paused};
    return {paused ? 0 : len_, !paused};
  }
  // The drafter's proposal of this step was (not) tentative (DraftSlot::tentative).
  void proposed(bool tentative) { tentative_ = tentative; }
  // After a verify step of k > 0 drafts of which `accepted` stood.
  void after_step(int64_t k, int64_t accepted) {
    if (k <= 0) return;
    bool tentative = tentative_;
    if (!drafter_sizes_) {
      len_ = accepted == k ? std::min(len_ + 1, k_max_) : int(std::max<int64_t>(1, accepted + 1));
      tentative = true;
    }
    if (accepted == 0 && tentative) {
      skip_ = backoff_;
      backoff_ = std::min(backoff_ * 2, 64);
    } else if (accepted > 0) {
      backoff_ = 1;
    }
  }

 private:
  int k_max_, len_;
  bool drafter_sizes_;
  bool tentative_ = true;
  int skip_ = 0;     // steps left in the pause
  int backoff_ = 1;  // the next pause
};

}  // namespace tern
