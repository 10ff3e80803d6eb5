// Internal to the integer GGUF GEMMs: the per-call panel repack of gguf_gemm_int8_panel.h, 8 weight rows at a
// time. The per-row repack (repack_row_fast) scatters each 32-code unit as eight 4-byte stores and derives each
// scale in scalar code; at m = 16 that repack was 65-69% of the GEMM call (perf, bench_gguf --gemm-m 16, one
// thread). Here 8 rows' units are loaded together, transposed in registers (8 x 8 dwords: dword q of row i ->
// lane i of vector q, which is the panel's [group q][8 columns][4 codes]) and written as 8 full 32-byte
// stores; scales are unpacked as vectors and transposed the same way. Same panel, bit for bit (tested).
// Q8_0, Q4_0, Q4_K, Q5_K, Q6_K; AVX2 code (called from the AVX-512 GEMM too).
#pragma once

#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/gguf_gemm_int8_panel.h"

namespace tern::cpu {
namespace {

// v[i] = 8 dwords of row i -> v[q] = dword q of rows 0..7.
TERN_TARGET_AVX2 inline void transpose8x8_epi32(__m256i* v) {
  __m256i t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_epi32(v[i], v[i + 1]);
    t[i + 1] = _mm256_unpackhi_epi32(v[i], v[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
    u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
    u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
    u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int q = 0; q < 4; ++q) {
    v[q] = _mm256_permute2x128_si256(u[q], u[q + 4], 0x20);
    v[q + 4] = _mm256_permute2x128_si256(u[q], u[q + 4], 0x31);
  }
}

// 32 codes of each of 8 columns (v[i]: column c8·8 + i) into the panel unit at `dst` (its group 0, column 0).
TERN_TARGET_AVX2 inline void put8x32(uint8_t* dst, int c8, __m256i* v) {
  transpose8x8_epi32(v);
  for (int q = 0; q < 8; ++q) _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + q * kPanel * 4 + c8 * 32), v[q]);
}

// f[i] = 8 per-sub-block values of column i -> s[j·32 + c8·8 + i] for sub-blocks j = 0..7.
TERN_TARGET_AVX2 inline void put8x8_ps(float* s, int c8, const __m256* f) {
  __m256i v[8];
  for (int i = 0; i < 8; ++i) v[i] = _mm256_castps_si256(f[i]);
  transpose8x8_epi32(v);
  for (int j = 0; j < 8; ++j) _mm256_storeu_ps(s + j * kPanel + c8 * 8, _mm256_castsi256_ps(v[j]));
}

TERN_TARGET_AVX2 inline __m256i ld32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// 8 f16 at p + i·stride -> f32.
TERN_TARGET_AVX2 inline __m256 f16x8(const uint8_t* const* rows, size_t off) {
  alignas(16) uint16_t h[8];
  for (int i = 0; i < 8; ++i) std::memcpy(&h[i], rows[i] + off, 2);
  return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(h)));
}

// Columns c8·8 .. c8·8 + 7 of the panel from weight rows rows[0..7], all of k.
TERN_TARGET_AVX2 void repack8(GgufType t, const uint8_t* const* rows, int64_t nblk, int c8, uint8_t* codes, float* s,
                              float* mn, bool signed_q8) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256i v[8];
  if (t == GgufType::Q8_0 || t == GgufType::Q4_0) {
    const bool q8 = t == GgufType::Q8_0;
    const size_t bb = q8 ? 34 : 18;
    const __m256i flip = _mm256_set1_epi8(char(q8 && !signed_q8 ? 0x80 : 0));
    for (int64_t blk = 0; blk < nblk; ++blk) {
      const size_t off = size_t(blk) * bb;
      for (int i = 0; i < 8; ++i) {
        if (q8) {
          v[i] = _mm256_xor_si256(ld32(rows[i] + off + 2), flip);
        } else {
          const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[i] + off + 2));
          v[i] = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), m4);
        }
      }
      put8x32(codes + size_t(blk) * 32 * kPanel, c8, v);
      const __m256 d = f16x8(rows, off);
      _mm256_storeu_ps(s + blk * kPanel + c8 * 8, d);
      const __m256 m = q8 && signed_q8 ? _mm256_setzero_ps() : _mm256_mul_ps(d, _mm256_set1_ps(q8 ? 128.f : 8.f));
      _mm256_storeu_ps(mn + blk * kPanel + c8 * 8, m);
    }
    return;
  }
  if (t == GgufType::Q4_K || t == GgufType::Q5_K) {
    const bool q5 = t == GgufType::Q5_K;
    const size_t bb = q5 ? 176 : 144, qs = q5 ? 48 : 16;
    const __m256i one = _mm256_set1_epi8(1);
    for (int64_t blk = 0; blk < nblk; ++blk) {
      const size_t off = size_t(blk) * bb;
      for (int p = 0; p < 4; ++p) {  // chunk p: sub-block 2p (low nibbles), 2p + 1 (high)
        __m256i hi[8];
        for (int i = 0; i < 8; ++i) {
          const __m256i q = ld32(rows[i] + off + qs + 32 * p);
          v[i] = _mm256_and_si256(q, m4), hi[i] = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
          if (q5) {
            const __m256i qh = ld32(rows[i] + off + 16);
            v[i] = _mm256_or_si256(v[i], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * p), one), 4));
            hi[i] = _mm256_or_si256(hi[i], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * p + 1), one), 4));
          }
        }
        const int64_t sb = blk * 8 + 2 * p;
        put8x32(codes + size_t(sb) * 32 * kPanel, c8, v);
        put8x32(codes + size_t(sb + 1) * 32 * kPanel, c8, hi);
      }
      // The 6-bit scales and mins of the 8 sub-blocks (k4_scale_min, four at a time), times d / dmin.
      __m256 fs[8], fm[8];
      for (int i = 0; i < 8; ++i) {
        const uint8_t* b = rows[i] + off;
        uint32_t u[3];
        std::memcpy(u, b + 4, 12);
        const uint32_t sc_lo = u[0] & 0x3f3f3f3f, mn_lo = u[1] & 0x3f3f3f3f;
        const uint32_t sc_hi = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
        const uint32_t mn_hi = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
        const __m128i sm = _mm_setr_epi32(int(sc_lo), int(sc_hi), int(mn_lo), int(mn_hi));
        const __m128 dd = _mm_cvtph_ps(_mm_cvtsi32_si128(int(uint32_t(b[0]) | uint32_t(b[1]) << 8 |
                                                             uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24)));
        fs[i] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sm)), _mm256_broadcastss_ps(dd));
        fm[i] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(sm, 8))),
                              _mm256_broadcastss_ps(_mm_movehdup_ps(dd)));
      }
      put8x8_ps(s + blk * 8 * kPanel, c8, fs);
      put8x8_ps(mn + blk * 8 * kPanel, c8, fm);
    }
    return;
  }
  // Q6_K: half h, quarter r gives 32 codes = sub-blocks 8h + 2r, 8h + 2r + 1 (16 each), one panel unit.
  const __m256i m2 = _mm256_set1_epi8(3);
  for (int64_t blk = 0; blk < nblk; ++blk) {
    const size_t off = size_t(blk) * 210;
    for (int h = 0; h < 2; ++h) {
      for (int r = 0; r < 4; ++r) {
        for (int i = 0; i < 8; ++i) {
          const uint8_t* b = rows[i] + off;
          const __m256i l = ld32(b + h * 64 + (r & 1) * 32);
          const __m256i lo = r < 2 ? _mm256_and_si256(l, m4) : _mm256_and_si256(_mm256_srli_epi16(l, 4), m4);
          const __m256i qh = ld32(b + 128 + h * 32);
          v[i] = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * r), m2), 4));
        }
        put8x32(codes + size_t(blk * 16 + h * 8 + 2 * r) * 16 * kPanel, c8, v);
      }
    }
    for (int half = 0; half < 2; ++half) {  // sub-blocks 8·half .. 8·half + 7
      __m256 fs[8], fm[8];
      for (int i = 0; i < 8; ++i) {
        const uint8_t* b = rows[i] + off;
        const __m256 sc = _mm256_cvtepi32_ps(
            _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + 192 + 8 * half))));
        uint16_t hd;
        std::memcpy(&hd, b + 208, 2);
        fs[i] = _mm256_mul_ps(sc, _mm256_set1_ps(_cvtsh_ss(hd)));
        fm[i] = _mm256_mul_ps(fs[i], _mm256_set1_ps(32.f));
      }
      put8x8_ps(s + (blk * 16 + 8 * half) * kPanel, c8, fs);
      put8x8_ps(mn + (blk * 16 + 8 * half) * kPanel, c8, fm);
    }
  }
}

// repack_panel (gguf_gemm_int8_panel.h) with the whole 8-column groups taken 8 rows at a time; the same panel.
TERN_TARGET_AVX2 void repack_panel8(const MatmulArgs& a, int64_t c0, int cols, uint8_t* codes, float* s, float* mn,
                                    bool signed_q8) {
  const GgufType t = GgufType(a.w.gguf_type);
  const int groups = cols / 8;
  if (groups == 0 || !(t == GgufType::Q8_0 || t == GgufType::Q4_0 || t == GgufType::Q4_K || t == GgufType::Q5_K ||
                       t == GgufType::Q6_K)) {
    return repack_panel(a, c0, cols, codes, s, mn, signed_q8);
  }
  const GgufTypeTraits& tr = gguf_traits(t);
  const int64_t k = a.w.cols, nblk = k / tr.block_elems, nsub = k / sub_elems(t);
  const size_t row_bytes = gguf_row_bytes(t, k);
  if (cols < kPanel) {
    std::memset(codes, 0, size_t(nsub) * size_t(sub_elems(t)) * kPanel);
    std::memset(s, 0, size_t(nsub) * kPanel * sizeof(float));
    std::memset(mn, 0, size_t(nsub) * kPanel * sizeof(float));
  }
  const auto* base = static_cast<const uint8_t*>(a.w.data);
  for (int c8 = 0; c8 < groups; ++c8) {
    const uint8_t* rows[8];
    for (int i = 0; i < 8; ++i) rows[i] = base + size_t(c0 + c8 * 8 + i) * row_bytes;
    repack8(t, rows, nblk, c8, codes, s, mn, signed_q8);
  }
  for (int c = groups * 8; c < cols; ++c)
    repack_row_fast(t, base + size_t(c0 + c) * row_bytes, nblk, codes, s, mn, c, signed_q8);
}

}  // namespace
}  // namespace tern::cpu
