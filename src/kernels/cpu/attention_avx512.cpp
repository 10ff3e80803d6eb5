// AVX-512 attention primitives (head_dim % 16 == 0): the AVX2 kernels' structure with 16-lane
// vectors for the two O(n·D) parts, scores and P·V. The softmax step is O(n) per row and reuses
// the AVX2 version. This host family cannot be exercised on AVX2-only machines; tests skip it there.
#include <algorithm>
#include <limits>

#include "kernels/cpu/attention_kernels.h"
#include "kernels/cpu/vec_math.h"

namespace tern::cpu {

namespace {

// 512 → 256 bits by adding the halves; the 8-way hadd tree then finishes the reduction.
TERN_AVX512_TARGET inline __m256 fold(__m512 x) {
  return _mm256_add_ps(_mm512_castps512_ps256(x), _mm512_extractf32x8_ps(x, 1));
}

TERN_AVX512_TARGET inline __m256 dot_2x4_512(const float* q0, const float* q1, const float* k, int64_t ks, int d) {
  __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00;
  const float *k0 = k, *k1 = k + ks, *k2 = k + 2 * ks, *k3 = k + 3 * ks;
  for (int c = 0; c < d; c += 16) {
    const __m512 x0 = _mm512_loadu_ps(q0 + c), x1 = _mm512_loadu_ps(q1 + c);
    const __m512 y0 = _mm512_loadu_ps(k0 + c), y1 = _mm512_loadu_ps(k1 + c);
    const __m512 y2 = _mm512_loadu_ps(k2 + c), y3 = _mm512_loadu_ps(k3 + c);
    a00 = _mm512_fmadd_ps(x0, y0, a00);
    a01 = _mm512_fmadd_ps(x0, y1, a01);
    a02 = _mm512_fmadd_ps(x0, y2, a02);
    a03 = _mm512_fmadd_ps(x0, y3, a03);
    a10 = _mm512_fmadd_ps(x1, y0, a10);
    a11 = _mm512_fmadd_ps(x1, y1, a11);
    a12 = _mm512_fmadd_ps(x1, y2, a12);
    a13 = _mm512_fmadd_ps(x1, y3, a13);
  }
  return hsum8_avx2(fold(a00), fold(a01), fold(a02), fold(a03), fold(a10), fold(a11), fold(a12), fold(a13));
}

TERN_AVX512_TARGET inline float dot_1_512(const float* q, const float* k, int d) {
  __m512 acc = _mm512_setzero_ps();
  for (int c = 0; c < d; c += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + c), _mm512_loadu_ps(k + c), acc);
  return _mm512_reduce_add_ps(acc);
}

TERN_AVX512_TARGET void scores_avx512(const float* q, int rows, int d, const float* k, int64_t k_stride, int nk,
                                      const int* lo, const int* hi, float scale, float* s, int ld_s) {
  const __m256 sv = _mm256_set1_ps(scale);
  for (int r = 0; r < rows; r += 2) {
    const bool pair = r + 1 < rows;
    const int r1 = pair ? r + 1 : r;
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
      const __m256 v = _mm256_mul_ps(dot_2x4_512(q0, q1, k + j * k_stride, k_stride, d), sv);
      _mm_storeu_ps(s0 + j, _mm256_castps256_ps128(v));
      if (pair) _mm_storeu_ps(s1 + j, _mm256_extractf128_ps(v, 1));
    }
    for (; j < jhi; ++j) {
      const float* kj = k + j * k_stride;
      s0[j] = dot_1_512(q0, kj, d) * scale;
      if (pair) s1[j] = dot_1_512(q1, kj, d) * scale;
    }
  }
}

template <int NV>
TERN_AVX512_TARGET inline void pv_block_512(const float* p0, const float* p1, const float* v, int64_t vs, int jlo,
                                            int jhi, float a0, float a1, float* o0, float* o1) {
  __m512 acc0[NV], acc1[NV];
  const __m512 av0 = _mm512_set1_ps(a0), av1 = _mm512_set1_ps(a1);
#pragma GCC unroll 4
  for (int c = 0; c < NV; ++c) {
    acc0[c] = _mm512_mul_ps(_mm512_loadu_ps(o0 + 16 * c), av0);
    acc1[c] = _mm512_mul_ps(_mm512_loadu_ps(o1 + 16 * c), av1);
  }
  for (int j = jlo; j < jhi; ++j) {
    const __m512 b0 = _mm512_set1_ps(p0[j]), b1 = _mm512_set1_ps(p1[j]);
    const float* vj = v + j * vs;
#pragma GCC unroll 4
    for (int c = 0; c < NV; ++c) {
      const __m512 x = _mm512_loadu_ps(vj + 16 * c);
      acc0[c] = _mm512_fmadd_ps(b0, x, acc0[c]);
      acc1[c] = _mm512_fmadd_ps(b1, x, acc1[c]);
    }
  }
#pragma GCC unroll 4
  for (int c = 0; c < NV; ++c) {
    _mm512_storeu_ps(o0 + 16 * c, acc0[c]);
    _mm512_storeu_ps(o1 + 16 * c, acc1[c]);
  }
}

TERN_AVX512_TARGET void pv_avx512(const float* p, int rows, int ld_p, const float* v, int64_t v_stride, int d,
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
    if (jhi == 0) continue;
    const float* p0 = p + int64_t(r) * ld_p;
    const float* p1 = p + int64_t(r1) * ld_p;
    float* o0 = o + int64_t(r) * d;
    float* o1 = o + int64_t(r1) * d;
    int c = 0;
    for (; c + 64 <= d; c += 64)
      pv_block_512<4>(p0, p1, v + c, v_stride, jlo, jhi, alpha[r], alpha[r1], o0 + c, o1 + c);
    switch ((d - c) / 16) {
      case 3: pv_block_512<3>(p0, p1, v + c, v_stride, jlo, jhi, alpha[r], alpha[r1], o0 + c, o1 + c); break;
      case 2: pv_block_512<2>(p0, p1, v + c, v_stride, jlo, jhi, alpha[r], alpha[r1], o0 + c, o1 + c); break;
      case 1: pv_block_512<1>(p0, p1, v + c, v_stride, jlo, jhi, alpha[r], alpha[r1], o0 + c, o1 + c); break;
      default: break;
    }
  }
}

}  // namespace

AttentionKernels attention_kernels_avx512() {
  return {"attention_avx512", scores_avx512, attention_kernels_avx2().softmax, pv_avx512, kv_tile_kernels_avx512, kv_decode_avx512};
}

}  // namespace tern::cpu
