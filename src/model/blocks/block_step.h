// What every block of one layer sees of the current chunk of token rows (BlockStep), and what
// calibration (quantization: AWQ, GPTQ, SmoothQuant) sees of a forward: the input of every linear
// layer (ActivationObserver; blocks call observe() right before their linears read the rows).
#pragma once

#include <cstdint>

#include "ops/paged_attention.h"

namespace tern {

// q/k/v share one input (kAttnIn), gate/up share one (kMlpIn). kQLatent: the normed q_a output
// that MLA's q_b_proj reads ([rows, q_lora_rank]; MLA with q_lora_rank only).
enum class LinearInput { kAttnIn, kAttnOut, kMlpIn, kMlpDown, kQLatent };
constexpr int kLinearInputs = 5;

class ActivationObserver {
 public:
  virtual ~ActivationObserver() = default;
  // x: [rows, cols] — the f32 input rows of layer `layer`'s linear(s) at `slot` for this forward.
  virtual void on_linear_input(int layer, LinearInput slot, const float* x, int64_t rows, int64_t cols) = 0;
  // Evaluation only: called right after on_linear_input, may rewrite x in place before the linear(s)
  // read it, to simulate on dense weights what a quantized kernel does to its input (W8A8's per-token
  // int8 rounding). The default leaves x alone.
  virtual void rewrite_linear_input(int layer, LinearInput slot, float* x, int64_t rows, int64_t cols) {}
  // A mixture-of-experts layer's experts (model/blocks/moe.h): x [rows, cols] is what expert `expert`
  // reads at `slot` — kMlpIn: the rows routed to it, gathered (gate/up input); kMlpDown: its own
  // intermediate activation (down input). expert == n_experts is the shared expert (kMlpDown only: its
  // gate/up read the layer's kMlpIn rows, all of them). Then rewrite as above.
  virtual void on_expert_input(int layer, int expert, LinearInput slot, const float* x, int64_t rows, int64_t cols) {}
  virtual void rewrite_expert_input(int layer, int expert, LinearInput slot, float* x, int64_t rows, int64_t cols) {}
  // The residual stream entering layer `layer` is x + delta (delta null: x alone), [rows, cols];
  // layer == the number of layers run: what leaves the last one. Depth pruning compares these (ShortGPT).
  virtual void on_residual(int layer, const float* x, const float* delta, int64_t rows, int64_t cols) {}
};

inline void observe(ActivationObserver* o, int layer, LinearInput slot, float* x, int64_t rows, int64_t cols) {
  if (!o) return;
  o->on_linear_input(layer, slot, x, rows, cols);
  o->rewrite_linear_input(layer, slot, x, rows, cols);
}

// One layer's view of a chunk: `rows` token rows of several sequences side by side.
struct BlockStep {
  int layer = 0;
  int64_t rows = 0;
  const int32_t* positions = nullptr;  // [rows], each row's position in its sequence
  const PagedAttnSeq* seqs = nullptr;  // the chunk's pieces: rows row0 .. row0 + n_q - 1 of each sequence
  int n_seqs = 0;
  ActivationObserver* observer = nullptr;  // null: none
  void observe(LinearInput slot, float* x, int64_t cols) const { tern::observe(observer, layer, slot, x, rows, cols); }
  void observe_expert(int expert, LinearInput slot, float* x, int64_t n, int64_t cols) const {
    if (!observer || n == 0) return;
    observer->on_expert_input(layer, expert, slot, x, n, cols);
    observer->rewrite_expert_input(layer, expert, slot, x, n, cols);
  }
};

}  // namespace tern
