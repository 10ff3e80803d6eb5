// AVX2 GEMV for one row of x (decode, m = 1) against Q4_0 / Q8_0 blocks, the hot path of GGUF decode.
// x is quantized once per call (gguf_acts_prepare_avx2, before the threads split the rows) to int8
// per 32 values, as ggml's Q8_0 activations. The weight rows are then streamed 4 at a time (4 far-apart
// rows of the thread's range, each software-prefetched), sharing every x load:
//   per block of 32 and row: Q4_0: 1 broadcast load, 1 vpsrlvq, 1 mask (codes 0..15 in column order),
//     vpmaddubsw + vpmaddwd -> [8] int32;  Q8_0: 1 load, 2 vpsignb, vpmaddubsw + vpmaddwd;
//   per block for the 4 rows together: one transpose-add of the four [8] int32 (no per-row horizontal
//     sum), Q4_0's "− 8 Σ xq" correction as one integer subtract, one vcvtdq2ps and one FMA with
//     (4 weight scales, converted by one vcvtph2ps) · (x scale).
// The lanes of the reduced vector are (row 0..3) x (columns 0-15 | 16-31) of the block; the two
// halves are added once at the end of the row.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/gguf_kernels.h"
#include "kernels/cpu/gguf_m1_avx2_util.h"

#define TERN_M1_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace tern::cpu {

namespace {

TERN_M1_AVX2 inline float hmax_ps(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// One block of one row against the block's 32 int8 x codes: [8] int32 partial dots, lanes 0-3 over
// columns 0-15, lanes 4-7 over columns 16-31. Q4_0 gives Σ code·xq (codes 0..15; the −8 is applied
// by the caller); pair sums ≤ 2·15·127 and ≤ 2·128·127 (Q8_0) fit vpmaddubsw's int16.
template <GgufType T>
TERN_M1_AVX2 inline __m256i block_dot(const uint8_t* blk, __m256i xq) {
  const __m256i ones = _mm256_set1_epi16(1);
  if constexpr (T == GgufType::Q4_0) {
    // qs[16]: low nibbles are columns 0..15, high nibbles 16..31 -> lower / upper 128-bit half.
    const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2)));
    const __m256i codes =
        _mm256_and_si256(_mm256_srlv_epi64(v, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(0x0F));
    return _mm256_madd_epi16(_mm256_maddubs_epi16(codes, xq), ones);
  } else {  // Q8_0: signed codes, |w| · sign(x, w)
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(xq, w)), ones);
  }
}

// y[r0 + s·stride] for s < 4 (stride 0: one row computed four times, for the tail).
template <GgufType T>
TERN_M1_AVX2 void rows4(const GgufActs& x, const MatmulArgs& a, int64_t r0, int64_t stride) {
  constexpr int64_t kBB = T == GgufType::Q4_0 ? 18 : 34;  // block bytes; the f16 scale is first
  const int64_t nb = a.w.cols / 32;
  const size_t rb = size_t(nb * kBB);
  const uint8_t* p[4];
  for (int r = 0; r < 4; ++r) p[r] = static_cast<const uint8_t*>(a.w.data) + size_t(r0 + r * stride) * rb;
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t off = b * kBB;
    if ((b & 1) == 0) {
#pragma GCC unroll 4
      for (int r = 0; r < 4; ++r)
        _mm_prefetch(reinterpret_cast<const char*>(p[r] + off + kGgufM1PrefetchBytes), _MM_HINT_T0);
    }
    const __m256i xq = _mm256_load_si256(reinterpret_cast<const __m256i*>(x.q + b * 32));
    const __m256i s0 = block_dot<T>(p[0] + off, xq), s1 = block_dot<T>(p[1] + off, xq);
    const __m256i s2 = block_dot<T>(p[2] + off, xq), s3 = block_dot<T>(p[3] + off, xq);
    const __m256i t01 = _mm256_add_epi32(_mm256_unpacklo_epi32(s0, s1), _mm256_unpackhi_epi32(s0, s1));
    const __m256i t23 = _mm256_add_epi32(_mm256_unpacklo_epi32(s2, s3), _mm256_unpackhi_epi32(s2, s3));
    __m256i u = _mm256_add_epi32(_mm256_unpacklo_epi64(t01, t23), _mm256_unpackhi_epi64(t01, t23));
    if constexpr (T == GgufType::Q4_0)  // Σ (code − 8)·xq = Σ code·xq − 8 Σ xq, per half
      u = _mm256_sub_epi32(u, _mm256_load_si256(reinterpret_cast<const __m256i*>(x.corr + b * 8)));
    // The 4 rows' f16 scales packed in a general register, widened by one vcvtph2ps to both halves.
    const uint64_t h = gguf_m1_ld16(p[0] + off) | gguf_m1_ld16(p[1] + off) << 16 | gguf_m1_ld16(p[2] + off) << 32 |
                       gguf_m1_ld16(p[3] + off) << 48;
    const __m256 wd = _mm256_cvtph_ps(_mm_set1_epi64x(int64_t(h)));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(u), _mm256_mul_ps(wd, _mm256_load_ps(x.d8 + b * 8)), acc);
  }
  float out[4];
  _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1)));
  for (int r = 0; r < 4; ++r) {
    const int64_t row = r0 + r * stride;
    a.y[row] = out[r] + (a.bias ? a.bias[row] : 0.f);
  }
}

template <GgufType T>
TERN_M1_AVX2 void gemv_m1(const GgufActs& x, const MatmulArgs& a, int64_t n0, int64_t n1) {
  const int64_t part = (n1 - n0) / 4;
  for (int64_t b = 0; b < part; ++b) rows4<T>(x, a, n0 + b, part);
  for (int64_t r = n0 + 4 * part; r < n1; ++r) rows4<T>(x, a, r, 0);
}

}  // namespace

size_t gguf_acts_bytes(int64_t k) {
  const size_t ng = size_t(k / 32);
  return gguf_m1_align64(size_t(k)) + gguf_m1_align64(ng * 8 * sizeof(float)) +
         gguf_m1_align64(ng * 8 * sizeof(int32_t));
}

TERN_M1_AVX2 GgufActs gguf_acts_prepare_avx2(const float* x, int64_t k, void* scratch) {
  const int64_t ng = k / 32;
  auto* base = static_cast<char*>(scratch);
  GgufActs a;
  a.q = reinterpret_cast<int8_t*>(base);
  a.d8 = reinterpret_cast<float*>(base + gguf_m1_align64(size_t(k)));
  a.corr =
      reinterpret_cast<int32_t*>(base + gguf_m1_align64(size_t(k)) + gguf_m1_align64(size_t(ng) * 8 * sizeof(float)));
  auto* q = const_cast<int8_t*>(a.q);
  auto* d8 = const_cast<float*>(a.d8);
  auto* corr = const_cast<int32_t*>(a.corr);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t g = 0; g < ng; ++g) {
    const float* v = x + g * 32;
    __m256 vmax = _mm256_and_ps(_mm256_loadu_ps(v), abs_mask);
    for (int j = 8; j < 32; j += 8) vmax = _mm256_max_ps(vmax, _mm256_and_ps(_mm256_loadu_ps(v + j), abs_mask));
    const float d = hmax_ps(vmax) / 127.f, inv = d > 0 ? 1.f / d : 0.f;
    const __m256 vinv = _mm256_set1_ps(inv);
    const __m256i c0 = gguf_m1_codes8(v, vinv), c1 = gguf_m1_codes8(v + 8, vinv), c2 = gguf_m1_codes8(v + 16, vinv),
                  c3 = gguf_m1_codes8(v + 24, vinv);
    // packs interleave the 128-bit lanes: [c0 0-3, c1 0-3, c2 0-3, c3 0-3 | 4-7 ...] -> column order.
    const __m256i pk = _mm256_packs_epi16(_mm256_packs_epi32(c0, c1), _mm256_packs_epi32(c2, c3));
    _mm256_store_si256(reinterpret_cast<__m256i*>(q + g * 32),
                       _mm256_permutevar8x32_epi32(pk, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    const int32_t lo = 8 * avx2_hsum_i32(_mm256_add_epi32(c0, c1)), hi = 8 * avx2_hsum_i32(_mm256_add_epi32(c2, c3));
    _mm256_store_si256(reinterpret_cast<__m256i*>(corr + g * 8), _mm256_setr_epi32(lo, lo, lo, lo, hi, hi, hi, hi));
    _mm256_store_ps(d8 + g * 8, _mm256_set1_ps(d));
  }
  return a;
}

bool gguf_gemv_m1_supported(GgufType t) { return t == GgufType::Q4_0 || t == GgufType::Q8_0; }

void gguf_gemv_m1_avx2(const GgufActs& x, const MatmulArgs& a, int64_t n0, int64_t n1) {
  switch (GgufType(a.w.gguf_type)) {
    case GgufType::Q4_0:
      return gemv_m1<GgufType::Q4_0>(x, a, n0, n1);
    case GgufType::Q8_0:
      return gemv_m1<GgufType::Q8_0>(x, a, n0, n1);
    default:
      return gguf_gemv_int8_avx2(a, n0, n1);
  }
}

}  // namespace tern::cpu
