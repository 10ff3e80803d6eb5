// The forward and backward pass of a Llama-family model for training, over one micro-batch of B
// packed sequences of T tokens (rows r = b · T + t at position t), all rows through every matmul at
// once. Per layer (Hugging Face LlamaDecoderLayer):
//   xn1 = rms(x) · w1;  q, k, v = xn1 · Wqᵀ, Wkᵀ, Wvᵀ;  rope(q, k);  o = attn(q, k, v);  h = x + o · Woᵀ
//   xn2 = rms(h) · w2;  s = silu(xn2 · Wgᵀ) ⊙ (xn2 · Wuᵀ);  x' = h + s · Wdᵀ
// then logits = rms(x_L) · wf · lm_headᵀ. The activations of every layer are kept for the backward,
// or, with recompute, only each layer's input x (B·T·hidden floats) and a layer's activations are
// recomputed right before its backward (one more forward, memory independent of the depth).
#pragma once

#include <cstdint>
#include <vector>

#include "core/exec_context.h"
#include "train/train_linear.h"
#include "train/train_params.h"

namespace tern::train {

class TrainModel {
 public:
  TrainModel(const ParamLayout& layout, int64_t batch, int64_t seq, bool recompute);

  // ids: [B·T], each in [0, vocab) (checked by the caller). Fills logits() [B·T, vocab].
  void forward(ExecContext& ctx, const float* params, const int32_t* ids);
  float* logits() { return logits_.data(); }
  int64_t rows() const { return m_; }

  // Given ∂L/∂logits in logits() (as loss_and_grad leaves it), adds ∂L/∂params into grads.
  // Must follow forward() with the same params and ids.
  void backward(ExecContext& ctx, const float* params, const int32_t* ids, float* grads);

  // Bytes of activations held between forward and backward (for the log).
  size_t activation_bytes() const;

 private:
  struct Acts {  // one layer's activations, [m, ·]
    std::vector<float> xn1, r1, q, k, v, o, lse, h, xn2, r2, g, u, s;
  };
  void alloc(Acts& a) const;
  void layer_forward(ExecContext& ctx, const LayerView& w, const float* x, Acts& a, float* x_out);
  // dx: in, ∂L/∂(layer output); out, ∂L/∂(layer input).
  void layer_backward(ExecContext& ctx, const LayerView& w, const LayerView& gw, const float* x, Acts& a, float* dx);

  const ParamLayout* layout_;
  LlamaShape s_;
  int64_t batch_, seq_, m_;
  bool recompute_;
  std::vector<int32_t> positions_, neg_positions_;
  std::vector<std::vector<float>> x_;  // [layers + 1][m, hidden] residual stream entering each layer (+ final)
  std::vector<Acts> acts_;             // [layers], or [1] with recompute
  std::vector<float> xf_, rf_, logits_;  // final norm output [m, hidden], its rstd [m], logits [m, vocab]
  // Backward buffers.
  std::vector<float> xt_, dx_, dxn_, dq_, dk_, dv_, do_, dg_, du_, ds_, norm_partial_;
  LinearScratch lin_;
};

}  // namespace tern::train
