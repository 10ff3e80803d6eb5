// Feed-forward block (dense): gated (SwiGLU, GeGLU) or plain (GPT-2's GELU MLP with biases).
//   gated: out = down(act(gate(xn)) · up(xn))        plain: out = down(act(up(xn) + bu)) + bd
// The activation and the form are fields of FeedForwardWeights, chosen when the weights are bound;
// fused checkpoint tensors (gate_up_proj) were split into gate and up there.
#pragma once

#include <vector>

#include "core/scratch_vector.h"
#include "core/exec_context.h"
#include "core/weight_matrix.h"
#include "model/blocks/block_step.h"

namespace tern {

enum class Activation : uint8_t {
  kSilu,      // "silu"
  kGeluTanh,  // "gelu_pytorch_tanh", "gelu_new": torch's tanh-approximated GELU
};

struct FeedForwardWeights {
  WeightMatrix gate, up, down;   // gate, up: [inter, hidden]; down: [hidden, inter]; no gate when !gated
  std::vector<float> up_bias;    // [inter] (gpt2 c_fc); empty = none
  std::vector<float> down_bias;  // [hidden] (gpt2 c_proj); empty = none
  Activation act = Activation::kSilu;
  bool gated = true;  // act(gate) · up; false: act(up)
};

class FeedForwardBlock {
 public:
  // Activations for up to max_rows rows of `inter` features.
  FeedForwardBlock(int64_t hidden, int64_t inter, int64_t max_rows);

  // xn: [rows, hidden], the normed input (an observer may rewrite it); out: [rows, hidden].
  void forward(ExecContext& ctx, const FeedForwardWeights& w, const BlockStep& step, float* xn, float* out);

 private:
  int64_t hidden_, inter_;
  ScratchVector<float> gate_;  // [rows, inter]
  ScratchVector<float> up_;    // [rows, inter]
};

}  // namespace tern
