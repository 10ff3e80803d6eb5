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
// (a prompt chunk, 1 decode token, or a decode token followed by speculative drafts). K/V of
// positions < pos0 are already in its blocks; the step writes those of the new tokens. block_table
// covers at least pos0 + n_tokens positions.
struct BatchSequence {
  int64_t pos0 = 0;
  int64_t n_tokens = 0;
  const int32_t* block_table = nullptr;
  int64_t n_blocks = 0;
  bool want_logits = false;  // logits of this sequence's last n_logits tokens in the step
  // With want_logits: how many trailing positions get a logits row, in 1 .. n_tokens. Speculative
  // verification asks for k + 1 rows: the last accepted token and k drafts, all in one forward.
  int64_t n_logits = 1;
};

// Rows of logits a batch produces: Σ n_logits over the sequences with want_logits.
inline int64_t logit_rows(const std::vector<BatchSequence>& seqs) {
  int64_t n = 0;
  for (const BatchSequence& s : seqs) n += s.want_logits ? s.n_logits : 0;
  return n;
}

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

  // Runs the batch. logits: [logit_rows(batch.seqs), vocab]: each sequence with want_logits gives
  // its n_logits rows (positions pos0 + n_tokens - n_logits .. pos0 + n_tokens - 1), in batch order.
  virtual Status forward(const StepBatch& batch, float* logits) = 0;
  // Pipeline parallelism: how many steps may be in the pipeline at once (1: forward() is the only way).
  // Above 1 the engine starts a step with start_forward and takes its logits with finish_forward
  // (oldest first) after it has started others (engine_core.h: groups of requests).
  virtual int max_steps_in_flight() const { return 1; }
  // Starts the batch; `logits` ([logit_rows, vocab], as forward's) must stay valid until the matching
  // finish_forward, which completes the oldest started step. The batch itself may go once it returns.
  virtual Status start_forward(const StepBatch& batch, float* logits) { return forward(batch, logits); }
  virtual Status finish_forward() { return Status::ok(); }
  // Largest n_logits one sequence may ask for (1: no speculative verification on this runner).
  virtual int64_t max_logits_per_sequence() const { return 1; }
};

}  // namespace tern
