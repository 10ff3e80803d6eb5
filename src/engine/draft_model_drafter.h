// Draft-model speculation: a small model with the target's vocabulary proposes k tokens greedily
// (q is then a point mass, so verification by rejection sampling stays exact at any temperature).
// It has its own CpuModelRunner and paged KV pool with its own block manager (no prefix cache); per
// request it remembers which tokens its KV holds, and at each step feeds only what changed since
// (the tokens the target emitted), rolling its own KV back past drafts the target rejected.
// All requests draft together: one ragged forward for the catch-up, then one per further draft.
#pragma once

#include <memory>
#include <unordered_map>

#include "core/exec_context.h"
#include "engine/cpu_model_runner.h"
#include "engine/drafter.h"
#include "engine/kv_block_manager.h"
#include "model/model.h"

namespace tern {

struct DraftModelOptions {
  int64_t num_blocks = 1024;  // the draft KV pool
  int block_size = 16;
  KvDType kv_dtype = KvDType::BF16;
  int64_t max_sequences = 256;  // drafting sequences per step (rows of logits)
  int64_t max_step_tokens = 512;
};

class DraftModelDrafter final : public Drafter {
 public:
  // Fails when the draft model's vocabulary size differs from the target's (naming both) or the
  // pool cannot be allocated.
  static Result<std::unique_ptr<DraftModelDrafter>> create(std::shared_ptr<const Model> model, ExecContext& ctx,
                                                           int64_t target_vocab, const DraftModelOptions& options);

  const char* name() const override { return "draft model"; }
  Status propose(std::vector<DraftSlot>& slots) override;
  void release(uint64_t seq_id) override;

  const KvBlockManager& kv() const { return kv_; }

 private:
  DraftModelDrafter(std::shared_ptr<const Model> model, ExecContext& ctx, const DraftModelOptions& options);
  struct Active {
    DraftSlot* slot;
    std::vector<int32_t>* fed;  // tokens whose K/V the draft pool holds, in order
    int64_t target;             // drafts to make
  };
  Status run(std::vector<Active>& active, bool catch_up);

  std::shared_ptr<const Model> model_;
  CpuModelRunner runner_;
  KvBlockManager kv_;
  std::unordered_map<uint64_t, std::vector<int32_t>> fed_;
  StepBatch batch_;
  std::vector<float> logits_;
};

}  // namespace tern
