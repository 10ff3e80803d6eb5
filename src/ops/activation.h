// Gated activations of a feed-forward block, elementwise over [m, d] f32 (out may alias gate or up):
//   SwiGLU: out = silu(gate) * up,      silu(x) = x / (1 + exp(-x))
//   GeGLU:  out = gelu_tanh(gate) * up  (Gemma 2, hidden_activation "gelu_pytorch_tanh")
// and the plain GELU of a non-gated MLP (GPT-2 "gelu_new"), with torch's tanh approximation:
//   gelu_tanh(x) = 0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))
#pragma once

#include <cstdint>

#include "core/exec_context.h"

namespace tern {

void swiglu(ExecContext& ctx, const float* gate, const float* up, int64_t m, int64_t d, float* out);
void geglu_tanh(ExecContext& ctx, const float* gate, const float* up, int64_t m, int64_t d, float* out);
// x, out: [m, d] (out may alias x).
void gelu_tanh(ExecContext& ctx, const float* x, int64_t m, int64_t d, float* out);

}  // namespace tern
