#include "model/blocks/feed_forward.h"

#include "ops/activation.h"
#include "ops/matmul.h"

namespace tern {

FeedForwardBlock::FeedForwardBlock(int64_t hidden, int64_t inter, int64_t max_rows) : hidden_(hidden), inter_(inter) {
  gate_.resize(size_t(max_rows) * size_t(inter));
  up_.resize(gate_.size());
}

void FeedForwardBlock::forward(ExecContext& ctx, const FeedForwardWeights& m, const BlockStep& step, float* xn,
                               float* out) {
  const int64_t c = step.rows;
  auto bias = [](const std::vector<float>& b) { return b.empty() ? nullptr : b.data(); };
  step.observe(LinearInput::kMlpIn, xn, hidden_);
  // h: [c, inter], the input of down, in gate_.
  if (m.gated) {
    const MatmulJob gate_up[] = {{xn, &m.gate, gate_.data()}, {xn, &m.up, up_.data(), bias(m.up_bias)}};
    matmul_group(ctx, c, gate_up);
    if (m.act == Activation::kSilu) {
      swiglu(ctx, gate_.data(), up_.data(), c, inter_, gate_.data());
    } else {
      geglu_tanh(ctx, gate_.data(), up_.data(), c, inter_, gate_.data());
    }
  } else {
    matmul(ctx, xn, c, m.up, gate_.data(), bias(m.up_bias));
    // Only the tanh GELU is bound for a plain MLP (the binder refuses other activations).
    gelu_tanh(ctx, gate_.data(), c, inter_, gate_.data());
  }
  step.observe(LinearInput::kMlpDown, gate_.data(), inter_);
  matmul(ctx, gate_.data(), c, m.down, out, bias(m.down_bias));
}

}  // namespace tern
