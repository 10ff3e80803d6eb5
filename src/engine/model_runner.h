// What the serving engine asks of a model backend (CPU decoder now, CUDA later): size a paged KV
// pool once, then run one ragged batch per step. The engine owns block ids (which block holds
// which tokens, sharing, eviction); the runner owns the KV storage those ids index.
//
// Paged layout: the pool has num_blocks blocks of block_size token slots per layer. A sequence's
// token at position p lives in block block_table[p / block_size], slot p % block_size.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/kv_dtype.h"
#include "core/status.h"

namespace tern {

// KvDType, kv_dtype_name, parse_kv_dtype: core/kv_dtype.h

struct KvPoolSpec {
  int64_t num_blocks = 0;
  int block_size = 16;
  KvDType dtype = KvDType::BF16;
};

// One sequence's part of a step: n_tokens new tokens at positions pos0 .. pos0 + n_tokens - 1
// (a prompt chunk, or 1 decode token). K/V of positions < pos0 are already in its blocks; the
// step writes those of the new tokens. block_table covers at least pos0 + n_tokens positions.
struct BatchSequence {
  int64_t pos0 = 0;
  int64_t n_tokens = 0;
  const int32_t* block_table = nullptr;
  int64_t n_blocks = 0;
  bool want_logits = false;  // logits of this sequence's last token in the step
};

struct StepBatch {
  std::vector<int32_t> token_ids;     // [sum of n_tokens] concatenated in sequence order
  std::vector<BatchSequence> seqs;
};

class ModelRunner {
 public:
  virtual ~ModelRunner() = default;

  virtual int64_t vocab_size() const = 0;
  virtual int64_t max_context() const = 0;
  // Bytes one KV block costs over all layers (K and V, scales included) for this spec.
  virtual size_t kv_block_bytes(int block_size, KvDType dtype) const = 0;
  // Allocates the pool once (no allocation in the step loop afterwards).
  virtual Status allocate_kv(const KvPoolSpec& spec) = 0;

  // Runs the batch. logits: [number of seqs with want_logits, vocab] in batch order.
  virtual Status forward(const StepBatch& batch, float* logits) = 0;
};

}  // namespace tern
