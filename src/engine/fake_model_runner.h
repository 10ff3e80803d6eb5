// A ModelRunner with no weights (DESIGN.md principle 8) for scheduler, KV and engine tests, and for
// exercising `tern serve` without a model. Its logits are a deterministic function of the sequence's
// whole token history, and it reads that history back through the block table it is given, like a
// real paged-attention kernel: a wrong block table, a block shared without its content, or a
// position written twice gives different logits, hence different tokens.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include "engine/model_runner.h"

namespace tern {

struct FakeRunnerOptions {
  int64_t vocab_size = 64;
  int64_t max_context = 4096;
  size_t kv_bytes_per_token = 256;               // what kv_block_bytes reports, per token slot
  int64_t fail_on_call = -1;                     // forward call number (0-based) that returns an error
  std::chrono::microseconds step_delay{0};       // sleep per forward (threaded tests)
};

class FakeModelRunner : public ModelRunner {
 public:
  explicit FakeModelRunner(const FakeRunnerOptions& options = {}) : opt_(options) {}

  int64_t vocab_size() const override { return opt_.vocab_size; }
  int64_t max_context() const override { return opt_.max_context; }
  size_t kv_block_bytes(int block_size, KvDType dtype) const override;
  Status allocate_kv(const KvPoolSpec& spec) override;
  Status forward(const StepBatch& batch, float* logits) override;
  int64_t max_logits_per_sequence() const override { return 64; }

  // The logits a correct runner gives after `history` (n tokens): [vocab].
  static void reference_logits(const int32_t* history, int64_t n, int64_t vocab, float* out);
  // Greedy continuation of a prompt, computed without paging: the ground truth for tests.
  static std::vector<int32_t> reference_greedy(const std::vector<int32_t>& prompt, int64_t n_new, int64_t vocab,
                                               const std::vector<int32_t>& eos_ids = {});

  // Called with every batch before it runs (tests check budgets and tables here).
  std::function<void(const StepBatch&)> on_forward;
  int64_t calls() const { return calls_; }
  const KvPoolSpec& spec() const { return spec_; }

 private:
  struct Slot {
    int32_t token = -1;
    int32_t pos = -1;
  };
  FakeRunnerOptions opt_;
  KvPoolSpec spec_;
  std::vector<Slot> slots_;  // [num_blocks * block_size]
  std::vector<int32_t> history_;
  int64_t calls_ = 0;
};

}  // namespace tern
