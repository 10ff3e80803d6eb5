// The forward pass of a Llama-family decoder on the CPU, generic over architectures: what differs
// between them (biases, q/k norm, sliding window) was resolved when the weights were bound.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "model/model.h"
#include "model/sequence_kv_cache.h"
#include "ops/exec_context.h"

namespace tern {

// Calibration (quantization: AWQ, GPTQ, SmoothQuant) watches the input of every linear layer.
// q/k/v share one input (kAttnIn), gate/up share one (kMlpIn).
enum class LinearInput { kAttnIn, kAttnOut, kMlpIn, kMlpDown };

class ActivationObserver {
 public:
  virtual ~ActivationObserver() = default;
  // x: [rows, cols] — the f32 input rows of layer `layer`'s linear(s) at `slot` for this forward.
  virtual void on_linear_input(int layer, LinearInput slot, const float* x, int64_t rows, int64_t cols) = 0;
  // Evaluation only: called right after on_linear_input, may rewrite x in place before the linear(s)
  // read it, to simulate on dense weights what a quantized kernel does to its input (W8A8's per-token
  // int8 rounding). The default leaves x alone.
  virtual void rewrite_linear_input(int layer, LinearInput slot, float* x, int64_t rows, int64_t cols) {}
};

class Decoder {
 public:
  // Long inputs are processed in chunks of at most `max_chunk` tokens, which bounds the activations.
  explicit Decoder(const Model& model, int64_t max_chunk = 512);

  // Appends ids [n] to the sequence held in `kv` (positions kv.length() ..), computing and storing
  // their K/V, and writes the final-normed hidden states of the last `n_out` of them into
  // hidden_out [n_out, hidden]. Errors: an id outside the vocabulary, or the cache is full.
  Status forward(ExecContext& ctx, SequenceKvCache& kv, const int32_t* ids, int64_t n, int64_t n_out,
                 float* hidden_out);

  // logits [m, vocab] = hidden [m, hidden] · lm_headᵀ
  void logits(ExecContext& ctx, const float* hidden, int64_t m, float* out) const;

  const Model& model() const { return *model_; }
  // Sees every linear layer's input from now on (null: none). Not owned.
  void set_observer(ActivationObserver* observer) { observer_ = observer; }

 private:
  void forward_chunk(ExecContext& ctx, SequenceKvCache& kv, const int32_t* ids, int64_t c, int64_t rows_out,
                     float* hidden_out);
  void attention_block(ExecContext& ctx, SequenceKvCache& kv, int layer, int64_t c, int64_t pos0);
  void mlp_block(ExecContext& ctx, int layer, int64_t c);
  void observe(int layer, LinearInput slot, float* x, int64_t rows, int64_t cols) {
    if (!observer_) return;
    observer_->on_linear_input(layer, slot, x, rows, cols);
    observer_->rewrite_linear_input(layer, slot, x, rows, cols);
  }

  const Model* model_;
  int64_t max_chunk_;
  ActivationObserver* observer_ = nullptr;
  // Activations for one chunk of c tokens:
  std::vector<float> x_;        // [c, hidden] residual stream
  std::vector<float> xn_;       // [c, hidden] normed input of a block
  std::vector<float> q_;        // [c, n_heads * head_dim]
  std::vector<float> attn_;     // [c, n_heads * head_dim]
  std::vector<float> block_out_;// [c, hidden] output of the last block, added into x_ by the next norm
  std::vector<float> gate_;     // [c, intermediate]
  std::vector<float> up_;       // [c, intermediate]
  std::vector<int32_t> positions_;  // [c]
};

}  // namespace tern
