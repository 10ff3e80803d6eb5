// AVX2 GEMV for one row of x (decode, m = 1) against the K-quants Q4_K / Q6_K (256-value super-blocks).
// x is quantized once per call with one scale per 256 values, as ggml's Q8_K activations (per-32 x
// scales would need a float multiply per 32- or 16-value sub-block), plus the integer sums of its
// codes per 16 and per 32. Then, per super-block and row, everything is integer:
//   Q4_K: Σ w·x = d·dx · Σ_j sc_j S_j − dmin·dx · Σ_j m_j X_j   (j: 8 sub-blocks of 32, codes 0..15)
//   Q6_K: Σ w·x = d·dx · Σ_s sc_s (S_s − 32 X_s)                 (s: 16 sub-blocks of 16, codes 0..63)
// with S = Σ code·xq from vpmaddubsw, the sub-block scales applied by vpmaddwd (int16 pair sums
// ≤ 2·63·127 times a scale ≤ 128: exact in int32), and the X terms one vpmaddwd of the scales (or
// mins) with the precomputed sums. 4 far-apart rows run together: one transpose-add, one vcvtdq2ps
// and one FMA per super-block for the 4 rows, as gguf_gemv_m1_avx2.cpp.
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/gguf_kernels.h"
#include "kernels/cpu/gguf_m1_avx2_util.h"

#define TERN_M1K_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace tern::cpu {

namespace {

// [8] int32 whose total is row r's integer dot over one super-block (all scales but d·dx applied).
// Q4_K: 144 bytes {f16 d, dmin; u8 scales[12]; u8 qs[128]}; the min term is returned in *mins.
TERN_M1K_AVX2 inline __m256i q4k_block(const uint8_t* b, const int8_t* xq, const int16_t* bs32, __m128i* mins) {
  uint32_t u[3];
  std::memcpy(u, b + 4, 12);
  // The 6-bit (scale, min) pairs: j < 4 low 6 bits of bytes 0-3 / 4-7; j >= 4 a nibble of bytes 8-11
  // and the top 2 bits of bytes 0-3 / 4-7.
  const uint32_t sc_lo = u[0] & 0x3f3f3f3f, mn_lo = u[1] & 0x3f3f3f3f;
  const uint32_t sc_hi = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
  const uint32_t mn_hi = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
  const __m256i sm = _mm256_cvtepu8_epi16(_mm_setr_epi32(int(sc_lo), int(sc_hi), int(mn_lo), int(mn_hi)));
  // Σ_j m_j X_j: [4] int32 partial sums.
  *mins = _mm_madd_epi16(_mm256_extracti128_si256(sm, 1), _mm_loadu_si128(reinterpret_cast<const __m128i*>(bs32)));
  const __m256i sc = _mm256_permute4x64_epi64(sm, 0x44);  // scales 0..7 in both 128-bit halves
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256i acc = _mm256_setzero_si256();
#pragma GCC unroll 4
  for (int p = 0; p < 4; ++p) {  // chunk p: low nibbles = sub-block 2p, high nibbles = 2p + 1
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16 + p * 32));
    const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + p * 64));
    const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + p * 64 + 32));
    const __m256i s0 = _mm256_shuffle_epi8(sc, _mm256_set1_epi16(int16_t(0x0100 + 0x0202 * (2 * p))));
    const __m256i s1 = _mm256_shuffle_epi8(sc, _mm256_set1_epi16(int16_t(0x0100 + 0x0202 * (2 * p + 1))));
    const __m256i p0 = _mm256_maddubs_epi16(_mm256_and_si256(q, m4), x0);
    const __m256i p1 = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), x1);
    acc = _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_madd_epi16(p0, s0), _mm256_madd_epi16(p1, s1)));
  }
  return acc;
}

// Q6_K: 210 bytes {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}. In half h, for l < 32, values l,
// l+32, l+64, l+96 take ql[h*64+l] low, ql[h*64+32+l] low, ql[h*64+l] high, ql[h*64+32+l] high and
// bits 0-1, 2-3, 4-5, 6-7 of qh[h*32+l]; sub-block s = value / 16.
TERN_M1K_AVX2 inline __m256i q6k_block(const uint8_t* b, const int8_t* xq, const int16_t* bs16) {
  const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192)));
  // 32 Σ_s sc_s X_s, as [8] partial sums.
  const __m256i corr =
      _mm256_slli_epi32(_mm256_madd_epi16(sc16, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bs16))), 5);
  const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
  __m256i acc = _mm256_setzero_si256();
#pragma GCC unroll 2
  for (int h = 0; h < 2; ++h) {
    // Scales of this half (8 int16) in both 128-bit halves; codes vector r covers sub-blocks 2r (lower
    // 128 bits) and 2r + 1 (upper), so its scale vector picks element 2r below and 2r + 1 above.
    const __m256i sc = _mm256_permute4x64_epi64(sc16, h == 0 ? 0x44 : 0xEE);
    const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + h * 64));
    const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + h * 64 + 32));
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 128 + h * 32));
    const __m256i lo[4] = {_mm256_and_si256(ql0, m4), _mm256_and_si256(ql1, m4),
                           _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                           _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4)};
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      const __m256i hi = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * r), m2), 4);
      const __m256i codes = _mm256_or_si256(lo[r], hi);
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + h * 128 + r * 32));
      const int e0 = 2 * r, e1 = 2 * r + 1;  // int16 elements: bytes 2e, 2e + 1
      const __m256i ctl = _mm256_setr_epi8(
          char(2 * e0), char(2 * e0 + 1), char(2 * e0), char(2 * e0 + 1), char(2 * e0), char(2 * e0 + 1), char(2 * e0),
          char(2 * e0 + 1), char(2 * e0), char(2 * e0 + 1), char(2 * e0), char(2 * e0 + 1), char(2 * e0),
          char(2 * e0 + 1), char(2 * e0), char(2 * e0 + 1), char(2 * e1), char(2 * e1 + 1), char(2 * e1),
          char(2 * e1 + 1), char(2 * e1), char(2 * e1 + 1), char(2 * e1), char(2 * e1 + 1), char(2 * e1),
          char(2 * e1 + 1), char(2 * e1), char(2 * e1 + 1), char(2 * e1), char(2 * e1 + 1), char(2 * e1),
          char(2 * e1 + 1));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(codes, xv), _mm256_shuffle_epi8(sc, ctl)));
    }
  }
  return _mm256_sub_epi32(acc, corr);
}

template <GgufType T>
TERN_M1K_AVX2 void rows4(const GgufActs& x, const MatmulArgs& a, int64_t r0, int64_t stride) {
  constexpr int64_t kBB = T == GgufType::Q4_K ? 144 : 210;
  constexpr int64_t kDOff = T == GgufType::Q4_K ? 0 : 208;  // offset of the f16 super-scale d
  const int64_t nb = a.w.cols / 256;
  const size_t rb = size_t(nb * kBB);
  const uint8_t* p[4];
  for (int r = 0; r < 4; ++r) p[r] = static_cast<const uint8_t*>(a.w.data) + size_t(r0 + r * stride) * rb;
  __m128 acc = _mm_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t off = b * kBB;
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(p[r] + off + kGgufM1PrefetchBytes), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(p[r] + off + kGgufM1PrefetchBytes + 64), _MM_HINT_T0);
    }
    const int8_t* xq = x.q + b * 256;
    const __m128 dx = _mm_set1_ps(x.d256[b]);
    const uint64_t h = gguf_m1_ld16(p[0] + off + kDOff) | gguf_m1_ld16(p[1] + off + kDOff) << 16 |
                       gguf_m1_ld16(p[2] + off + kDOff) << 32 | gguf_m1_ld16(p[3] + off + kDOff) << 48;
    const __m128 d = _mm_cvtph_ps(_mm_cvtsi64_si128(int64_t(h)));
    if constexpr (T == GgufType::Q4_K) {
      __m128i mn[4];
      const int16_t* bs = x.bsum32 + b * 8;
      const __m256i s0 = q4k_block(p[0] + off, xq, bs, &mn[0]), s1 = q4k_block(p[1] + off, xq, bs, &mn[1]);
      const __m256i s2 = q4k_block(p[2] + off, xq, bs, &mn[2]), s3 = q4k_block(p[3] + off, xq, bs, &mn[3]);
      const uint64_t hm = gguf_m1_ld16(p[0] + off + 2) | gguf_m1_ld16(p[1] + off + 2) << 16 |
                          gguf_m1_ld16(p[2] + off + 2) << 32 | gguf_m1_ld16(p[3] + off + 2) << 48;
      const __m128 dmin = _mm_cvtph_ps(_mm_cvtsi64_si128(int64_t(hm)));
      acc = _mm_fmadd_ps(_mm_cvtepi32_ps(avx2_hsum4_i32(s0, s1, s2, s3)), _mm_mul_ps(d, dx), acc);
      acc = _mm_fnmadd_ps(_mm_cvtepi32_ps(gguf_m1_hsum4_128(mn[0], mn[1], mn[2], mn[3])), _mm_mul_ps(dmin, dx), acc);
    } else {
      const int16_t* bs = x.bsum16 + b * 16;
      const __m256i s0 = q6k_block(p[0] + off, xq, bs), s1 = q6k_block(p[1] + off, xq, bs);
      const __m256i s2 = q6k_block(p[2] + off, xq, bs), s3 = q6k_block(p[3] + off, xq, bs);
      acc = _mm_fmadd_ps(_mm_cvtepi32_ps(avx2_hsum4_i32(s0, s1, s2, s3)), _mm_mul_ps(d, dx), acc);
    }
  }
  float out[4];
  _mm_storeu_ps(out, acc);
  for (int r = 0; r < 4; ++r) {
    const int64_t row = r0 + r * stride;
    a.y[row] = out[r] + (a.bias ? a.bias[row] : 0.f);
  }
}

template <GgufType T>
TERN_M1K_AVX2 void gemv_m1(const GgufActs& x, const MatmulArgs& a, int64_t n0, int64_t n1) {
  const int64_t part = (n1 - n0) / 4;
  for (int64_t b = 0; b < part; ++b) rows4<T>(x, a, n0 + b, part);
  for (int64_t r = n0 + 4 * part; r < n1; ++r) rows4<T>(x, a, r, 0);
}

}  // namespace

size_t gguf_acts_k_bytes(int64_t k) {
  return gguf_m1_align64(size_t(k)) + gguf_m1_align64(size_t(k / 256) * sizeof(float)) +
         gguf_m1_align64(size_t(k / 16) * 2) + gguf_m1_align64(size_t(k / 32) * 2);
}

TERN_M1K_AVX2 GgufActs gguf_acts_k_prepare_avx2(const float* x, int64_t k, void* scratch) {
  auto* base = static_cast<char*>(scratch);
  auto* q = reinterpret_cast<int8_t*>(base);
  base += gguf_m1_align64(size_t(k));
  auto* d = reinterpret_cast<float*>(base);
  base += gguf_m1_align64(size_t(k / 256) * sizeof(float));
  auto* s16 = reinterpret_cast<int16_t*>(base);
  base += gguf_m1_align64(size_t(k / 16) * 2);
  auto* s32 = reinterpret_cast<int16_t*>(base);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t b = 0; b < k / 256; ++b) {
    const float* v = x + b * 256;
    __m256 vmax = _mm256_setzero_ps();
    for (int j = 0; j < 256; j += 8) vmax = _mm256_max_ps(vmax, _mm256_and_ps(_mm256_loadu_ps(v + j), abs_mask));
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float dd = _mm_cvtss_f32(m) / 127.f, inv = dd > 0 ? 1.f / dd : 0.f;
    d[b] = dd;
    const __m256 vinv = _mm256_set1_ps(inv);
    for (int g = 0; g < 8; ++g) {
      const float* vg = v + g * 32;
      const __m256i c0 = gguf_m1_codes8(vg, vinv), c1 = gguf_m1_codes8(vg + 8, vinv),
                    c2 = gguf_m1_codes8(vg + 16, vinv), c3 = gguf_m1_codes8(vg + 24, vinv);
      const __m256i pk = _mm256_packs_epi16(_mm256_packs_epi32(c0, c1), _mm256_packs_epi32(c2, c3));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + b * 256 + g * 32),
                          _mm256_permutevar8x32_epi32(pk, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
      const int32_t lo = avx2_hsum_i32(_mm256_add_epi32(c0, c1)), hi = avx2_hsum_i32(_mm256_add_epi32(c2, c3));
      s16[b * 16 + 2 * g] = int16_t(lo), s16[b * 16 + 2 * g + 1] = int16_t(hi);  // |Σ| <= 16·127
      s32[b * 8 + g] = int16_t(lo + hi);
    }
  }
  GgufActs a;
  a.q = q, a.d256 = d, a.bsum16 = s16, a.bsum32 = s32;
  return a;
}

bool gguf_gemv_m1_k_supported(GgufType t) { return t == GgufType::Q4_K || t == GgufType::Q6_K; }

void gguf_gemv_m1_k_avx2(const GgufActs& x, const MatmulArgs& a, int64_t n0, int64_t n1) {
  switch (GgufType(a.w.gguf_type)) {
    case GgufType::Q4_K:
      return gemv_m1<GgufType::Q4_K>(x, a, n0, n1);
    case GgufType::Q6_K:
      return gemv_m1<GgufType::Q6_K>(x, a, n0, n1);
    default:
      return gguf_gemv_int8_avx2(a, n0, n1);
  }
}

}  // namespace tern::cpu
