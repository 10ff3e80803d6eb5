// ModelRunner on the CPU: a Model's Decoder over one paged KV pool (kv/paged_kv_cache.h).
// Each step is one ragged batched forward (Decoder::forward_batch) plus the LM head over the rows
// that want logits. Everything a step touches is allocated by the constructor and allocate_kv.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "engine/model_runner.h"
#include "model/decoder.h"
#include "model/model.h"
#include "kv/paged_kv_cache.h"
#include "core/exec_context.h"

namespace tern {

class CpuModelRunner : public ModelRunner {
 public:
  // max_step_tokens bounds the activations; a larger step still runs, in several chunks.
  // max_logit_rows bounds the rows of logits one step may want (speculative drafts included).
  CpuModelRunner(const Model& model, ExecContext& ctx, int64_t max_step_tokens = 512, int64_t max_logit_rows = 256);

  int64_t vocab_size() const override;
  int64_t max_context() const override;
  size_t kv_block_bytes(int block_size, KvDType dtype) const override;
  Status allocate_kv(const KvPoolSpec& spec) override;
  Status forward(const StepBatch& batch, float* logits) override;
  int64_t max_logits_per_sequence() const override { return max_logit_rows_; }
  // Under --pp on rank 0: the layout's steps_in_flight (Decoder::forward_logits_start); else 1.
  int max_steps_in_flight() const override;
  Status start_forward(const StepBatch& batch, float* logits) override;
  Status finish_forward() override;

  Decoder& decoder() { return decoder_; }
  const PagedKvCache* kv() const { return kv_.get(); }
  PagedKvCache* kv() { return kv_.get(); }  // benchmarks fill it with a synthetic context

 private:
  const Model* model_;
  ExecContext* ctx_;
  Decoder decoder_;
  int64_t max_logit_rows_;
  std::unique_ptr<PagedKvCache> kv_;
  std::vector<SeqStep> steps_;   // [seqs] reused
  std::vector<float> hidden_;    // [max_logit_rows, hidden]
  std::deque<PendingRecv> in_flight_;  // started steps' logits receives, oldest first
  // Checks the batch and fills steps_; *want: its rows of logits.
  Status prepare(const StepBatch& batch, int64_t* want);
};

}  // namespace tern
