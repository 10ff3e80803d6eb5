// Perplexity of a model on a token stream, under the two protocols in DESIGN.md:
//  - kWindows (tern's default): non-overlapping windows of `ctx` tokens (the first `max_windows`),
//    every token but each window's first scored.
//  - kLlamaCpp: every full window, its first token replaced by BOS, only the second half scored.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/kv_dtype.h"
#include "core/status.h"
#include "model/decoder.h"
#include "model/model.h"
#include "core/exec_context.h"

namespace tern {

enum class PplProtocol { kWindows, kLlamaCpp };

struct PerplexityOptions {
  int64_t ctx = 512;
  int64_t max_windows = 40;  // 0 = all full windows
  PplProtocol protocol = PplProtocol::kWindows;
  int32_t bos_id = -1;       // needed by kLlamaCpp
  KvDType kv_dtype = KvDType::F32;  // KV cache storage (f32: the parity reference)
  // Sees (and may rewrite, to simulate W8A8) every linear input; null: none. Not owned.
  ActivationObserver* observer = nullptr;
  // Called with every group of scored rows in order: logits [rows, vocab] and the tokens they
  // predict, targets [rows] (KL divergence and top-1 agreement against a base model).
  std::function<void(const float* logits, int64_t rows, const int32_t* targets)> on_logits;
};

struct PerplexityResult {
  double ppl = 0;
  double mean_nll = 0;
  int64_t tokens_scored = 0;
  int64_t windows = 0;
  double seconds = 0;
};

// tokens: the whole file tokenized once (BOS at the start). on_window(i, n) reports progress.
Result<PerplexityResult> perplexity(const Model& model, ExecContext& ctx, const std::vector<int32_t>& tokens,
                                    const PerplexityOptions& options,
                                    const std::function<void(int64_t, int64_t)>& on_window = nullptr);

}  // namespace tern
