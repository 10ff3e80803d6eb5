#include "train/train_model.h"

#include <algorithm>
#include <cmath>

#include "ops/activation.h"
#include "train/train_attention.h"
#include "train/train_norm.h"
#include "train/train_pointwise.h"

namespace tern::train {

TrainModel::TrainModel(const ParamLayout& layout, int64_t batch, int64_t seq, bool recompute)
    : layout_(&layout), s_(layout.shape()), batch_(batch), seq_(seq), m_(batch * seq), recompute_(recompute) {
  const int64_t H = s_.hidden;
  positions_.resize(static_cast<size_t>(m_));
  for (int64_t r = 0; r < m_; ++r) positions_[size_t(r)] = int32_t(r % seq_);
  x_.assign(size_t(s_.layers + 1), std::vector<float>(size_t(m_ * H)));
  acts_.resize(recompute_ ? 1 : size_t(s_.layers));
  for (Acts& a : acts_) alloc(a);
  xf_.resize(size_t(m_ * H));
  rf_.resize(static_cast<size_t>(m_));
  logits_.resize(size_t(m_ * s_.vocab));
  const int64_t qd = int64_t(s_.heads) * s_.head_dim, kvd = int64_t(s_.kv_heads) * s_.head_dim;
  xt_.resize(size_t(m_ * H));  // xn1ᵀ or xn2ᵀ [hidden, m], shared by the linears that read it
  dx_.resize(size_t(m_ * H));
  dxn_.resize(size_t(m_ * H));
  dq_.resize(size_t(m_ * qd));
  do_.resize(size_t(m_ * qd));
  dk_.resize(size_t(m_ * kvd));
  dv_.resize(size_t(m_ * kvd));
  dg_.resize(size_t(m_ * s_.inter));
  du_.resize(size_t(m_ * s_.inter));
  ds_.resize(size_t(m_ * s_.inter));
}

void TrainModel::alloc(Acts& a) const {
  const int64_t H = s_.hidden, qd = int64_t(s_.heads) * s_.head_dim, kvd = int64_t(s_.kv_heads) * s_.head_dim;
  const size_t m = size_t(m_);
  a.xn1.resize(m * size_t(H));
  a.r1.resize(m);
  a.q.resize(m * size_t(qd));
  a.k.resize(m * size_t(kvd));
  a.v.resize(m * size_t(kvd));
  a.o.resize(m * size_t(qd));
  a.lse.resize(m * size_t(s_.heads));
  a.h.resize(m * size_t(H));
  a.xn2.resize(m * size_t(H));
  a.r2.resize(m);
  a.g.resize(m * size_t(s_.inter));
  a.u.resize(m * size_t(s_.inter));
  a.s.resize(m * size_t(s_.inter));
}

size_t TrainModel::activation_bytes() const {
  size_t n = 0;
  for (const auto& x : x_) n += x.size();
  for (const Acts& a : acts_)
    n += a.xn1.size() + a.r1.size() + a.q.size() + a.k.size() + a.v.size() + a.o.size() + a.lse.size() + a.h.size() +
         a.xn2.size() + a.r2.size() + a.g.size() + a.u.size() + a.s.size();
  n += xf_.size() + rf_.size() + logits_.size();
  return n * sizeof(float);
}

void TrainModel::layer_forward(ExecContext& ctx, const LayerView& w, const float* x, Acts& a, float* x_out) {
  const int64_t H = s_.hidden, qd = int64_t(s_.heads) * s_.head_dim, kvd = int64_t(s_.kv_heads) * s_.head_dim;
  rms_norm_forward(ctx, x, m_, H, w.attn_norm, s_.eps, a.xn1.data(), a.r1.data());
  linear_forward(ctx, a.xn1.data(), m_, w.wq, qd, H, a.q.data());
  linear_forward(ctx, a.xn1.data(), m_, w.wk, kvd, H, a.k.data());
  linear_forward(ctx, a.xn1.data(), m_, w.wv, kvd, H, a.v.data());
  rope_forward(ctx, a.q.data(), m_, s_.heads, s_.head_dim, positions_.data(), s_.inv_freq);
  rope_forward(ctx, a.k.data(), m_, s_.kv_heads, s_.head_dim, positions_.data(), s_.inv_freq);
  AttentionShape as{batch_, seq_, s_.heads, s_.kv_heads, s_.head_dim, float(1.0 / std::sqrt(double(s_.head_dim)))};
  attention_forward(ctx, as, a.q.data(), a.k.data(), a.v.data(), a.o.data(), a.lse.data());
  linear_forward(ctx, a.o.data(), m_, w.wo, H, qd, a.h.data());
  ctx.pool().parallel_for(m_ * H, 1024, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) a.h[size_t(i)] += x[i];
  });
  rms_norm_forward(ctx, a.h.data(), m_, H, w.ffn_norm, s_.eps, a.xn2.data(), a.r2.data());
  linear_forward(ctx, a.xn2.data(), m_, w.wg, s_.inter, H, a.g.data());
  linear_forward(ctx, a.xn2.data(), m_, w.wu, s_.inter, H, a.u.data());
  swiglu(ctx, a.g.data(), a.u.data(), m_, s_.inter, a.s.data());
  linear_forward(ctx, a.s.data(), m_, w.wd, H, s_.inter, x_out);
  ctx.pool().parallel_for(m_ * H, 1024, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) x_out[i] += a.h[size_t(i)];
  });
}

void TrainModel::forward(ExecContext& ctx, const float* params, const int32_t* ids) {
  const int64_t H = s_.hidden;
  embedding_forward(ctx, layout_->embed(params), H, ids, m_, x_[0].data());
  for (int l = 0; l < s_.layers; ++l)
    layer_forward(ctx, layout_->layer(params, l), x_[size_t(l)].data(), acts_[recompute_ ? 0 : size_t(l)],
                  x_[size_t(l) + 1].data());
  rms_norm_forward(ctx, x_[size_t(s_.layers)].data(), m_, H, layout_->final_norm(params), s_.eps, xf_.data(), rf_.data());
  linear_forward(ctx, xf_.data(), m_, layout_->lm_head(params), s_.vocab, H, logits_.data());
}

void TrainModel::layer_backward(ExecContext& ctx, const LayerView& w, const LayerView& gw, const float* x, Acts& a,
                                float* dx) {
  const int64_t H = s_.hidden, qd = int64_t(s_.heads) * s_.head_dim, kvd = int64_t(s_.kv_heads) * s_.head_dim;
  // Feed-forward: x' = h + s · Wdᵀ, so ∂h starts as ∂x' (dx, updated in place) and gains the norm's path.
  linear_backward(ctx, dx, a.s.data(), m_, w.wd, H, s_.inter, ds_.data(), false, gw.wd, lin_);
  swiglu_backward(ctx, ds_.data(), a.g.data(), a.u.data(), m_, s_.inter, dg_.data(), du_.data());
  transpose(ctx, a.xn2.data(), m_, H, xt_.data());
  linear_backward(ctx, dg_.data(), a.xn2.data(), m_, w.wg, s_.inter, H, dxn_.data(), false, gw.wg, lin_, xt_.data());
  linear_backward(ctx, du_.data(), a.xn2.data(), m_, w.wu, s_.inter, H, dxn_.data(), true, gw.wu, lin_, xt_.data());
  rms_norm_backward(ctx, dxn_.data(), a.h.data(), a.r2.data(), m_, H, w.ffn_norm, dx, gw.ffn_norm, norm_partial_);
  // Attention: h = x + o · Woᵀ; dx now holds ∂h, and becomes ∂x.
  linear_backward(ctx, dx, a.o.data(), m_, w.wo, H, qd, do_.data(), false, gw.wo, lin_);
  AttentionShape as{batch_, seq_, s_.heads, s_.kv_heads, s_.head_dim, float(1.0 / std::sqrt(double(s_.head_dim)))};
  attention_backward(ctx, as, a.q.data(), a.k.data(), a.v.data(), a.o.data(), a.lse.data(), do_.data(), dq_.data(),
                     dk_.data(), dv_.data());
  rope_backward(ctx, dq_.data(), m_, s_.heads, s_.head_dim, positions_.data(), s_.inv_freq, neg_positions_);
  rope_backward(ctx, dk_.data(), m_, s_.kv_heads, s_.head_dim, positions_.data(), s_.inv_freq, neg_positions_);
  transpose(ctx, a.xn1.data(), m_, H, xt_.data());
  linear_backward(ctx, dq_.data(), a.xn1.data(), m_, w.wq, qd, H, dxn_.data(), false, gw.wq, lin_, xt_.data());
  linear_backward(ctx, dk_.data(), a.xn1.data(), m_, w.wk, kvd, H, dxn_.data(), true, gw.wk, lin_, xt_.data());
  linear_backward(ctx, dv_.data(), a.xn1.data(), m_, w.wv, kvd, H, dxn_.data(), true, gw.wv, lin_, xt_.data());
  rms_norm_backward(ctx, dxn_.data(), x, a.r1.data(), m_, H, w.attn_norm, dx, gw.attn_norm, norm_partial_);
}

void TrainModel::backward(ExecContext& ctx, const float* params, const int32_t* ids, float* grads) {
  const int64_t H = s_.hidden;
  // logits = xf · lm_headᵀ → ∂xf into dxn_, ∂lm_head (the embedding when tied) accumulated.
  linear_backward(ctx, logits_.data(), xf_.data(), m_, layout_->lm_head(params), s_.vocab, H, dxn_.data(), false,
                  layout_->lm_head(grads), lin_);
  std::fill(dx_.begin(), dx_.end(), 0.f);
  rms_norm_backward(ctx, dxn_.data(), x_[size_t(s_.layers)].data(), rf_.data(), m_, H, layout_->final_norm(params),
                    dx_.data(), layout_->final_norm(grads), norm_partial_);
  for (int l = s_.layers - 1; l >= 0; --l) {
    const LayerView w = layout_->layer(params, l);
    Acts& a = acts_[recompute_ ? 0 : size_t(l)];
    // The recomputed output goes to x_[l + 1], which holds exactly that already (same params and input).
    if (recompute_) layer_forward(ctx, w, x_[size_t(l)].data(), a, x_[size_t(l) + 1].data());
    layer_backward(ctx, w, layout_->layer(grads, l), x_[size_t(l)].data(), a, dx_.data());
  }
  embedding_backward(dx_.data(), H, ids, m_, layout_->embed(grads));
}

}  // namespace tern::train
