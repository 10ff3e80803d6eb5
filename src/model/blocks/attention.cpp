#include "model/blocks/attention.h"

#include <cmath>

#include "ops/matmul.h"
#include "ops/rms_norm.h"

namespace tern {

AttentionBlock::AttentionBlock(const ModelConfig& cfg, int64_t max_rows)
    : hidden_(cfg.hidden_size), n_heads_(cfg.n_heads), n_kv_heads_(cfg.n_kv_heads), head_dim_(cfg.head_dim) {
  const size_t rows = size_t(max_rows);
  q_.resize(rows * size_t(n_heads_) * size_t(head_dim_));
  k_new_.resize(rows * size_t(n_kv_heads_) * size_t(head_dim_));
  v_new_.resize(k_new_.size());
  attn_.resize(q_.size());
}

void AttentionBlock::forward(ExecContext& ctx, PagedKvCache& kv, const AttentionWeights& a,
                             const std::vector<float>& inv_freq, const BlockStep& step, float* xn, float* out) {
  const int64_t c = step.rows;
  const int hd = head_dim_;
  auto bias = [](const std::vector<float>& b) { return b.empty() ? nullptr : b.data(); };

  // q: [c, n_heads * hd]; k_new, v_new: [c, n_kv * hd], stored into the pool after RoPE.
  step.observe(LinearInput::kAttnIn, xn, hidden_);
  const MatmulJob qkv[] = {{xn, &a.q, q_.data(), bias(a.q_bias)},
                           {xn, &a.k, k_new_.data(), bias(a.k_bias)},
                           {xn, &a.v, v_new_.data(), bias(a.v_bias)}};
  matmul_group(ctx, c, qkv);
  if (a.q_norm.present()) {  // per-head RMSNorm: rows of [c * heads, hd]
    apply_norm(ctx, a.q_norm, q_.data(), nullptr, c * n_heads_, hd, q_.data());
    apply_norm(ctx, a.k_norm, k_new_.data(), nullptr, c * n_kv_heads_, hd, k_new_.data());
  }
  // Each row rotates at its own position (rows of different sequences sit side by side).
  if (a.rope != RopeLayout::kNone) {
    rope_apply(ctx, q_.data(), c, n_heads_, hd, step.positions, inv_freq, a.rope);
    rope_apply(ctx, k_new_.data(), c, n_kv_heads_, hd, step.positions, inv_freq, a.rope);
  }
  const int64_t kv_row = int64_t(n_kv_heads_) * hd;
  for (int i = 0; i < step.n_seqs; ++i) {
    const PagedAttnSeq& s = step.seqs[i];
    kv.write(ctx.cpu(), step.layer, s.block_table, s.pos0, s.n_q, k_new_.data() + s.row0 * kv_row,
             v_new_.data() + s.row0 * kv_row);
  }

  AttentionShape shape;
  shape.n_heads = n_heads_;
  shape.n_kv_heads = n_kv_heads_;
  shape.head_dim = hd;
  shape.scale = a.scale > 0 ? a.scale : 1.0f / std::sqrt(float(hd));
  shape.sliding_window = a.sliding_window;
  shape.softcap = a.softcap;
  const cpu::PagedKvLayer pool = kv.layer(step.layer, ctx.cpu());
  paged_attention(ctx, shape, pool, step.seqs, step.n_seqs, q_.data(), attn_.data(), ws_);
  step.observe(LinearInput::kAttnOut, attn_.data(), int64_t(n_heads_) * hd);
  matmul(ctx, attn_.data(), c, a.o, out, bias(a.o_bias));
}

}  // namespace tern
