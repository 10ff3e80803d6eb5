// The mixture-of-experts feed-forward block (Mixtral, Qwen2-MoE, Qwen3-MoE, DeepSeek-V3).
//
// Forward over c token rows x [c, hidden] (the post-attention-normed residual):
//   1. router logits [c, E] = x · routerᵀ; moe_route picks k experts and weights per row;
//   2. rows are grouped by expert (a counting sort): the n_e rows routed to expert e are gathered
//      into [n_e, hidden] and go through that expert in ONE pass per matrix (gate, up: [n_e, I];
//      down: [n_e, hidden]) through the matmul front door — so a decode batch reads each selected
//      expert's weights once however many of its rows chose it, batch-1 decode streams only the k
//      selected experts, and int8 / int4-group / GGUF experts run on the existing kernels;
//   3. each expert's rows are scattered back, y[row] += weight · out, in expert order;
//   4. the shared expert (DeepSeek n_shared_experts, Qwen2-MoE shared_expert) runs over all c rows,
//      Qwen2-MoE's scaled by sigmoid(x · shared_expert_gate).
// Calibration (ActivationObserver) sees kMlpIn: the normed input that the router, every expert and
// the shared expert all read (all rows; one input norm feeds them all), then per expert
// (on_expert_input) the gathered rows routed to it (its gate/up input) and its intermediate
// activation (its down input); the shared expert reports its down input as expert n_experts.
// kMlpDown is never reported for a MoE layer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/scratch_vector.h"
#include "core/exec_context.h"
#include "core/status.h"
#include "core/weight_matrix.h"
#include "formats/model_config.h"
#include "model/blocks/block_step.h"
#include "model/blocks/moe_router.h"
#include "ops/matmul.h"

namespace tern {

class WeightBinder;

struct ExpertMlp {
  WeightMatrix gate, up, down;  // gate/up: [inter, hidden], down: [hidden, inter] (SwiGLU)
  bool present() const { return gate.rows > 0; }
};

struct MoeWeights {
  WeightMatrix router;             // [E, hidden]
  std::vector<float> router_bias;  // [E] e_score_correction_bias (DeepSeek noaux_tc); empty: none
  std::vector<ExpertMlp> experts;  // [E]
  ExpertMlp shared;                // absent (rows 0) unless the model has a shared expert
  WeightMatrix shared_gate;        // [1, hidden] Qwen2-MoE; rows 0: none
};

// Weight bytes one token reads in this layer: router, k experts (the mean expert's size), shared
// expert and its gate.
int64_t moe_bytes_per_token(const MoeWeights& w, int k);

// How a checkpoint names one MoE layer's tensors, relative to the layer's MoE module prefix
// (e.g. "model.layers.3.block_sparse_moe."): "<router>.weight", "<experts>.<e>.<gate|up|down>.weight".
struct MoeTensorNames {
  const char* router = "gate";
  const char* experts = "experts";
  const char* gate = "gate_proj";
  const char* up = "up_proj";
  const char* down = "down_proj";
  const char* shared = nullptr;       // shared expert module, e.g. "shared_expert" / "shared_experts"
  const char* shared_gate = nullptr;  // Qwen2-MoE "shared_expert_gate"
};

// Binds one MoE layer per cfg.moe (the correction bias "<router>.e_score_correction_bias" when
// cfg.moe.correction_bias). Errors: a missing tensor or one of the wrong shape, naming it.
Result<MoeWeights> bind_moe(WeightBinder& b, const ModelConfig& cfg, const std::string& prefix,
                            const MoeTensorNames& names);

// Work counted over forwards, for benchmarks: expert_passes / forwards is the mean number of distinct
// experts whose weights one forward (one layer of one engine step) read; routed_pairs / forwards
// what one pass per token per expert would have read.
struct MoeCounters {
  int64_t forwards = 0, rows = 0, expert_passes = 0, routed_pairs = 0;
};

class MoeBlock {
 public:
  // Buffers for up to max_rows rows at once.
  MoeBlock(const ModelConfig& cfg, int64_t max_rows);

  // y [c, hidden] = MoE(x [c, hidden]), c <= max_rows. y must not alias x. step: who observes the
  // experts' inputs (null: nobody).
  void forward(ExecContext& ctx, const MoeWeights& w, const float* x, int64_t c, float* y,
               const BlockStep* step = nullptr) {
    forward_routed(ctx, w, x, c, y, step);
    add_shared(ctx, w, x, c, y, step);
  }
  // The two halves of forward(), for expert parallelism (one rank holds some experts: the others
  // are absent, !present(), and add nothing; the ranks sum their y between the halves):
  // y [c, hidden] := Σ over the routed experts this process holds of weight · expert(x), per row in
  // expert order; then y += the shared expert (when the model has one).
  void forward_routed(ExecContext& ctx, const MoeWeights& w, const float* x, int64_t c, float* y,
                      const BlockStep* step = nullptr);
  void add_shared(ExecContext& ctx, const MoeWeights& w, const float* x, int64_t c, float* y,
                  const BlockStep* step = nullptr);
  // The decoder's feed-forward step: xn [step.rows, hidden] (observed as kMlpIn; an observer may
  // rewrite it), out [step.rows, hidden].
  void forward(ExecContext& ctx, const MoeWeights& w, const BlockStep& step, float* xn, float* out) {
    step.observe(LinearInput::kMlpIn, xn, hidden_);
    forward(ctx, w, xn, step.rows, out, &step);
  }

  const MoeCounters& counters() const { return counters_; }
  void reset_counters() { counters_ = {}; }

 private:
  // expert: the index reported to step's observer (n_experts: the shared expert).
  void run_expert(ExecContext& ctx, const ExpertMlp& e, const float* x, int64_t n, float* out, const BlockStep* step,
                  int expert);
  // Step 3 for a decode step (c <= kGroupedMaxRows); returns the experts run.
  static constexpr int64_t kGroupedMaxRows = 64;
  int64_t run_experts_grouped(ExecContext& ctx, const MoeWeights& w, const float* x, int64_t c, float* y);

  MoeConfig moe_;
  int64_t hidden_, max_rows_;
  std::vector<float> logits_;    // [c, E]
  std::vector<int32_t> idx_;     // [c, k]
  std::vector<float> weight_;    // [c, k]
  std::vector<int32_t> offset_;  // [E + 1] first slot of each expert in order_
  std::vector<int32_t> fill_;    // [E] next free slot of each expert while grouping
  std::vector<int32_t> order_;   // [c * k] slot -> row, grouped by expert, rows ascending
  std::vector<float> slot_w_;    // [c * k] the routing weight of each slot
  std::vector<uint8_t> slot_present_;  // [c * k] 1: this process holds the slot's expert
  ScratchVector<float> xg_;        // [c, hidden] one expert's gathered rows
  ScratchVector<float> gate_, up_; // [c, max(expert, shared) intermediate]
  ScratchVector<float> out_;       // [c, hidden] one expert's output rows
  std::vector<float> sgate_;     // [c] shared-expert gate logits
  // The decode path's slots side by side (run_experts_grouped), for min(max_rows, 64) · k slots:
  ScratchVector<float> xs_, os_;   // [slots, hidden] gathered inputs, expert outputs
  ScratchVector<float> gs_, us_;   // [slots, expert intermediate]
  std::vector<MatmulJob> jobs_;
  MoeRouteScratch route_scratch_;
  MoeCounters counters_;
};

}  // namespace tern
