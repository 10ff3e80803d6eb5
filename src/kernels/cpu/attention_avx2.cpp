// AVX2 + FMA attention primitives (head_dim % 8 == 0). See attention_kernels.h for the contract.
//   scores: 2 query rows × 4 keys per step (8 accumulators, 6 loads per 8 FMAs), one hadd tree
//           reduces the 8 dot products into one vector.
//   pv:     2 rows × up to 32 output columns in registers, one broadcast of P per row and key.
#include <algorithm>
#include <limits>

#include "kernels/cpu/attention_kernels.h"
#include "kernels/cpu/vec_math.h"

namespace tern::cpu {

namespace {

// Dot products of q rows r0, r1 with keys j .. j+3: lanes [r0·k0..k3, r1·k0..k3].
TERN_AVX2_TARGET inline __m256 dot_2x4(const float* q0, const float* q1, const float* k, int64_t ks, int d) {
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00;
  const float *k0 = k, *k1 = k + ks, *k2 = k + 2 * ks, *k3 = k + 3 * ks;
  for (int c = 0; c < d; c += 8) {
    const __m256 x0 = _mm256_loadu_ps(q0 + c), x1 = _mm256_loadu_ps(q1 + c);
    const __m256 y0 = _mm256_loadu_ps(k0 + c), y1 = _mm256_loadu_ps(k1 + c);
    const __m256 y2 = _mm256_loadu_ps(k2 + c), y3 = _mm256_loadu_ps(k3 + c);
    a00 = _mm256_fmadd_ps(x0, y0, a00);
    a01 = _mm256_fmadd_ps(x0, y1, a01);
    a02 = _mm256_fmadd_ps(x0, y2, a02);
    a03 = _mm256_fmadd_ps(x0, y3, a03);
    a10 = _mm256_fmadd_ps(x1, y0, a10);
    a11 = _mm256_fmadd_ps(x1, y1, a11);
    a12 = _mm256_fmadd_ps(x1, y2, a12);
    a13 = _mm256_fmadd_ps(x1, y3, a13);
  }
  return hsum8_avx2(a00, a01, a02, a03, a10, a11, a12, a13);
}

TERN_AVX2_TARGET inline float dot_1(const float* q, const float* k, int d) {
  __m256 acc = _mm256_setzero_ps();
  for (int c = 0; c < d; c += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + c), _mm256_loadu_ps(k + c), acc);
  return hsum_avx2(acc);
}

TERN_AVX2_TARGET void scores_avx2(const float* q, int rows, int d, const float* k, int64_t k_stride, int nk,
                                  const int* lo, const int* hi, float scale, float* s, int ld_s) {
  const __m256 sv = _mm256_set1_ps(scale);
  for (int r = 0; r < rows; r += 2) {
    const bool pair = r + 1 < rows;
    const int r1 = pair ? r + 1 : r;  // an odd last row is computed twice, stored once
    // Union of the two rows' visible ranges (empty rows have lo == hi == 0).
    int jlo = std::numeric_limits<int>::max(), jhi = 0;
    for (int rr : {r, r1})
      if (lo[rr] < hi[rr]) {
        jlo = std::min(jlo, lo[rr]);
        jhi = std::max(jhi, hi[rr]);
      }
    if (jhi == 0) continue;
    const float* q0 = q + int64_t(r) * d;
    const float* q1 = q + int64_t(r1) * d;
    float* s0 = s + int64_t(r) * ld_s;
    float* s1 = s + int64_t(r1) * ld_s;
    int j = jlo & ~3;
    for (; j + 4 <= nk && j < jhi; j += 4) {
      const __m256 v = _mm256_mul_ps(dot_2x4(q0, q1, k + j * k_stride, k_stride, d), sv);
      _mm_storeu_ps(s0 + j, _mm256_castps256_ps128(v));
      if (pair) _mm_storeu_ps(s1 + j, _mm256_extractf128_ps(v, 1));
    }
    for (; j < jhi; ++j) {
      const float* kj = k + j * k_stride;
      s0[j] = dot_1(q0, kj, d) * scale;
      if (pair) s1[j] = dot_1(q1, kj, d) * scale;
    }
  }
}

// Lanes j .. j+7 that lie in [lo, hi).
TERN_AVX2_TARGET inline __m256 range_mask(int j, int lo, int hi) {
  const __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(j), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  const __m256i ge_lo = _mm256_cmpgt_epi32(idx, _mm256_set1_epi32(lo - 1));
  const __m256i lt_hi = _mm256_cmpgt_epi32(_mm256_set1_epi32(hi), idx);
  return _mm256_castsi256_ps(_mm256_and_si256(ge_lo, lt_hi));
}

// Rows have ld_s >= round_up(nk, 8) floats, so whole vectors can be read and written past nk;
// lanes outside [lo, hi) are masked to -inf before exp and come out as exact zeros.
TERN_AVX2_TARGET void softmax_avx2(float* s, int rows, int ld_s, int nk, const int* lo, const int* hi,
                                   float softcap, float* m, float* l, float* alpha) {
  const __m256 neg_inf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  const __m256 cap = _mm256_set1_ps(softcap), inv_cap = _mm256_set1_ps(softcap > 0 ? 1.f / softcap : 0.f);
  const int nk8 = (nk + 7) & ~7;
  for (int r = 0; r < rows; ++r) {
    float* sr = s + int64_t(r) * ld_s;
    if (lo[r] >= hi[r]) {
      for (int j = 0; j < nk8; j += 8) _mm256_storeu_ps(sr + j, _mm256_setzero_ps());
      alpha[r] = 1.f;
      continue;
    }
    __m256 mx = neg_inf;
    for (int j = 0; j < nk8; j += 8) {
      __m256 x = _mm256_loadu_ps(sr + j);
      if (softcap > 0) x = _mm256_mul_ps(cap, tanh_avx2(_mm256_mul_ps(x, inv_cap)));
      x = _mm256_blendv_ps(neg_inf, x, range_mask(j, lo[r], hi[r]));
      _mm256_storeu_ps(sr + j, x);
      mx = _mm256_max_ps(mx, x);
    }
    const float m_new = std::max(m[r], hmax_avx2(mx));
    const float a = _mm256_cvtss_f32(exp_avx2(_mm256_set1_ps(m[r] - m_new)));
    const __m256 mv = _mm256_set1_ps(m_new);
    __m256 sum = _mm256_setzero_ps();
    for (int j = 0; j < nk8; j += 8) {
      const __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(sr + j), mv));
      _mm256_storeu_ps(sr + j, e);
      sum = _mm256_add_ps(sum, e);
    }
    alpha[r] = a;
    l[r] = l[r] * a + hsum_avx2(sum);
    m[r] = m_new;
  }
}

// o[r, c0 : c0 + 8·NV] for rows r0, r1. A lone row passes r1 == r0: both halves compute the same
// values, so storing both is harmless, and unconditional stores let GCC keep acc in registers.
template <int NV>
TERN_AVX2_TARGET inline void pv_block(const float* p0, const float* p1, const float* v, int64_t vs, int jlo,
                                      int jhi, float a0, float a1, float* o0, float* o1) {
  __m256 acc0[NV], acc1[NV];
  const __m256 av0 = _mm256_set1_ps(a0), av1 = _mm256_set1_ps(a1);
#pragma GCC unroll 4
  for (int c = 0; c < NV; ++c) {
    acc0[c] = _mm256_mul_ps(_mm256_loadu_ps(o0 + 8 * c), av0);
    acc1[c] = _mm256_mul_ps(_mm256_loadu_ps(o1 + 8 * c), av1);
  }
  for (int j = jlo; j < jhi; ++j) {
    const __m256 b0 = _mm256_broadcast_ss(p0 + j), b1 = _mm256_broadcast_ss(p1 + j);
    const float* vj = v + j * vs;
#pragma GCC unroll 4
    for (int c = 0; c < NV; ++c) {
      const __m256 x = _mm256_loadu_ps(vj + 8 * c);
      acc0[c] = _mm256_fmadd_ps(b0, x, acc0[c]);
      acc1[c] = _mm256_fmadd_ps(b1, x, acc1[c]);
    }
  }
#pragma GCC unroll 4
  for (int c = 0; c < NV; ++c) {
    _mm256_storeu_ps(o0 + 8 * c, acc0[c]);
    _mm256_storeu_ps(o1 + 8 * c, acc1[c]);
  }
}

TERN_AVX2_TARGET void pv_avx2(const float* p, int rows, int ld_p, const float* v, int64_t v_stride, int d,
                              const int* lo, const int* hi, const float* alpha, float* o) {
  for (int r = 0; r < rows; r += 2) {
    const bool pair = r + 1 < rows;
    const int r1 = pair ? r + 1 : r;
    int jlo = std::numeric_limits<int>::max(), jhi = 0;
    for (int rr : {r, r1})
      if (lo[rr] < hi[rr]) {
        jlo = std::min(jlo, lo[rr]);
        jhi = std::max(jhi, hi[rr]);
      }
    if (jhi == 0) continue;  // both rows empty in this tile: alpha == 1, nothing to add
    const float* p0 = p + int64_t(r) * ld_p;
    const float* p1 = p + int64_t(r1) * ld_p;
    float* o0 = o + int64_t(r) * d;
    float* o1 = o + int64_t(r1) * d;
    int c = 0;
    for (; c + 32 <= d; c += 32) pv_block<4>(p0, p1, v + c, v_stride, jlo, jhi, alpha[r], alpha[r1], o0 + c, o1 + c);
    switch ((d - c) / 8) {
      case 3: pv_block<3>(p0, p1, v + c, v_stride, jlo, jhi, alpha[r], alpha[r1], o0 + c, o1 + c); break;
      case 2: pv_block<2>(p0, p1, v + c, v_stride, jlo, jhi, alpha[r], alpha[r1], o0 + c, o1 + c); break;
      case 1: pv_block<1>(p0, p1, v + c, v_stride, jlo, jhi, alpha[r], alpha[r1], o0 + c, o1 + c); break;
      default: break;
    }
  }
}

}  // namespace

AttentionKernels attention_kernels_avx2() {
  return {"attention_avx2", scores_avx2, softmax_avx2, pv_avx2, kv_tile_kernels_avx2, kv_decode_avx2};
}

}  // namespace tern::cpu
