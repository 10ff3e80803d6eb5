#include "model/decoder.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "model/blocks/embedding.h"
#include "model/blocks/norm.h"
#include "ops/matmul.h"

namespace tern {

namespace {

// Pipeline parallelism: the rows of one micro-batch when a step of `total` rows is cut into `groups`
// chunks: ceil(total / groups), at least 1.
int64_t micro_batch_rows(int64_t total, int groups) {
  groups = std::max(1, groups);
  return std::max<int64_t>(1, (total + groups - 1) / groups);
}

}  // namespace

Decoder::Decoder(const Model& model, int64_t max_chunk)
    : model_(&model),
      tp_(model.tp_comm() && model.tp_comm()->size() > 1 ? model.tp_comm() : nullptr),
      pp_(model.pp().enabled() ? model.pp_comm() : nullptr),
      ep_(model.ep_comm() && model.ep_comm()->size() > 1 ? model.ep_comm() : nullptr),
      world_(pp_ ? pp_ : ep_ ? ep_ : tp_),
      max_chunk_(std::max<int64_t>(1, max_chunk)),
      attn_(model.config(), max_chunk_),
      ffn_(model.config().hidden_size, model.config().intermediate_size, max_chunk_) {
  const ModelConfig& c = model.config();
  const size_t rows = size_t(max_chunk_);
  x_.resize(rows * size_t(c.hidden_size));
  xn_.resize(rows * size_t(c.hidden_size));
  block_out_.resize(rows * size_t(c.hidden_size));
  positions_.resize(rows);
  pieces_.reserve(rows);
  attn_seqs_.reserve(rows);
  if (c.mla.enabled()) mla_ = std::make_unique<MlaAttention>(c, max_chunk_);
  if (c.moe.enabled()) moe_ = std::make_unique<MoeBlock>(c, max_chunk_);
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
  if (const WeightMatrix& wpe = model_->weights().pos_embed; wpe.data) {
    for (int s = 0; s < n_seqs; ++s) {
      if (seqs[s].pos0 + seqs[s].n_tokens > wpe.rows) {
        return Status::error(fmt::format("forward: position {} is past the model's {} learned positions",
                                         seqs[s].pos0 + seqs[s].n_tokens - 1, wpe.rows));
      }
    }
  }
  if (world_ && world_->rank() == 0) TERN_RETURN_IF_ERROR(announce_forward(kv, ids, total, seqs, n_seqs));
  // Cut the concatenated rows into chunks of at most max_chunk_; a sequence split across chunks
  // finds its earlier tokens' K/V in the pool, written by the previous chunk.
  // Under pipeline parallelism the step's rows go in micro-batches (parallel/pp_layout.h): chunks of
  // at most ceil(total / M) rows, so stage s + 1 runs one while stage s runs the next — a batch of
  // decode tokens and a single long prompt alike (a sequence's later chunk reads the K/V its earlier
  // chunk wrote on the same stage).
  const int micro = pp_micro_ > 0 ? pp_micro_ : model_->pp().micro_batches;
  const int64_t chunk = pp_ ? std::min(max_chunk_, micro_batch_rows(total, micro)) : max_chunk_;
  int64_t chunk_start = 0, rows = 0;
  pieces_.clear();
  for (int s = 0; s < n_seqs; ++s) {
    for (int64_t off = 0; off < seqs[s].n_tokens;) {
      const int64_t take = std::min(seqs[s].n_tokens - off, chunk - rows);
      pieces_.push_back({s, off, take});
      off += take;
      rows += take;
      if (rows == chunk) {
        TERN_RETURN_IF_ERROR(forward_chunk(ctx, kv, ids + chunk_start, seqs, out_base_.data(), hidden_out));
        chunk_start += rows;
        rows = 0;
        pieces_.clear();
      }
    }
  }
  if (rows > 0) TERN_RETURN_IF_ERROR(forward_chunk(ctx, kv, ids + chunk_start, seqs, out_base_.data(), hidden_out));
  pieces_.clear();
  if (pp_ && pp_fused_) return pp_->rank() == 0 || !model_->pp().last() ? Status::ok() : pp_send_logits(ctx, hidden_out, outs);
  if (pp_) return pp_return_hidden(hidden_out, outs);
  return Status::ok();
}

Status Decoder::forward_chunk(ExecContext& ctx, PagedKvCache& kv, const int32_t* ids, const SeqStep* seqs,
                              const int64_t* out_base, float* hidden_out) {
  const ModelConfig& cfg = model_->config();
  const TransformerWeights& w = model_->weights();
  const int64_t H = cfg.hidden_size;
  int64_t c = 0;
  attn_seqs_.clear();
  for (const Piece& p : pieces_) {
    const int64_t pos0 = seqs[p.seq].pos0 + p.off;
    for (int64_t i = 0; i < p.n; ++i) positions_[size_t(c + i)] = int32_t(pos0 + i);
    attn_seqs_.push_back({pos0, p.n, c, seqs[p.seq].block_table});
    c += p.n;
  }

  if (pp_ && !model_->pp().first()) TERN_RETURN_IF_ERROR(pp_receive(c));  // x_: the residual leaving the stage before
  else embed_tokens(ctx, w.embed, w.embed_scale, w.pos_embed, ids, positions_.data(), c, x_.data(), xn_.data());
  pp_busy_start();
  BlockStep step;
  step.rows = c;
  step.positions = positions_.data();
  step.seqs = attn_seqs_.data();
  step.n_seqs = int(attn_seqs_.size());
  step.observer = observer_;
  bool trimmed = false;  // the last layer's feed-forward ran on the output rows only
  // Moves the output rows (each piece's rows among its sequence's last n_out) of x_ and block_out_ to
  // the front, in piece order (rows only move towards the front); returns how many.
  auto keep_output_rows = [&]() {
    int64_t r = 0, kept = 0;
    for (const Piece& p : pieces_) {
      const SeqStep& s = seqs[p.seq];
      const int64_t lo = std::max(s.n_tokens - s.n_out, p.off), hi = p.off + p.n;
      for (int64_t i = lo; i < hi; ++i, ++kept) {
        const int64_t from = r + (i - p.off);
        if (from == kept) continue;
        std::memmove(x_.data() + kept * H, x_.data() + from * H, size_t(H) * sizeof(float));
        std::memmove(block_out_.data() + kept * H, block_out_.data() + from * H, size_t(H) * sizeof(float));
      }
      r += p.n;
    }
    return kept;
  };
  const int n_layers = layer_limit_ > 0 ? std::min(cfg.n_layers, layer_limit_) : cfg.n_layers;
  for (int l = 0; l < n_layers; ++l) {
    const DecoderLayerWeights& lw = w.layers[size_t(l)];
    step.layer = l;
    if (observer_) observer_->on_residual(l, x_.data(), l == 0 ? nullptr : block_out_.data(), c, H);
    // x += previous block's output; xn = norm(x)
    apply_norm(ctx, lw.attn_norm, x_.data(), l == 0 ? nullptr : block_out_.data(), c, H, xn_.data());
    // Attention step (multi-head latent attention, when a layer has lw.mla, dispatches here).
    if (lw.mla) mla_->forward(ctx, kv, *lw.mla, step, xn_.data(), block_out_.data());
    else attn_.forward(ctx, kv, lw.attn, model_->rope_inv_freq(), step, xn_.data(), block_out_.data());
    TERN_RETURN_IF_ERROR(reduce_block(c));  // tensor parallel: Σ over ranks of attn_local · Wo_localᵀ
    if (lw.attn_out_norm.present()) apply_norm(ctx, lw.attn_out_norm, block_out_.data(), nullptr, c, H, block_out_.data());
    // The last layer's feed-forward only for the rows whose hidden state is returned (a prompt chunk
    // wants its last row; the others only fed the KV cache, which this layer's attention has written):
    // ~5% of a prefill's matmuls. Each row's values do not depend on the others'. Not with an observer
    // (it sees every row) nor across ranks (their collectives count rows).
    if (l == cfg.n_layers - 1 && !observer_ && !tp_ && !pp_ && !ep_ && !lw.moe) {
      const int64_t kept = keep_output_rows();
      if (kept < c) trimmed = true, c = step.rows = kept;
    }
    apply_norm(ctx, lw.ffn_norm, x_.data(), block_out_.data(), c, H, xn_.data());
    // Feed-forward step (a mixture of experts, when a layer has lw.moe, dispatches here).
    if (lw.moe && ep_) {
      TERN_RETURN_IF_ERROR(ep_moe(ctx, *lw.moe, step, xn_.data(), block_out_.data()));  // its own all-reduce
    } else {
      if (lw.moe) moe_->forward(ctx, *lw.moe, step, xn_.data(), block_out_.data());
      else ffn_.forward(ctx, lw.mlp, step, xn_.data(), block_out_.data());
      TERN_RETURN_IF_ERROR(reduce_block(c));  // tensor parallel: Σ over ranks of act_local · Wd_localᵀ
    }
    if (lw.ffn_out_norm.present()) apply_norm(ctx, lw.ffn_out_norm, block_out_.data(), nullptr, c, H, block_out_.data());
  }
  if (observer_ && n_layers > 0) observer_->on_residual(n_layers, x_.data(), block_out_.data(), c, H);
  if (pp_ && !model_->pp().last()) return pp_send(c);
  // Final norm of the rows someone asks for: each piece's rows among its sequence's last n_out (already
  // the only rows left, in piece order, when the last layer was trimmed).
  int64_t r = 0;
  for (const Piece& p : pieces_) {
    const SeqStep& s = seqs[p.seq];
    const int64_t first_out = s.n_tokens - s.n_out;
    const int64_t lo = std::max(first_out, p.off), hi = p.off + p.n;
    if (hi > lo) {
      const int64_t r0 = trimmed ? r : r + (lo - p.off);
      float* dst = hidden_out + (out_base[p.seq] + lo - first_out) * H;
      apply_norm(ctx, w.final_norm, x_.data() + r0 * H, block_out_.data() + r0 * H, hi - lo, H, dst);
    }
    r += trimmed ? std::max<int64_t>(0, hi - lo) : p.n;
  }
  pp_busy_stop();
  return Status::ok();
}

Status Decoder::logits(ExecContext& ctx, const float* hidden, int64_t m, float* out) const {
  if (pp_) return pp_logits(ctx, hidden, m, out);
  if (tp_) return tp_logits(ctx, hidden, m, out);
  local_logits(ctx, hidden, m, out);
  return Status::ok();
}

void Decoder::local_logits(ExecContext& ctx, const float* hidden, int64_t m, float* out) const {
  const TransformerWeights& w = model_->weights();
  matmul(ctx, hidden, m, w.lm_head, out);
  if (const float cap = w.final_logit_softcap; cap > 0) {
    const int64_t n = m * w.lm_head.rows;
    for (int64_t i = 0; i < n; ++i) out[i] = std::tanh(out[i] / cap) * cap;
  }
}

}  // namespace tern
