// KL divergence of a model's next-token distributions from a base model's, and top-1 agreement,
// over the positions a perplexity run scores (same text, window, protocol).
//
// The base side is kept compactly (in memory or in a file, so it is computed once): for every
// scored position the top-k log-probabilities with their token ids, and the log of the probability
// left outside them. KL is computed over those k tokens plus one "rest" bucket,
//   KL = Σ_top-k p_i (log p_i - log q_i) + p_rest (log p_rest - log q_rest),
// which equals the full-vocabulary KL when k = vocab and is a lower bound (log-sum inequality)
// otherwise, tight when the top k carry nearly all of the base mass (default k = 128).
//
// File format (little-endian), "tern base logits" v1:
//   char magic[8] = "TERNLOGP"; u32 version = 1; u32 k; u32 vocab; u32 protocol (0 tern, 1 llama.cpp);
//   u64 ctx; u64 windows; u64 positions; u64 tokens_hash (FNV-1a 64 over the evaluated token ids);
//   f64 base_nll_sum (Σ NLL of the scored targets under the base model);
//   i32 ids[positions][k]; f32 logp[positions][k] (descending); f32 rest_logp[positions] (-inf: none left).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"

namespace tern {

struct BaseLogits {
  uint32_t k = 0, vocab = 0, protocol = 0;
  uint64_t ctx = 0, windows = 0, tokens_hash = 0;
  double base_nll_sum = 0;
  std::vector<int32_t> ids;     // [positions, k]
  std::vector<float> logp;      // [positions, k]
  std::vector<float> rest_logp; // [positions]

  int64_t positions() const { return int64_t(rest_logp.size()); }
  double base_ppl() const;
};

uint64_t hash_tokens(const std::vector<int32_t>& tokens);

Status save_base_logits(const BaseLogits& b, const std::string& path);
Result<BaseLogits> load_base_logits(const std::string& path);

// Fills `b` from logits rows as a perplexity run produces them (its on_logits callback).
class BaseLogitsRecorder {
 public:
  BaseLogitsRecorder(BaseLogits& out, int64_t vocab, int k);
  void add(const float* logits, int64_t rows, const int32_t* targets);

 private:
  BaseLogits* b_;
  int64_t vocab_;
  std::vector<int32_t> order_;
};

struct KlResult {
  int64_t positions = 0;
  double kl_mean = 0, kl_median = 0, kl_p99 = 0, kl_max = 0;
  double top1 = 0;  // fraction of positions whose argmax equals the base's
};

// Compares logits rows with the base positions, in order.
class KlAccumulator {
 public:
  explicit KlAccumulator(const BaseLogits& base) : base_(&base) {}
  // Error when the run has more positions than the base or a different vocabulary.
  Status add(const float* logits, int64_t rows, int64_t vocab);
  // Error when fewer positions were seen than the base holds.
  Result<KlResult> finish() const;

 private:
  const BaseLogits* base_;
  int64_t next_ = 0;
  int64_t agree_ = 0;
  std::vector<double> kl_;
};

}  // namespace tern
