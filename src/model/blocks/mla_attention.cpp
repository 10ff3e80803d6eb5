#include "model/blocks/mla_attention.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <span>

#include "model/weight_binder.h"
#include "ops/head_matmul.h"
#include "ops/matmul.h"
#include "ops/rms_norm.h"
#include "ops/rope.h"

namespace tern {

Status bind_mla_attention(WeightBinder& b, const ModelConfig& cfg, const std::string& p, MlaWeights* w) {
  const MlaConfig& m = cfg.mla;
  const int64_t hidden = cfg.hidden_size, H = cfg.n_heads, R = m.kv_lora_rank, P = m.qk_rope_head_dim,
                N = m.qk_nope_head_dim, V = m.v_head_dim, q_dim = H * m.qk_head_dim();
  const bool bias = cfg.attention_bias;  // q_a_proj, kv_a_proj_with_mqa and o_proj (transformers)
  if (m.q_lora_rank > 0) {
    TERN_ASSIGN_OR_RETURN(w->q_a, b.matrix(p + "q_a_proj.weight", m.q_lora_rank, hidden));
    if (bias) {
      TERN_ASSIGN_OR_RETURN(w->q_a_bias, b.vector_f32(p + "q_a_proj.bias", m.q_lora_rank));
    }
    TERN_ASSIGN_OR_RETURN(w->q_a_norm, b.vector_f32(p + "q_a_layernorm.weight", m.q_lora_rank));
    TERN_ASSIGN_OR_RETURN(w->q_b, b.matrix(p + "q_b_proj.weight", q_dim, m.q_lora_rank));
  } else {
    TERN_ASSIGN_OR_RETURN(w->q, b.matrix(p + "q_proj.weight", q_dim, hidden));
  }
  TERN_ASSIGN_OR_RETURN(w->kv_a, b.matrix(p + "kv_a_proj_with_mqa.weight", R + P, hidden));
  if (bias) {
    TERN_ASSIGN_OR_RETURN(w->kv_a_bias, b.vector_f32(p + "kv_a_proj_with_mqa.bias", R + P));
  }
  TERN_ASSIGN_OR_RETURN(w->kv_a_norm, b.vector_f32(p + "kv_a_layernorm.weight", R));
  TERN_ASSIGN_OR_RETURN(w->kv_b, b.matrix(p + "kv_b_proj.weight", H * (N + V), R));
  TERN_ASSIGN_OR_RETURN(w->o, b.matrix(p + "o_proj.weight", hidden, H * V));
  if (bias) {
    TERN_ASSIGN_OR_RETURN(w->o_bias, b.vector_f32(p + "o_proj.bias", hidden));
  }
  b.ignore_if_present(p + "rotary_emb.inv_freq");
  if (!w->kv_b.dense()) {
    return Status::error(fmt::format("{}kv_b_proj: a quantized kv_b_proj is not supported (MLA absorbs it into "
                                     "per-head f32 matrices at load)", p));
  }
  absorb_kv_b(cfg, w);
  return Status::ok();
}

void absorb_kv_b(const ModelConfig& cfg, MlaWeights* w) {
  const MlaConfig& m = cfg.mla;
  const int64_t H = cfg.n_heads, R = m.kv_lora_rank, N = m.qk_nope_head_dim, V = m.v_head_dim;
  // kv_b rows of head h: [N rows of k_nope | V rows of v], each [R].
  w->w_uk_t.assign(size_t(H * R * N), 0.f);
  w->w_uv.assign(size_t(H * V * R), 0.f);
  const DType t = w->kv_b.dtype;
  for (int64_t h = 0; h < H; ++h) {
    const int64_t row0 = h * (N + V);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t r = 0; r < R; ++r)
        w->w_uk_t[size_t((h * R + r) * N + n)] = load_as_f32(w->kv_b.data, t, size_t((row0 + n) * R + r));
    for (int64_t v = 0; v < V; ++v)
      for (int64_t r = 0; r < R; ++r)
        w->w_uv[size_t((h * V + v) * R + r)] = load_as_f32(w->kv_b.data, t, size_t((row0 + N + v) * R + r));
  }
}

MlaAttention::MlaAttention(const ModelConfig& cfg, int64_t max_rows)
    : hidden_(cfg.hidden_size),
      H_(cfg.n_heads),
      R_(cfg.mla.kv_lora_rank),
      P_(cfg.mla.qk_rope_head_dim),
      N_(cfg.mla.qk_nope_head_dim),
      V_(cfg.mla.v_head_dim),
      q_rank_(cfg.mla.q_lora_rank),
      eps_(float(cfg.rms_norm_eps)),
      scale_(float(cfg.mla.softmax_scale)),
      rope_factor_(float(rope_attention_factor(cfg.rope))),
      interleave_(cfg.mla.rope_interleave),
      inv_freq_(rope_inv_freq(cfg.rope)) {
  const size_t c = size_t(std::max<int64_t>(1, max_rows));
  qa_.resize(c * size_t(std::max<int64_t>(q_rank_, 0)));
  q_.resize(c * size_t(H_ * (N_ + P_)));
  kv_.resize(c * size_t(R_ + P_));
  ckv_.resize(c * size_t(R_));
  qpe_.resize(c * size_t(H_ * P_));
  kpe_.resize(c * size_t(P_));
  qabs_.resize(c * size_t(H_ * (R_ + P_)));
  alat_.resize(c * size_t(H_ * R_));
  attn_.resize(c * size_t(H_ * V_));
}

namespace {

// Copies `rows` vectors of P values from src (stride src_stride) to dst (contiguous), undoing
// DeepSeek's interleaved pair layout when asked: transformers views the P dims as [P/2, 2] and
// transposes, so (x0, x1, x2, x3, ..) becomes (x0, x2, .., x1, x3, ..) before rotate_half.
void gather_pe(const float* src, int64_t src_stride, int64_t rows, int64_t P, bool interleave, float* dst) {
  for (int64_t i = 0; i < rows; ++i) {
    const float* s = src + i * src_stride;
    float* d = dst + i * P;
    if (!interleave) {
      std::copy(s, s + P, d);
      continue;
    }
    for (int64_t j = 0; j < P / 2; ++j) {
      d[j] = s[2 * j];
      d[P / 2 + j] = s[2 * j + 1];
    }
  }
}

}  // namespace

void MlaAttention::forward(ExecContext& ctx, PagedKvCache& kv, const MlaWeights& w, const BlockStep& step,
                           float* xn, float* out) {
  const int64_t c = step.rows;
  const int layer = step.layer;
  const int32_t* positions = step.positions;
  const PagedAttnSeq* seqs = step.seqs;
  const int n_seqs = step.n_seqs;
  step.observe(LinearInput::kAttnIn, xn, hidden_);
  auto bias = [](const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); };
  const int64_t QK = N_ + P_, KV = R_ + P_;

  // q: [c, H, N + P]
  if (q_rank_ > 0) {
    matmul(ctx, xn, c, w.q_a, qa_.data(), bias(w.q_a_bias));
    rms_norm(ctx, qa_.data(), nullptr, c, q_rank_, w.q_a_norm.data(), eps_, qa_.data());
    step.observe(LinearInput::kQLatent, qa_.data(), q_rank_);
    matmul(ctx, qa_.data(), c, w.q_b, q_.data());
  } else {
    matmul(ctx, xn, c, w.q, q_.data());
  }
  // kv: [c, R + P] = (c_kv | k_pe); c_kv normed through a contiguous copy.
  matmul(ctx, xn, c, w.kv_a, kv_.data(), bias(w.kv_a_bias));
  for (int64_t i = 0; i < c; ++i) std::copy_n(kv_.data() + i * KV, R_, ckv_.data() + i * R_);
  rms_norm(ctx, ckv_.data(), nullptr, c, R_, w.kv_a_norm.data(), eps_, ckv_.data());

  // Rope on q_pe [c, H, P] and k_pe [c, 1, P], each row at its own position. transformers multiplies
  // cos and sin by the rope attention factor (yarn): the rotated values scale by it.
  gather_pe(q_.data() + N_, QK, c * H_, P_, interleave_, qpe_.data());
  gather_pe(kv_.data() + R_, KV, c, P_, interleave_, kpe_.data());
  rope_apply(ctx, qpe_.data(), c, int(H_), int(P_), positions, inv_freq_);
  rope_apply(ctx, kpe_.data(), c, 1, int(P_), positions, inv_freq_);
  if (rope_factor_ != 1.f) {
    for (float& x : std::span(qpe_.data(), size_t(c * H_ * P_))) x *= rope_factor_;
    for (float& x : std::span(kpe_.data(), size_t(c * P_))) x *= rope_factor_;
  }
  for (int64_t i = 0; i < c; ++i) {
    std::copy_n(ckv_.data() + i * R_, R_, kv_.data() + i * KV);
    std::copy_n(kpe_.data() + i * P_, P_, kv_.data() + i * KV + R_);
  }
  for (int s = 0; s < n_seqs; ++s) {
    kv.write(ctx.cpu(), layer, seqs[s].block_table, seqs[s].pos0, seqs[s].n_q, kv_.data() + seqs[s].row0 * KV,
             nullptr);
  }

  // q_abs [c, H, R + P] = (q_nope[h] · W_UK[h] | q_pe[h])
  HeadMatmulShape uk;
  uk.n_heads = int(H_), uk.out = int(R_), uk.in = int(N_);
  uk.x_row = H_ * QK, uk.x_head = QK;
  uk.y_row = H_ * KV, uk.y_head = KV;
  head_matmul(ctx, uk, q_.data(), c, w.w_uk_t.data(), qabs_.data());
  for (int64_t r = 0; r < c * H_; ++r) std::copy_n(qpe_.data() + r * P_, P_, qabs_.data() + r * KV + R_);

  const cpu::LatentKvLayer lat = kv.latent_layer(layer, ctx.cpu());
  latent_attention(ctx, int(H_), scale_, lat, seqs, n_seqs, qabs_.data(), alat_.data(), ws_);

  // attn [c, H, V] = a_lat[h] · W_UV[h]ᵀ, then o_proj.
  HeadMatmulShape uv;
  uv.n_heads = int(H_), uv.out = int(V_), uv.in = int(R_);
  uv.x_row = H_ * R_, uv.x_head = R_;
  uv.y_row = H_ * V_, uv.y_head = V_;
  head_matmul(ctx, uv, alat_.data(), c, w.w_uv.data(), attn_.data());
  step.observe(LinearInput::kAttnOut, attn_.data(), H_ * V_);
  matmul(ctx, attn_.data(), c, w.o, out, bias(w.o_bias));
}

}  // namespace tern
