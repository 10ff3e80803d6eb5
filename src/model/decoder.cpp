#include "model/decoder.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/embedding.h"
#include "ops/matmul.h"
#include "ops/rms_norm.h"
#include "ops/rope.h"

namespace tern {

Decoder::Decoder(const Model& model, int64_t max_chunk) : model_(&model), max_chunk_(std::max<int64_t>(1, max_chunk)) {
  const ModelConfig& c = model.config();
  const size_t rows = size_t(max_chunk_);
  x_.resize(rows * size_t(c.hidden_size));
  xn_.resize(rows * size_t(c.hidden_size));
  block_out_.resize(rows * size_t(c.hidden_size));
  q_.resize(rows * size_t(c.n_heads) * size_t(c.head_dim));
  attn_.resize(q_.size());
  gate_.resize(rows * size_t(c.intermediate_size));
  up_.resize(gate_.size());
  positions_.resize(rows);
}

Status Decoder::forward(ExecContext& ctx, SequenceKvCache& kv, const int32_t* ids, int64_t n, int64_t n_out,
                        float* hidden_out) {
  const ModelConfig& cfg = model_->config();
  if (n <= 0) return Status::error("forward: no tokens");
  if (n_out < 0 || n_out > n) return Status::error("forward: n_out out of range");
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= cfg.vocab_size) {
      return Status::error(fmt::format("token id {} is outside the vocabulary (size {})", ids[i], cfg.vocab_size));
    }
  }
  TERN_RETURN_IF_ERROR(kv.reserve(kv.length() + n));
  for (int64_t done = 0; done < n; done += max_chunk_) {
    const int64_t c = std::min(max_chunk_, n - done);
    // Rows of this chunk among the last n_out of the whole input.
    const int64_t first_out = n - n_out;
    const int64_t lo = std::max(first_out, done), hi = done + c;
    const int64_t rows_out = std::max<int64_t>(0, hi - lo);
    float* dst = rows_out ? hidden_out + (lo - first_out) * cfg.hidden_size : nullptr;
    forward_chunk(ctx, kv, ids + done, c, rows_out, dst);
  }
  return Status::ok();
}

void Decoder::forward_chunk(ExecContext& ctx, SequenceKvCache& kv, const int32_t* ids, int64_t c, int64_t rows_out,
                            float* hidden_out) {
  const ModelConfig& cfg = model_->config();
  const TransformerWeights& w = model_->weights();
  const int64_t pos0 = kv.length(), H = cfg.hidden_size;
  const float eps = float(cfg.rms_norm_eps);
  for (int64_t i = 0; i < c; ++i) positions_[size_t(i)] = int32_t(pos0 + i);

  embedding_lookup(ctx, w.embed, ids, c, x_.data());
  for (int l = 0; l < cfg.n_layers; ++l) {
    const DecoderLayerWeights& lw = w.layers[size_t(l)];
    // x += previous MLP output; xn = norm(x)
    rms_norm(ctx, x_.data(), l == 0 ? nullptr : block_out_.data(), c, H, lw.input_norm.data(), eps, xn_.data());
    attention_block(ctx, kv, l, c, pos0);
    rms_norm(ctx, x_.data(), block_out_.data(), c, H, lw.post_attn_norm.data(), eps, xn_.data());
    mlp_block(ctx, l, c);
  }
  kv.set_length(pos0 + c);
  if (rows_out > 0) {
    const int64_t r0 = c - rows_out;
    rms_norm(ctx, x_.data() + r0 * H, block_out_.data() + r0 * H, rows_out, H, w.final_norm.data(), eps, hidden_out);
  }
}

void Decoder::attention_block(ExecContext& ctx, SequenceKvCache& kv, int layer, int64_t c, int64_t pos0) {
  const ModelConfig& cfg = model_->config();
  const AttentionWeights& a = model_->weights().layers[size_t(layer)].attn;
  const int hd = cfg.head_dim;
  const float eps = float(cfg.rms_norm_eps);
  auto bias = [](const std::vector<float>& b) { return b.empty() ? nullptr : b.data(); };

  // New K/V rows go straight into the cache: k_new, v_new: [c, n_kv * hd] at row pos0.
  float* k_new = kv.k(layer) + pos0 * kv.row_floats();
  float* v_new = kv.v(layer) + pos0 * kv.row_floats();
  observe(layer, LinearInput::kAttnIn, xn_.data(), c, cfg.hidden_size);
  matmul(ctx, xn_.data(), c, a.q, q_.data(), bias(a.q_bias));
  matmul(ctx, xn_.data(), c, a.k, k_new, bias(a.k_bias));
  matmul(ctx, xn_.data(), c, a.v, v_new, bias(a.v_bias));
  if (!a.q_norm.empty()) {  // per-head RMSNorm: rows of [c * heads, hd]
    rms_norm(ctx, q_.data(), nullptr, c * cfg.n_heads, hd, a.q_norm.data(), eps, q_.data());
    rms_norm(ctx, k_new, nullptr, c * cfg.n_kv_heads, hd, a.k_norm.data(), eps, k_new);
  }
  rope_apply(ctx, q_.data(), c, cfg.n_heads, hd, positions_.data(), model_->rope_inv_freq());
  rope_apply(ctx, k_new, c, cfg.n_kv_heads, hd, positions_.data(), model_->rope_inv_freq());

  AttentionShape shape;
  shape.n_heads = cfg.n_heads;
  shape.n_kv_heads = cfg.n_kv_heads;
  shape.head_dim = hd;
  shape.scale = 1.0f / std::sqrt(float(hd));
  shape.sliding_window = a.sliding_window;
  attention(ctx, shape, q_.data(), c, pos0, kv.k(layer), kv.v(layer), pos0 + c, attn_.data());
  observe(layer, LinearInput::kAttnOut, attn_.data(), c, int64_t(cfg.n_heads) * hd);
  matmul(ctx, attn_.data(), c, a.o, block_out_.data());
}

void Decoder::mlp_block(ExecContext& ctx, int layer, int64_t c) {
  const ModelConfig& cfg = model_->config();
  const MlpWeights& m = model_->weights().layers[size_t(layer)].mlp;
  observe(layer, LinearInput::kMlpIn, xn_.data(), c, cfg.hidden_size);
  matmul(ctx, xn_.data(), c, m.gate, gate_.data());
  matmul(ctx, xn_.data(), c, m.up, up_.data());
  swiglu(ctx, gate_.data(), up_.data(), c, cfg.intermediate_size, gate_.data());
  observe(layer, LinearInput::kMlpDown, gate_.data(), c, cfg.intermediate_size);
  matmul(ctx, gate_.data(), c, m.down, block_out_.data());
}

void Decoder::logits(ExecContext& ctx, const float* hidden, int64_t m, float* out) const {
  matmul(ctx, hidden, m, model_->weights().lm_head, out);
}

}  // namespace tern
