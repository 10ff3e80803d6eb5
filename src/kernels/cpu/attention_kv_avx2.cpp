// AVX2 + FMA fused K/V tile primitives (head_dim % 8 == 0; contract in attention_kernels.h).
// Rows are widened to f32 in registers straight from the pool (bf16: zero-extend + shift; int8:
// sign-extend + convert; fp8 e4m3: sign-extend, shift the 7 magnitude bits under the f32 exponent,
// then ·2^120 — exact for normal and subnormal codes), so decode attention streams each K/V byte
// once. Register blocking: scores take 4 query rows × 2 keys (8 accumulators, one widened key
// vector feeds 4 FMAs), P·V takes 4 rows × 16 columns; fewer rows use 2 × 4 and 1 × 8.
#include <algorithm>
#include <limits>

#include "kernels/cpu/attention_kernels.h"
#include "kernels/cpu/vec_math.h"

namespace tern::cpu {

namespace {

// Values c .. c+7 of a stored row as f32 (scale not applied). The fp8 codes 0x7f / 0xff (NaN in
// e4m3fn) are never written by the encoder and read as ±480 here.
constexpr int kPrefetchKeys = 8;
template <KvDType T>
constexpr size_t kElemBytes = T == KvDType::F32 ? 4 : T == KvDType::BF16 ? 2 : 1;

template <KvDType T>
TERN_AVX2_TARGET inline __m256 widen8(const uint8_t* row, int c) {
  if constexpr (T == KvDType::F32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + c);
  } else if constexpr (T == KvDType::BF16) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * size_t(c)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  } else {
    const __m256i w = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + c)));
    if constexpr (T == KvDType::INT8) {
      return _mm256_cvtepi32_ps(w);
    } else {
      // Sign-extended byte << 20: bit 31 = sign, bits 20..26 = e4m3 magnitude (4 exponent + 3
      // mantissa bits) → an f32 of exponent e, i.e. the e4m3 value · 2^-120.
      const __m256i bits = _mm256_and_si256(_mm256_slli_epi32(w, 20), _mm256_set1_epi32(int(0x87F00000u)));
      return _mm256_mul_ps(_mm256_castsi256_ps(bits), _mm256_set1_ps(0x1p120f));
    }
  }
}

// Dot products of RB query rows (stride d) with KB keys (RB·KB == 8), lanes r-major: [r·KB + b].
template <KvDType T, int RB, int KB>
TERN_AVX2_TARGET inline __m256 dots(const float* q, int d, const uint8_t* const* kp) {
  static_assert(RB * KB == 8);
  __m256 acc[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_ps();
  for (int c = 0; c < d; c += 8) {
    __m256 kv[KB];
#pragma GCC unroll 8
    for (int b = 0; b < KB; ++b) kv[b] = widen8<T>(kp[b], c);
#pragma GCC unroll 4
    for (int r = 0; r < RB; ++r) {
      const __m256 x = _mm256_loadu_ps(q + int64_t(r) * d + c);
#pragma GCC unroll 8
      for (int b = 0; b < KB; ++b) acc[r * KB + b] = _mm256_fmadd_ps(x, kv[b], acc[r * KB + b]);
    }
  }
  return hsum8_avx2(acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6], acc[7]);
}

template <KvDType T, int RB>
TERN_AVX2_TARGET void scores_rows(const float* q, int d, const uint8_t* const* k, const float* kscale, int jlo,
                                  int jhi, float* s, int ld_s) {
  constexpr int KB = 8 / RB;
  const int row_bytes = d * int(kElemBytes<T>);
  for (int j = jlo; j < jhi; j += KB) {
    // The rows of one kv head sit a whole token row apart and few share a block, which hardware
    // prefetchers follow poorly: ask for the rows kPrefetchKeys ahead of this step.
    for (int b = 0; b < KB && j + kPrefetchKeys + b < jhi; ++b)
      for (int off = 0; off < row_bytes; off += 64)
        _mm_prefetch(reinterpret_cast<const char*>(k[j + kPrefetchKeys + b] + off), _MM_HINT_T0);
    const uint8_t* kp[KB];
    for (int b = 0; b < KB; ++b) kp[b] = k[std::min(j + b, jhi - 1)];  // a short last step repeats a key
    alignas(32) float out[8];
    _mm256_store_ps(out, dots<T, RB, KB>(q, d, kp));
    const int nb = std::min(KB, jhi - j);
    for (int r = 0; r < RB; ++r)
      for (int b = 0; b < nb; ++b) s[int64_t(r) * ld_s + j + b] = out[r * KB + b] * kscale[j + b];
  }
}

// Keys that any of rows [r, r + n) sees; jhi == 0 when none.
inline void key_union(const int* lo, const int* hi, int r, int n, int& jlo, int& jhi) {
  jlo = std::numeric_limits<int>::max();
  jhi = 0;
  for (int i = r; i < r + n; ++i)
    if (lo[i] < hi[i]) {
      jlo = std::min(jlo, lo[i]);
      jhi = std::max(jhi, hi[i]);
    }
}

inline int row_block(int left) { return left >= 4 ? 4 : left >= 2 ? 2 : 1; }

template <KvDType T>
TERN_AVX2_TARGET void scores_kv(const float* q, int rows, int d, const uint8_t* const* k, const float* kscale, int,
                                const int* lo, const int* hi, float* s, int ld_s) {
  for (int r = 0; r < rows;) {
    const int rb = row_block(rows - r);
    int jlo, jhi;
    key_union(lo, hi, r, rb, jlo, jhi);
    if (jhi > 0) {
      const float* qr = q + int64_t(r) * d;
      float* sr = s + int64_t(r) * ld_s;
      if (rb == 4) scores_rows<T, 4>(qr, d, k, kscale, jlo, jhi, sr, ld_s);
      else if (rb == 2) scores_rows<T, 2>(qr, d, k, kscale, jlo, jhi, sr, ld_s);
      else scores_rows<T, 1>(qr, d, k, kscale, jlo, jhi, sr, ld_s);
    }
    r += rb;
  }
}

// o[r, c0 : c0 + 8·NV] of RB rows: scaled by alpha, plus the P-weighted widened V rows jlo .. jhi.
template <KvDType T, int RB, int NV>
TERN_AVX2_TARGET inline void pv_cols(const float* p, int ld_p, const uint8_t* const* v, const float* vscale, int c0,
                                     int jlo, int jhi, const float* alpha, float* o, int d) {
  __m256 acc[RB][NV];
#pragma GCC unroll 4
  for (int r = 0; r < RB; ++r) {
    const __m256 a = _mm256_set1_ps(alpha[r]);
#pragma GCC unroll 8
    for (int i = 0; i < NV; ++i) acc[r][i] = _mm256_mul_ps(_mm256_loadu_ps(o + int64_t(r) * d + c0 + 8 * i), a);
  }
  for (int j = jlo; j < jhi; ++j) {
    __m256 x[NV];
#pragma GCC unroll 8
    for (int i = 0; i < NV; ++i) x[i] = widen8<T>(v[j], c0 + 8 * i);
    const float vs = vscale[j];
#pragma GCC unroll 4
    for (int r = 0; r < RB; ++r) {
      const __m256 w = _mm256_set1_ps(p[int64_t(r) * ld_p + j] * vs);
#pragma GCC unroll 8
      for (int i = 0; i < NV; ++i) acc[r][i] = _mm256_fmadd_ps(w, x[i], acc[r][i]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 8
    for (int i = 0; i < NV; ++i) _mm256_storeu_ps(o + int64_t(r) * d + c0 + 8 * i, acc[r][i]);
}

// Columns [c0, d) in blocks of NV vectors, then NV/2, ... so short heads keep wide blocks (each
// block walks the tile's keys once).
template <KvDType T, int RB, int NV>
TERN_AVX2_TARGET void pv_span(const float* p, int ld_p, const uint8_t* const* v, const float* vscale, int d, int c0,
                              int jlo, int jhi, const float* alpha, float* o) {
  for (; c0 + 8 * NV <= d; c0 += 8 * NV) pv_cols<T, RB, NV>(p, ld_p, v, vscale, c0, jlo, jhi, alpha, o, d);
  if constexpr (NV > 1) {
    if (c0 < d) pv_span<T, RB, NV / 2>(p, ld_p, v, vscale, d, c0, jlo, jhi, alpha, o);
  }
}

template <KvDType T, int RB>
TERN_AVX2_TARGET void pv_rows(const float* p, int ld_p, const uint8_t* const* v, const float* vscale, int d, int jlo,
                              int jhi, const float* alpha, float* o) {
  pv_span<T, RB, 8 / RB>(p, ld_p, v, vscale, d, 0, jlo, jhi, alpha, o);
}

template <KvDType T>
TERN_AVX2_TARGET void pv_kv(const float* p, int rows, int ld_p, const uint8_t* const* v, const float* vscale, int d,
                            const int* lo, const int* hi, const float* alpha, float* o) {
  for (int r = 0; r < rows;) {
    const int rb = row_block(rows - r);
    int jlo, jhi;
    key_union(lo, hi, r, rb, jlo, jhi);
    if (jhi > 0) {  // else every row of the block is empty here: alpha == 1, nothing to add
      const float* pr = p + int64_t(r) * ld_p;
      float* orow = o + int64_t(r) * d;
      if (rb == 4) pv_rows<T, 4>(pr, ld_p, v, vscale, d, jlo, jhi, alpha + r, orow);
      else if (rb == 2) pv_rows<T, 2>(pr, ld_p, v, vscale, d, jlo, jhi, alpha + r, orow);
      else pv_rows<T, 1>(pr, ld_p, v, vscale, d, jlo, jhi, alpha + r, orow);
    }
    r += rb;
  }
}

template <KvDType T>
KvTileKernels make(const char* name) {
  return {name, scores_kv<T>, pv_kv<T>};
}

}  // namespace

KvTileKernels kv_tile_kernels_avx2(KvDType dtype) {
  switch (dtype) {
    case KvDType::F32: return make<KvDType::F32>("kv_tile_avx2_f32");
    case KvDType::BF16: return make<KvDType::BF16>("kv_tile_avx2_bf16");
    case KvDType::INT8: return make<KvDType::INT8>("kv_tile_avx2_int8");
    case KvDType::FP8: return make<KvDType::FP8>("kv_tile_avx2_fp8");
  }
  return make<KvDType::F32>("kv_tile_avx2_f32");
}

}  // namespace tern::cpu
