#include "train/train_attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/vec_math.h"

namespace tern::train {

namespace {

// One (sequence, KV head) group's buffers: keys and values transposed to [d, T] so that a score row
// (q · k_j for all j) is d axpy's over contiguous memory, which the compiler vectorises.
struct GroupScratch {
  std::vector<float> kt, vt, s, dp, qs, dq, dk, dv;
  void size(int64_t T, int d) {
    kt.resize(size_t(T * d));
    vt.resize(size_t(T * d));
    s.resize(static_cast<size_t>(T));
    dp.resize(static_cast<size_t>(T));
    qs.resize(static_cast<size_t>(d));
    dq.resize(static_cast<size_t>(d));
    dk.resize(size_t(T * d));
    dv.resize(size_t(T * d));
  }
};

// s[j] = exp(s[j] - shift) for j < n; the AVX2 build uses the kernels' vector exp (~1 ulp).
TERN_AVX2_TARGET void exp_shift_avx2(float* s, int64_t n, float shift) {
  int64_t j = 0;
  const __m256 sh = _mm256_set1_ps(shift);
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(s + j, cpu::exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(s + j), sh)));
  for (; j < n; ++j) s[j] = std::exp(s[j] - shift);
}
template <bool kAvx2>
[[gnu::always_inline]] inline void exp_shift(float* s, int64_t n, float shift) {
  if constexpr (kAvx2) {
    exp_shift_avx2(s, n, shift);
  } else {
    for (int64_t j = 0; j < n; ++j) s[j] = std::exp(s[j] - shift);
  }
}

// scores s[0..n) = qs · kt[:, 0..n)  (kt: [d, T]).
[[gnu::always_inline]] inline void score_row(const float* qs, const float* kt, int64_t T, int d, int64_t n, float* s) {
  for (int64_t j = 0; j < n; ++j) s[j] = 0.f;
  for (int c = 0; c < d; ++c) {
    const float a = qs[c];
    const float* kr = kt + c * T;
    for (int64_t j = 0; j < n; ++j) s[j] += a * kr[j];
  }
}

template <bool kAvx2>
[[gnu::always_inline]] inline void forward_group(const AttentionShape& sh, int64_t b, int g, const float* q,
                                                 const float* k, const float* v, float* o, float* lse,
                                                 GroupScratch& w) {
  const int64_t T = sh.seq;
  const int d = sh.head_dim, rep = sh.n_heads / sh.n_kv_heads;
  const int64_t qstride = int64_t(sh.n_heads) * d, kstride = int64_t(sh.n_kv_heads) * d;
  for (int64_t j = 0; j < T; ++j)
    for (int c = 0; c < d; ++c) w.kt[size_t(c * T + j)] = k[(b * T + j) * kstride + g * d + c];
  for (int hr = 0; hr < rep; ++hr) {
    const int h = g * rep + hr;
    for (int64_t i = 0; i < T; ++i) {
      const float* qi = q + (b * T + i) * qstride + h * d;
      for (int c = 0; c < d; ++c) w.qs[size_t(c)] = qi[c] * sh.scale;
      const int64_t n = i + 1;  // causal: keys 0..i
      score_row(w.qs.data(), w.kt.data(), T, d, n, w.s.data());
      float mx = w.s[0];
      for (int64_t j = 1; j < n; ++j) mx = std::max(mx, w.s[size_t(j)]);
      exp_shift<kAvx2>(w.s.data(), n, mx);
      float sum = 0.f;
      for (int64_t j = 0; j < n; ++j) sum += w.s[size_t(j)];
      float* oi = o + (b * T + i) * qstride + h * d;
      for (int c = 0; c < d; ++c) oi[c] = 0.f;
      const float inv = 1.f / sum;
      for (int64_t j = 0; j < n; ++j) {
        const float p = w.s[size_t(j)] * inv;
        const float* vj = v + (b * T + j) * kstride + g * d;
        for (int c = 0; c < d; ++c) oi[c] += p * vj[c];
      }
      lse[(b * T + i) * sh.n_heads + h] = mx + std::log(sum);
    }
  }
}

// With P = softmax(S) recomputed from lse, D_i = dO_i · O_i:
//   dV_j += Σ_i P_ij dO_i;  dS_ij = P_ij (dO_i · V_j − D_i);
//   dQ_i = scale Σ_j dS_ij K_j;  dK_j += scale Σ_i dS_ij Q_i.
template <bool kAvx2>
[[gnu::always_inline]] inline void backward_group(const AttentionShape& sh, int64_t b, int g, const float* q,
                                                  const float* k, const float* v, const float* o, const float* lse,
                                                  const float* dout, float* dq, float* dk, float* dv,
                                                  GroupScratch& w) {
  const int64_t T = sh.seq;
  const int d = sh.head_dim, rep = sh.n_heads / sh.n_kv_heads;
  const int64_t qstride = int64_t(sh.n_heads) * d, kstride = int64_t(sh.n_kv_heads) * d;
  for (int64_t j = 0; j < T; ++j)
    for (int c = 0; c < d; ++c) {
      w.kt[size_t(c * T + j)] = k[(b * T + j) * kstride + g * d + c];
      w.vt[size_t(c * T + j)] = v[(b * T + j) * kstride + g * d + c];
    }
  std::fill(w.dk.begin(), w.dk.end(), 0.f);
  std::fill(w.dv.begin(), w.dv.end(), 0.f);
  for (int hr = 0; hr < rep; ++hr) {
    const int h = g * rep + hr;
    for (int64_t i = 0; i < T; ++i) {
      const int64_t row = b * T + i;
      const float* qi = q + row * qstride + h * d;
      const float* oi = o + row * qstride + h * d;
      const float* doi = dout + row * qstride + h * d;
      for (int c = 0; c < d; ++c) w.qs[size_t(c)] = qi[c] * sh.scale;
      const int64_t n = i + 1;
      score_row(w.qs.data(), w.kt.data(), T, d, n, w.s.data());
      score_row(doi, w.vt.data(), T, d, n, w.dp.data());  // dp_j = dO_i · V_j
      float D = 0.f;
      for (int c = 0; c < d; ++c) D += doi[c] * oi[c];
      const float l = lse[row * sh.n_heads + h];
      float* __restrict dqi = w.dq.data();  // [d], copied out after the row
      for (int c = 0; c < d; ++c) dqi[c] = 0.f;
      exp_shift<kAvx2>(w.s.data(), n, l);  // P_ij
      for (int64_t j = 0; j < n; ++j) {
        const float p = w.s[size_t(j)];
        const float ds = p * (w.dp[size_t(j)] - D) * sh.scale;
        const float* __restrict kj = k + (b * T + j) * kstride + g * d;
        float* __restrict dkj = w.dk.data() + j * d;
        float* __restrict dvj = w.dv.data() + j * d;
        for (int c = 0; c < d; ++c) {
          dqi[c] += ds * kj[c];
          dkj[c] += ds * qi[c];
          dvj[c] += p * doi[c];
        }
      }
      std::copy_n(dqi, d, dq + row * qstride + h * d);
    }
  }
  for (int64_t j = 0; j < T; ++j)
    for (int c = 0; c < d; ++c) {
      dk[(b * T + j) * kstride + g * d + c] = w.dk[size_t(j * d + c)];
      dv[(b * T + j) * kstride + g * d + c] = w.dv[size_t(j * d + c)];
    }
}

void forward_plain(const AttentionShape& sh, int64_t b, int g, const float* q, const float* k, const float* v,
                   float* o, float* lse, GroupScratch& w) {
  forward_group<false>(sh, b, g, q, k, v, o, lse, w);
}
TERN_AVX2_TARGET void forward_avx2(const AttentionShape& sh, int64_t b, int g, const float* q, const float* k,
                                  const float* v, float* o, float* lse, GroupScratch& w) {
  forward_group<true>(sh, b, g, q, k, v, o, lse, w);
}
void backward_plain(const AttentionShape& sh, int64_t b, int g, const float* q, const float* k, const float* v,
                    const float* o, const float* lse, const float* dout, float* dq, float* dk, float* dv,
                    GroupScratch& w) {
  backward_group<false>(sh, b, g, q, k, v, o, lse, dout, dq, dk, dv, w);
}
TERN_AVX2_TARGET void backward_avx2(const AttentionShape& sh, int64_t b, int g, const float* q, const float* k,
                                   const float* v, const float* o, const float* lse, const float* dout, float* dq,
                                   float* dk, float* dv, GroupScratch& w) {
  backward_group<true>(sh, b, g, q, k, v, o, lse, dout, dq, dk, dv, w);
}

}  // namespace

void attention_forward(ExecContext& ctx, const AttentionShape& s, const float* q, const float* k, const float* v,
                       float* o, float* lse) {
  const bool avx2 = ctx.cpu().avx2;
  ctx.pool().parallel_for(s.batch * s.n_kv_heads, 1, [&](int64_t g0, int64_t g1) {
    GroupScratch w;
    w.size(s.seq, s.head_dim);
    for (int64_t gi = g0; gi < g1; ++gi) {
      const int64_t b = gi / s.n_kv_heads;
      const int g = int(gi % s.n_kv_heads);
      if (avx2) forward_avx2(s, b, g, q, k, v, o, lse, w);
      else forward_plain(s, b, g, q, k, v, o, lse, w);
    }
  });
}

void attention_backward(ExecContext& ctx, const AttentionShape& s, const float* q, const float* k, const float* v,
                        const float* o, const float* lse, const float* dout, float* dq, float* dk, float* dv) {
  const bool avx2 = ctx.cpu().avx2;
  ctx.pool().parallel_for(s.batch * s.n_kv_heads, 1, [&](int64_t g0, int64_t g1) {
    GroupScratch w;
    w.size(s.seq, s.head_dim);
    for (int64_t gi = g0; gi < g1; ++gi) {
      const int64_t b = gi / s.n_kv_heads;
      const int g = int(gi % s.n_kv_heads);
      if (avx2) backward_avx2(s, b, g, q, k, v, o, lse, dout, dq, dk, dv, w);
      else backward_plain(s, b, g, q, k, v, o, lse, dout, dq, dk, dv, w);
    }
  });
}

}  // namespace tern::train
