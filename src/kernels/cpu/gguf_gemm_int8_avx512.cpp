// AVX-512 VNNI GEMM for m > kGemvMaxRows (prefill chunks, large batches) against GGUF Q8_0 / Q4_0 /
// Q4_K / Q6_K: integer dot products instead of decoding the weights to f32 (the f32 panel GEMM spent
// 84% of a Q8_0 prefill in its FMA tile). Why the layout:
//   x is quantized once per call to int8 per 32 values (scale max|x| / 127, as the m <= 8 path).
//   Each weight value becomes an unsigned code u (0..255) with w = s·u − mn per sub-block of G values
//   (G = 32; 16 for Q6_K, whose scales are per 16): Q8_0 u = q + 128, mn = 128·d; Q4_0 u = nibble,
//   mn = 8·d; Q4_K s = d·sc, mn = dmin·m; Q6_K u = 6-bit code, s = d·sc, mn = 32·d·sc. Then
//   Σ w·x = xd · (s · Σ u·xq − mn · Σ xq) per sub-block, and Σ u·xq is vpdpbusd's exact u8 × s8 sum.
//   A panel of 32 weight rows (two zmm of 16 output columns) is repacked per call into thread scratch
//   as [sub-block][G/4 groups][32 columns][4 codes]: one zmm load gives 16 columns × 4 values, and
//   one vpdpbusd against x's 4 codes broadcast adds 64 products into 16 column sums, so the tile
//   needs no horizontal reductions. Each weight block is decoded once per call (full k per panel;
//   ~80 KB for k = 2048, L2-resident) and reused by every row of x.
//   Tile: 4 rows of x × 32 columns, C kept in registers over all of k; per sub-block the int32 sums
//   go to f32 with one vcvtdq2ps and two FMAs (scale, then the min term).
// Results differ from the f32 path only by x's int8 rounding (bounded in the unit test).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "kernels/cpu/gguf_kernels.h"

#define TERN_GEMM8_AVX512 \
  __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

namespace tern::cpu {

namespace {

constexpr int kPanel = 32;  // weight rows (output columns) per repacked panel
constexpr int kMR = 4;      // rows of x per tile

inline float f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// The 6-bit scale and min of sub-block j of a Q4_K / Q5_K scales[12] field.
inline void k4_scale_min(int j, const uint8_t* q, int* sc, int* mn) {
  if (j < 4) {
    *sc = q[j] & 63, *mn = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// One native block of one weight row -> codes [block_elems] (value order) and per sub-block s / mn.
void block_codes(GgufType t, const uint8_t* b, uint8_t* u, float* s, float* mn) {
  switch (t) {
    case GgufType::Q8_0: {
      const float d = f16(b);
      for (int i = 0; i < 32; ++i) u[i] = uint8_t(int(int8_t(b[2 + i])) + 128);
      s[0] = d, mn[0] = 128.f * d;
      return;
    }
    case GgufType::Q4_0: {
      const float d = f16(b);
      for (int i = 0; i < 16; ++i) u[i] = b[2 + i] & 0xF, u[i + 16] = b[2 + i] >> 4;
      s[0] = d, mn[0] = 8.f * d;
      return;
    }
    case GgufType::Q4_K: {
      const float d = f16(b), dmin = f16(b + 2);
      const uint8_t* qs = b + 16;
      for (int p = 0; p < 4; ++p) {
        for (int l = 0; l < 32; ++l) u[p * 64 + l] = qs[p * 32 + l] & 0xF, u[p * 64 + 32 + l] = qs[p * 32 + l] >> 4;
        for (int h = 0; h < 2; ++h) {
          int sc, m;
          k4_scale_min(2 * p + h, b + 4, &sc, &m);
          s[2 * p + h] = d * float(sc), mn[2 * p + h] = dmin * float(m);
        }
      }
      return;
    }
    case GgufType::Q6_K: {
      const uint8_t *ql = b, *qh = b + 128;
      const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
      const float d = f16(b + 208);
      for (int h = 0; h < 2; ++h) {
        for (int l = 0; l < 32; ++l) {
          const uint8_t a = ql[h * 64 + l], c = ql[h * 64 + l + 32], hb = qh[h * 32 + l];
          uint8_t* o = u + h * 128 + l;
          o[0] = uint8_t((a & 0xF) | ((hb & 3) << 4));
          o[32] = uint8_t((c & 0xF) | (((hb >> 2) & 3) << 4));
          o[64] = uint8_t((a >> 4) | (((hb >> 4) & 3) << 4));
          o[96] = uint8_t((c >> 4) | (((hb >> 6) & 3) << 4));
        }
      }
      for (int j = 0; j < 16; ++j) s[j] = d * float(sc[j]), mn[j] = 32.f * d * float(sc[j]);
      return;
    }
    default:
      return;
  }
}

inline int sub_elems(GgufType t) { return t == GgufType::Q6_K ? 16 : 32; }

// The 32 codes v[0..32) of one sub-block of column c into the panel: group q (4 codes) at dst + q·128.
TERN_GEMM8_AVX512 inline void put32(uint8_t* dst, __m256i v) {
  alignas(32) uint32_t w[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(w), v);
#pragma GCC unroll 8
  for (int q = 0; q < 8; ++q) std::memcpy(dst + q * kPanel * 4, &w[q], 4);
}

// Q8_0 / Q4_0 / Q4_K / Q6_K blocks of one weight row straight into the panel (vector unpack, no per-value
// loop): the repack is per call, and for the few rows an MoE expert gets it costs as much as the tile.
TERN_GEMM8_AVX512 void repack_row_fast(GgufType t, const uint8_t* row, int64_t nblk, uint8_t* codes, float* s,
                                       float* mn, int c) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int64_t blk = 0; blk < nblk; ++blk) {
    if (t == GgufType::Q8_0) {
      const uint8_t* b = row + blk * 34;
      const float d = f16(b);
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2));
      put32(codes + size_t(blk) * 32 * kPanel + size_t(c) * 4, _mm256_xor_si256(q, _mm256_set1_epi8(char(0x80))));
      s[blk * kPanel + c] = d, mn[blk * kPanel + c] = 128.f * d;
    } else if (t == GgufType::Q4_0) {
      const uint8_t* b = row + blk * 18;
      const float d = f16(b);
      const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2));
      const __m256i v = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), m4);
      put32(codes + size_t(blk) * 32 * kPanel + size_t(c) * 4, v);
      s[blk * kPanel + c] = d, mn[blk * kPanel + c] = 8.f * d;
    } else if (t == GgufType::Q6_K) {
      // Half h: values [32r, 32r + 32) of the half are sub-blocks 8h + 2r, 8h + 2r + 1 (16 values each),
      // whose panel groups follow each other at the same 128-byte stride as one 32-value sub-block.
      const uint8_t* b = row + blk * 210;
      const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
      const float d = f16(b + 208);
      const __m256i m2 = _mm256_set1_epi8(3);
      for (int h = 0; h < 2; ++h) {
        const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + h * 64));
        const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + h * 64 + 32));
        const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 128 + h * 32));
        const __m256i lo[4] = {_mm256_and_si256(l0, m4), _mm256_and_si256(l1, m4),
                               _mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                               _mm256_and_si256(_mm256_srli_epi16(l1, 4), m4)};
        for (int r = 0; r < 4; ++r) {
          const __m256i hi = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * r), m2), 4);
          const int64_t sb = blk * 16 + h * 8 + 2 * r;
          put32(codes + size_t(sb) * 16 * kPanel + size_t(c) * 4, _mm256_or_si256(lo[r], hi));
        }
      }
      for (int j = 0; j < 16; ++j) {
        s[(blk * 16 + j) * kPanel + c] = d * float(sc[j]), mn[(blk * 16 + j) * kPanel + c] = 32.f * d * float(sc[j]);
      }
    } else {  // Q4_K: chunk p of 32 bytes holds sub-block 2p (low nibbles) and 2p + 1 (high)
      const uint8_t* b = row + blk * 144;
      const float d = f16(b), dmin = f16(b + 2);
      for (int p = 0; p < 4; ++p) {
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16 + p * 32));
        const int64_t sb = blk * 8 + 2 * p;
        put32(codes + size_t(sb) * 32 * kPanel + size_t(c) * 4, _mm256_and_si256(q, m4));
        put32(codes + size_t(sb + 1) * 32 * kPanel + size_t(c) * 4, _mm256_and_si256(_mm256_srli_epi16(q, 4), m4));
        for (int h = 0; h < 2; ++h) {
          int sc, m;
          k4_scale_min(2 * p + h, b + 4, &sc, &m);
          s[(sb + h) * kPanel + c] = d * float(sc), mn[(sb + h) * kPanel + c] = dmin * float(m);
        }
      }
    }
  }
}

// Panel of `cols` (<= 32) weight rows starting at row c0, all of k: codes [nsub][G/4][32][4], then
// s [nsub][32], then mn [nsub][32]. Missing columns get code 0 and s = mn = 0.
void repack_panel(const MatmulArgs& a, int64_t c0, int cols, uint8_t* codes, float* s, float* mn) {
  const GgufType t = GgufType(a.w.gguf_type);
  const GgufTypeTraits& tr = gguf_traits(t);
  const int g = sub_elems(t), per_block = tr.block_elems / g;
  const int64_t k = a.w.cols, nblk = k / tr.block_elems, nsub = k / g;
  const size_t row_bytes = gguf_row_bytes(t, k);
  if (cols < kPanel) {
    std::memset(codes, 0, size_t(nsub) * size_t(g) * kPanel);
    std::memset(s, 0, size_t(nsub) * kPanel * sizeof(float));
    std::memset(mn, 0, size_t(nsub) * kPanel * sizeof(float));
  }
  const bool fast = t == GgufType::Q8_0 || t == GgufType::Q4_0 || t == GgufType::Q4_K || t == GgufType::Q6_K;
  alignas(64) uint8_t u[256];
  float bs[16], bm[16];
  for (int c = 0; c < cols; ++c) {
    const uint8_t* row = static_cast<const uint8_t*>(a.w.data) + size_t(c0 + c) * row_bytes;
    if (fast) {
      repack_row_fast(t, row, nblk, codes, s, mn, c);
      continue;
    }
    for (int64_t blk = 0; blk < nblk; ++blk) {
      block_codes(t, row + blk * tr.block_bytes, u, bs, bm);
      for (int j = 0; j < per_block; ++j) {
        const int64_t sb = blk * per_block + j;
        uint8_t* dst = codes + size_t(sb) * size_t(g) * kPanel + size_t(c) * 4;
        const uint8_t* src = u + j * g;
        for (int q = 0; q < g / 4; ++q) std::memcpy(dst + q * kPanel * 4, src + q * 4, 4);
        s[sb * kPanel + c] = bs[j], mn[sb * kPanel + c] = bm[j];
      }
    }
  }
}

// y[i0 .. i0+MR, c0 .. c0+cols) for one panel. x: codes [m][k], xd [m][k/32], xs [m][k/G] = xd · Σ codes.
template <int MR, int G>
TERN_GEMM8_AVX512 void tile(const GgufGemmActs& x, const MatmulArgs& a, int64_t i0, int64_t c0, int cols,
                            const uint8_t* codes, const float* s, const float* mn) {
  const int64_t k = a.w.cols, nsub = k / G;
  const float* xs = G == 16 ? x.xs16 : x.xs32;
  __m512 c[MR][2];
  for (int i = 0; i < MR; ++i) c[i][0] = c[i][1] = _mm512_setzero_ps();
  for (int64_t sb = 0; sb < nsub; ++sb) {
    const uint8_t* p = codes + size_t(sb) * G * kPanel;
    __m512i acc[MR][2];
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int q = 0; q < G / 4; ++q) {
      const __m512i w0 = _mm512_loadu_si512(p + q * 128), w1 = _mm512_loadu_si512(p + q * 128 + 64);
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) {
        int32_t xv;
        std::memcpy(&xv, x.q + (i0 + i) * k + sb * G + q * 4, 4);
        const __m512i xb = _mm512_set1_epi32(xv);
        acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], w0, xb);
        acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], w1, xb);
      }
    }
    const __m512 s0 = _mm512_loadu_ps(s + sb * kPanel), s1 = _mm512_loadu_ps(s + sb * kPanel + 16);
    const __m512 m0 = _mm512_loadu_ps(mn + sb * kPanel), m1 = _mm512_loadu_ps(mn + sb * kPanel + 16);
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m512 xd = _mm512_set1_ps(x.d[(i0 + i) * (k / 32) + sb * G / 32]);
      const __m512 xm = _mm512_set1_ps(xs[(i0 + i) * nsub + sb]);
      c[i][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i][0]), _mm512_mul_ps(s0, xd), c[i][0]);
      c[i][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i][1]), _mm512_mul_ps(s1, xd), c[i][1]);
      c[i][0] = _mm512_fnmadd_ps(m0, xm, c[i][0]);
      c[i][1] = _mm512_fnmadd_ps(m1, xm, c[i][1]);
    }
  }
  const __mmask16 k0 = cols >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1);
  const __mmask16 k1 = cols >= 32 ? __mmask16(0xFFFF) : cols <= 16 ? 0 : __mmask16((1u << (cols - 16)) - 1);
  const int64_t n = a.w.rows;
  for (int i = 0; i < MR; ++i) {
    float* y = a.y + (i0 + i) * n + c0;
    __m512 r0 = c[i][0], r1 = c[i][1];
    if (a.bias) {
      r0 = _mm512_add_ps(r0, _mm512_maskz_loadu_ps(k0, a.bias + c0));
      r1 = _mm512_add_ps(r1, _mm512_maskz_loadu_ps(k1, a.bias + c0 + 16));
    }
    _mm512_mask_storeu_ps(y, k0, r0);
    _mm512_mask_storeu_ps(y + 16, k1, r1);
  }
}

template <int G>
TERN_GEMM8_AVX512 void tiles(const GgufGemmActs& x, const MatmulArgs& a, int64_t c0, int cols, const uint8_t* codes,
                             const float* s, const float* mn) {
  int64_t i = 0;
  for (; i + kMR <= a.m; i += kMR) tile<kMR, G>(x, a, i, c0, cols, codes, s, mn);
  switch (a.m - i) {
    case 3: return tile<3, G>(x, a, i, c0, cols, codes, s, mn);
    case 2: return tile<2, G>(x, a, i, c0, cols, codes, s, mn);
    case 1: return tile<1, G>(x, a, i, c0, cols, codes, s, mn);
    default: return;
  }
}

inline size_t align64(size_t n) { return (n + 63) & ~size_t(63); }

}  // namespace

bool gguf_gemm_int8_supported(GgufType t) {
  return t == GgufType::Q8_0 || t == GgufType::Q4_0 || t == GgufType::Q4_K || t == GgufType::Q6_K;
}

size_t gguf_gemm_int8_acts_bytes(int64_t m, int64_t k) {
  return align64(size_t(m * k)) + align64(size_t(m * (k / 32)) * 4) + align64(size_t(m * (k / 32)) * 4) +
         align64(size_t(m * (k / 16)) * 4);
}

TERN_GEMM8_AVX512 GgufGemmActs gguf_gemm_int8_prepare_avx512(const float* x, int64_t m, int64_t k, void* scratch) {
  auto* base = static_cast<char*>(scratch);
  GgufGemmActs a;
  auto* q = reinterpret_cast<int8_t*>(base);
  base += align64(size_t(m * k));
  auto* d = reinterpret_cast<float*>(base);
  base += align64(size_t(m * (k / 32)) * 4);
  auto* xs32 = reinterpret_cast<float*>(base);
  base += align64(size_t(m * (k / 32)) * 4);
  auto* xs16 = reinterpret_cast<float*>(base);
  const __m512 lo = _mm512_set1_ps(-127.f), hi = _mm512_set1_ps(127.f);
  for (int64_t r = 0; r < m * (k / 32); ++r) {  // r: one 32-value group of one row (k % 32 == 0)
    const __m512 v0 = _mm512_loadu_ps(x + r * 32), v1 = _mm512_loadu_ps(x + r * 32 + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float dd = amax / 127.f, inv = dd > 0 ? 1.f / dd : 0.f;
    const __m512 vi = _mm512_set1_ps(inv);
    // Round to nearest even (the default MXCSR mode), as std::nearbyint.
    const __m512i c0 = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v0, vi), lo), hi));
    const __m512i c1 = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v1, vi), lo), hi));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + r * 32), _mm512_cvtsepi32_epi8(c0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + r * 32 + 16), _mm512_cvtsepi32_epi8(c1));
    const int s0 = _mm512_reduce_add_epi32(c0), s1 = _mm512_reduce_add_epi32(c1);
    d[r] = dd;
    xs16[2 * r] = dd * float(s0), xs16[2 * r + 1] = dd * float(s1);
    xs32[r] = dd * float(s0 + s1);
  }
  a.q = q, a.d = d, a.xs32 = xs32, a.xs16 = xs16;
  return a;
}

size_t gguf_gemm_int8_panel_bytes(const WeightMatrix& w) {
  const GgufType t = GgufType(w.gguf_type);
  const int64_t nsub = w.cols / sub_elems(t);
  return align64(size_t(nsub) * size_t(sub_elems(t)) * kPanel) + 2 * align64(size_t(nsub) * kPanel * sizeof(float));
}

void gguf_gemm_int8_avx512vnni(const GgufGemmActs& x, const MatmulArgs& a, void* panel, int64_t n0, int64_t n1) {
  const GgufType t = GgufType(a.w.gguf_type);
  const int g = sub_elems(t);
  const int64_t nsub = a.w.cols / g;
  auto* codes = static_cast<uint8_t*>(panel);
  auto* s = reinterpret_cast<float*>(codes + align64(size_t(nsub) * size_t(g) * kPanel));
  float* mn = s + align64(size_t(nsub) * kPanel * sizeof(float)) / sizeof(float);
  for (int64_t c0 = n0; c0 < n1; c0 += kPanel) {
    const int cols = int(std::min<int64_t>(kPanel, n1 - c0));
    repack_panel(a, c0, cols, codes, s, mn);
    g == 16 ? tiles<16>(x, a, c0, cols, codes, s, mn) : tiles<32>(x, a, c0, cols, codes, s, mn);
  }
}

}  // namespace tern::cpu
