// Internal to the integer GGUF GEMMs (gguf_gemm_int8_avx512.cpp, gguf_gemm_int8_avx2.cpp): the per-call
// repack of 32 weight rows into the panel their tiles read. Layout, for sub-blocks of G values (32; 16
// for Q6_K): codes [k/G][G/4 groups][32 columns][4 codes] (one 32-byte load = 8 columns × 4 values), then
// s [k/G][32] and mn [k/G][32] with w = s·u − mn. AVX2 code (called from the AVX-512 file too).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "core/dtype.h"
#include "kernels/cpu/gguf_kernels.h"
#include "kernels/cpu/matmul_avx2_util.h"

namespace tern::cpu {
namespace {

constexpr int kPanel = 32;  // weight rows (output columns) per repacked panel

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
inline void block_codes(GgufType t, const uint8_t* b, uint8_t* u, float* s, float* mn) {
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
TERN_TARGET_AVX2 inline void put32(uint8_t* dst, __m256i v) {
  alignas(32) uint32_t w[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(w), v);
#pragma GCC unroll 8
  for (int q = 0; q < 8; ++q) std::memcpy(dst + q * kPanel * 4, &w[q], 4);
}

// Q8_0 / Q4_0 / Q4_K / Q5_K / Q6_K blocks of one weight row straight into the panel (vector unpack, no per-value
// loop): the repack is per call, and for the few rows an MoE expert gets it costs as much as the tile.
// signed_q8: Q8_0 codes stay signed (u = q, mn = 0) for kernels whose u8 × s8 step would saturate on q + 128.
TERN_TARGET_AVX2 void repack_row_fast(GgufType t, const uint8_t* row, int64_t nblk, uint8_t* codes, float* s,
                                      float* mn, int c, bool signed_q8) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int64_t blk = 0; blk < nblk; ++blk) {
    if (t == GgufType::Q8_0) {
      const uint8_t* b = row + blk * 34;
      const float d = f16(b);
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2));
      put32(codes + size_t(blk) * 32 * kPanel + size_t(c) * 4,
            signed_q8 ? q : _mm256_xor_si256(q, _mm256_set1_epi8(char(0x80))));
      s[blk * kPanel + c] = d, mn[blk * kPanel + c] = signed_q8 ? 0.f : 128.f * d;
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
    } else {  // Q4_K / Q5_K: chunk p of 32 bytes holds sub-block 2p (low nibbles) and 2p + 1 (high)
      const bool q5 = t == GgufType::Q5_K;  // + bit 2p / 2p + 1 of qh[l] as the code's fifth bit
      const uint8_t* b = row + blk * (q5 ? 176 : 144);
      const float d = f16(b), dmin = f16(b + 2);
      const __m256i qh = q5 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16)) : _mm256_setzero_si256();
      const __m256i one = _mm256_set1_epi8(1);
      for (int p = 0; p < 4; ++p) {
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + (q5 ? 48 : 16) + p * 32));
        const int64_t sb = blk * 8 + 2 * p;
        __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        if (q5) {
          const __m256i h0 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * p), one);
          const __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * p + 1), one);
          lo = _mm256_or_si256(lo, _mm256_slli_epi16(h0, 4));
          hi = _mm256_or_si256(hi, _mm256_slli_epi16(h1, 4));
        }
        put32(codes + size_t(sb) * 32 * kPanel + size_t(c) * 4, lo);
        put32(codes + size_t(sb + 1) * 32 * kPanel + size_t(c) * 4, hi);
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
TERN_TARGET_AVX2 void repack_panel(const MatmulArgs& a, int64_t c0, int cols, uint8_t* codes, float* s, float* mn,
                                   bool signed_q8) {
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
  const bool fast = t == GgufType::Q8_0 || t == GgufType::Q4_0 || t == GgufType::Q4_K || t == GgufType::Q5_K ||
                    t == GgufType::Q6_K;
  alignas(64) uint8_t u[256];
  float bs[16], bm[16];
  for (int c = 0; c < cols; ++c) {
    const uint8_t* row = static_cast<const uint8_t*>(a.w.data) + size_t(c0 + c) * row_bytes;
    if (fast) {
      repack_row_fast(t, row, nblk, codes, s, mn, c, signed_q8);
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

inline size_t align64(size_t n) { return (n + 63) & ~size_t(63); }

// The regions of gguf_gemm_int8_acts_bytes(m, k) scratch as GgufGemmActs (filled by the prepare step).
struct ActsView {
  int8_t* q;
  float *d, *xs32, *xs16;
};
inline ActsView acts_view(void* scratch, int64_t m, int64_t k) {
  auto* base = static_cast<char*>(scratch);
  ActsView v;
  v.q = reinterpret_cast<int8_t*>(base);
  base += align64(size_t(m * k));
  v.d = reinterpret_cast<float*>(base);
  base += align64(size_t(m * (k / 32)) * 4);
  v.xs32 = reinterpret_cast<float*>(base);
  base += align64(size_t(m * (k / 32)) * 4);
  v.xs16 = reinterpret_cast<float*>(base);
  return v;
}

// The three regions of a panel buffer of gguf_gemm_int8_panel_bytes(w).
struct PanelView {
  uint8_t* codes;
  float* s;
  float* mn;
};
inline PanelView panel_view(const WeightMatrix& w, void* panel) {
  const GgufType t = GgufType(w.gguf_type);
  const int64_t nsub = w.cols / sub_elems(t);
  auto* codes = static_cast<uint8_t*>(panel);
  auto* s = reinterpret_cast<float*>(codes + align64(size_t(nsub) * size_t(sub_elems(t)) * kPanel));
  return {codes, s, s + align64(size_t(nsub) * kPanel * sizeof(float)) / sizeof(float)};
}

}  // namespace
}  // namespace tern::cpu
