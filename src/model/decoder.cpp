#include "model/decoder.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops/activation.h"
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
  k_new_.resize(rows * size_t(c.n_kv_heads) * size_t(c.head_dim));
  v_new_.resize(k_new_.size());
  attn_.resize(q_.size());
  gate_.resize(rows * size_t(c.intermediate_size));
  up_.resize(gate_.size());
  positions_.resize(rows);
  pieces_.reserve(rows);
  attn_seqs_.reserve(rows);
}

Status Decoder::forward(ExecContext& ctx, SequenceKvCache& kv, const int32_t* ids, int64_t n, int64_t n_out,
                        float* hidden_out) {
  if (n <= 0) return Status::error("forward: no tokens");
  if (n_out < 0 || n_out > n) return Status::error("forward: n_out out of range");
  TERN_RETURN_IF_ERROR(kv.reserve(kv.length() + n));
  SeqStep s;
  s.pos0 = kv.length();
  s.n_tokens = n;
  s.block_table = kv.block_table();
  s.n_blocks = kv.n_blocks();
  s.n_out = n_out;
  TERN_RETURN_IF_ERROR(forward_batch(ctx, kv.pool(), ids, &s, 1, hidden_out));
  kv.set_length(s.pos0 + n);
  return Status::ok();
}

Status Decoder::forward_batch(ExecContext& ctx, PagedKvCache& kv, const int32_t* ids, const SeqStep* seqs, int n_seqs,
                              float* hidden_out) {
  const ModelConfig& cfg = model_->config();
  if (n_seqs <= 0) return Status::error("forward: empty batch");
  if (kv.n_layers() != cfg.n_layers) return Status::error("forward: the KV pool was built for another model");
  int64_t total = 0, outs = 0;
  out_base_.resize(size_t(n_seqs));
  for (int s = 0; s < n_seqs; ++s) {
    const SeqStep& q = seqs[s];
    if (q.n_tokens <= 0 || q.pos0 < 0) return Status::error(fmt::format("forward: sequence {} has no tokens", s));
    if (q.n_out < 0 || q.n_out > q.n_tokens) return Status::error(fmt::format("forward: sequence {} n_out out of range", s));
    const int64_t need = (q.pos0 + q.n_tokens + kv.block_size() - 1) / kv.block_size();
    if (!q.block_table || q.n_blocks < need) {
      return Status::error(fmt::format("forward: sequence {} needs {} KV blocks for {} positions, its table has {}", s,
                                       need, q.pos0 + q.n_tokens, q.n_blocks));
    }
    for (int64_t b = 0; b < need; ++b) {
      if (q.block_table[b] < 0 || q.block_table[b] >= kv.num_blocks()) {
        return Status::error(fmt::format("forward: sequence {} names KV block {} outside the pool of {}", s,
                                         q.block_table[b], kv.num_blocks()));
      }
    }
    out_base_[size_t(s)] = outs;
    outs += q.n_out;
    total += q.n_tokens;
  }
  for (int64_t i = 0; i < total; ++i) {
    if (ids[i] < 0 || ids[i] >= cfg.vocab_size) {
      return Status::error(fmt::format("token id {} is outside the vocabulary (size {})", ids[i], cfg.vocab_size));
    }
  }
  // Cut the concatenated rows into chunks of at most max_chunk_; a sequence split across chunks
  // finds its earlier tokens' K/V in the pool, written by the previous chunk.
  int64_t chunk_start = 0, rows = 0;
  pieces_.clear();
  for (int s = 0; s < n_seqs; ++s) {
    for (int64_t off = 0; off < seqs[s].n_tokens;) {
      const int64_t take = std::min(seqs[s].n_tokens - off, max_chunk_ - rows);
      pieces_.push_back({s, off, take});
      off += take;
      rows += take;
      if (rows == max_chunk_) {
        forward_chunk(ctx, kv, ids + chunk_start, seqs, out_base_.data(), hidden_out);
        chunk_start += rows;
        rows = 0;
        pieces_.clear();
      }
    }
  }
  if (rows > 0) forward_chunk(ctx, kv, ids + chunk_start, seqs, out_base_.data(), hidden_out);
  pieces_.clear();
  return Status::ok();
}

void Decoder::forward_chunk(ExecContext& ctx, PagedKvCache& kv, const int32_t* ids, const SeqStep* seqs,
                            const int64_t* out_base, float* hidden_out) {
  const ModelConfig& cfg = model_->config();
  const TransformerWeights& w = model_->weights();
  const int64_t H = cfg.hidden_size;
  const float eps = float(cfg.rms_norm_eps);
  int64_t c = 0;
  attn_seqs_.clear();
  for (const Piece& p : pieces_) {
    const int64_t pos0 = seqs[p.seq].pos0 + p.off;
    for (int64_t i = 0; i < p.n; ++i) positions_[size_t(c + i)] = int32_t(pos0 + i);
    attn_seqs_.push_back({pos0, p.n, c, seqs[p.seq].block_table});
    c += p.n;
  }

  embedding_lookup(ctx, w.embed, ids, c, x_.data());
  const int n_layers = layer_limit_ > 0 ? std::min(cfg.n_layers, layer_limit_) : cfg.n_layers;
  for (int l = 0; l < n_layers; ++l) {
    const DecoderLayerWeights& lw = w.layers[size_t(l)];
    // x += previous MLP output; xn = norm(x)
    rms_norm(ctx, x_.data(), l == 0 ? nullptr : block_out_.data(), c, H, lw.input_norm.data(), eps, xn_.data());
    attention_block(ctx, kv, seqs, l, c);
    rms_norm(ctx, x_.data(), block_out_.data(), c, H, lw.post_attn_norm.data(), eps, xn_.data());
    mlp_block(ctx, l, c);
  }
  // Final norm of the rows someone asks for: each piece's rows among its sequence's last n_out.
  int64_t r = 0;
  for (const Piece& p : pieces_) {
    const SeqStep& s = seqs[p.seq];
    const int64_t first_out = s.n_tokens - s.n_out;
    const int64_t lo = std::max(first_out, p.off), hi = p.off + p.n;
    if (hi > lo) {
      const int64_t r0 = r + (lo - p.off);
      float* dst = hidden_out + (out_base[p.seq] + lo - first_out) * H;
      rms_norm(ctx, x_.data() + r0 * H, block_out_.data() + r0 * H, hi - lo, H, w.final_norm.data(), eps, dst);
    }
    r += p.n;
  }
}

void Decoder::attention_block(ExecContext& ctx, PagedKvCache& kv, const SeqStep* seqs, int layer, int64_t c) {
  const ModelConfig& cfg = model_->config();
  const AttentionWeights& a = model_->weights().layers[size_t(layer)].attn;
  const int hd = cfg.head_dim;
  const float eps = float(cfg.rms_norm_eps);
  auto bias = [](const std::vector<float>& b) { return b.empty() ? nullptr : b.data(); };

  // q: [c, n_heads * hd]; k_new, v_new: [c, n_kv * hd], stored into the pool after RoPE.
  observe(layer, LinearInput::kAttnIn, xn_.data(), c, cfg.hidden_size);
  matmul(ctx, xn_.data(), c, a.q, q_.data(), bias(a.q_bias));
  matmul(ctx, xn_.data(), c, a.k, k_new_.data(), bias(a.k_bias));
  matmul(ctx, xn_.data(), c, a.v, v_new_.data(), bias(a.v_bias));
  if (!a.q_norm.empty()) {  // per-head RMSNorm: rows of [c * heads, hd]
    rms_norm(ctx, q_.data(), nullptr, c * cfg.n_heads, hd, a.q_norm.data(), eps, q_.data());
    rms_norm(ctx, k_new_.data(), nullptr, c * cfg.n_kv_heads, hd, a.k_norm.data(), eps, k_new_.data());
  }
  // Each row rotates at its own position (rows of different sequences sit side by side).
  rope_apply(ctx, q_.data(), c, cfg.n_heads, hd, positions_.data(), model_->rope_inv_freq());
  rope_apply(ctx, k_new_.data(), c, cfg.n_kv_heads, hd, positions_.data(), model_->rope_inv_freq());
  const int64_t kv_row = int64_t(cfg.n_kv_heads) * hd;
  for (const PagedAttnSeq& s : attn_seqs_) {
    kv.write(ctx.cpu(), layer, s.block_table, s.pos0, s.n_q, k_new_.data() + s.row0 * kv_row,
             v_new_.data() + s.row0 * kv_row);
  }

  AttentionShape shape;
  shape.n_heads = cfg.n_heads;
  shape.n_kv_heads = cfg.n_kv_heads;
  shape.head_dim = hd;
  shape.scale = 1.0f / std::sqrt(float(hd));
  shape.sliding_window = a.sliding_window;
  const cpu::PagedKvLayer pool = kv.layer(layer, ctx.cpu());
  paged_attention(ctx, shape, pool, attn_seqs_.data(), int(attn_seqs_.size()), q_.data(), attn_.data(), attn_ws_);
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
