// Internal to the integer GEMMs for tern's own formats (quant_gemm_w8a16.cpp, quant_gemm_int4.cpp): the
// per-call repack of up to kQPanel weight rows into the panel their tiles read. Both formats become
// "units" of 4 bytes per (k step, column): W8A16 a pair of int16 weights (k values 2t, 2t + 1; vpdpwssd /
// vpmaddwd's operand), int4 a quad of u8 codes (k values 4t .. 4t + 3; vpdpbusd / vpmaddubsw's). Panel:
// units [steps][kQPanel columns][4 bytes], so one zmm load is 16 columns × 1 unit, and one vpdp* against
// x's unit broadcast adds every product of that k step into 16 column sums (no horizontal reductions).
// The repack is a 4 × 8 dword transpose (4 weight rows, 8 k steps) with 16-byte stores, not one 4-byte
// store per unit: it runs once per call per weight byte, and at m = 16 it costs as much as a few tiles.
// AVX2 code (called from the AVX-512 tiles too). Nothing is repacked at load: resident memory is the
// checkpoint's; the panel (W8A16: 128 · k bytes, int4: 32 · k bytes) lives in per-thread scratch.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/quant_avx2_util.h"

namespace tern::cpu {
namespace {

constexpr int kQPanel = 32;                   // weight rows (output columns) per panel
constexpr int64_t kUnitStride = kQPanel * 4;  // bytes from one k step to the next in a panel

inline size_t qalign64(size_t n) { return (n + 63) & ~size_t(63); }

// Rows r0..r3 hold 8 units each (unit t of row j = k step t of column c + j): unit t of the 4 columns
// goes to dst + t · kUnitStride (16 bytes: columns c..c+3).
TERN_TARGET_AVX2 inline void store_units_4x8(uint8_t* dst, __m256i r0, __m256i r1, __m256i r2, __m256i r3) {
  const __m256i t0 = _mm256_unpacklo_epi32(r0, r1), t1 = _mm256_unpackhi_epi32(r0, r1);
  const __m256i t2 = _mm256_unpacklo_epi32(r2, r3), t3 = _mm256_unpackhi_epi32(r2, r3);
  const __m256i u[4] = {_mm256_unpacklo_epi64(t0, t2), _mm256_unpackhi_epi64(t0, t2), _mm256_unpacklo_epi64(t1, t3),
                        _mm256_unpackhi_epi64(t1, t3)};  // units t | t + 4
#pragma GCC unroll 4
  for (int t = 0; t < 4; ++t) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + t * kUnitStride), _mm256_castsi256_si128(u[t]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (t + 4) * kUnitStride), _mm256_extracti128_si256(u[t], 1));
  }
}

// ---- W8A16: int16 pairs, k padded to whole kX16Block blocks (zeros) so a block's step count is fixed.

inline int64_t w8a16_steps(int64_t k) { return (k + kX16Block - 1) / kX16Block * (kX16Block / 2); }
inline size_t w8a16_panel_bytes(int64_t k) { return qalign64(size_t(w8a16_steps(k)) * kUnitStride); }

// Weight rows c0 .. c0 + cols (cols <= 32) of an Int8Channel matrix (k even) as int16 pairs.
TERN_TARGET_AVX2 void w8a16_repack(const WeightMatrix& w, int64_t c0, int cols, uint8_t* panel) {
  const int64_t k = w.cols, steps = w8a16_steps(k), full = k / 16 * 16;
  if (cols < kQPanel || k != steps * 2) std::memset(panel, 0, size_t(steps) * kUnitStride);
  const auto* base = static_cast<const int8_t*>(w.data);
  const __m256i zero = _mm256_setzero_si256();
  for (int c = 0; c < cols; c += 4) {
    const int8_t* row[4];
    for (int j = 0; j < 4; ++j) row[j] = c + j < cols ? base + (c0 + c + j) * k : nullptr;
    for (int64_t j = 0; j < full; j += 16) {  // 16 weights = 8 pairs per row
      __m256i r[4];
#pragma GCC unroll 4
      for (int t = 0; t < 4; ++t)
        r[t] = row[t] ? _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row[t] + j))) : zero;
      store_units_4x8(panel + (j / 2) * kUnitStride + c * 4, r[0], r[1], r[2], r[3]);
    }
    for (int t = 0; t < 4 && c + t < cols; ++t)
      for (int64_t j = full; j < k; j += 2) {
        const int16_t pair[2] = {row[t][j], row[t][j + 1]};
        std::memcpy(panel + (j / 2) * kUnitStride + (c + t) * 4, pair, 4);
      }
  }
}

// ---- Int4Group: u8 code quads; per group g and column c, s [g][32] and s · zero [g][32].

inline size_t int4_codes_bytes(int64_t k) { return qalign64(size_t(k / 4) * kUnitStride); }
inline size_t int4_scales_bytes(int64_t k, int group) { return qalign64(size_t(k / group) * kQPanel * sizeof(float)); }
inline size_t int4_panel_bytes(int64_t k, int group) { return int4_codes_bytes(k) + 2 * int4_scales_bytes(k, group); }

struct Int4Panel {
  uint8_t* codes;
  float* s;   // [ng][32]
  float* sz;  // [ng][32]
};
inline Int4Panel int4_panel_view(const WeightMatrix& w, void* panel) {
  auto* codes = static_cast<uint8_t*>(panel);
  auto* s = reinterpret_cast<float*>(codes + int4_codes_bytes(w.cols));
  return {codes, s, s + int4_scales_bytes(w.cols, w.group) / sizeof(float)};
}

// Weight rows c0 .. c0 + cols (cols <= 32) of an Int4Group matrix (k % 32 == 0): codes in column order
// (avx2_unpack_int4 of each 16-byte block), scales and s · zero. Missing columns: codes 0, s = sz = 0.
TERN_TARGET_AVX2 void int4_repack(const WeightMatrix& w, int64_t c0, int cols, const Int4Panel& p) {
  const int64_t k = w.cols, ng = k / w.group;
  if (cols < kQPanel) {
    std::memset(p.codes, 0, size_t(k / 4) * kUnitStride);
    std::memset(p.s, 0, size_t(ng) * kQPanel * sizeof(float));
    std::memset(p.sz, 0, size_t(ng) * kQPanel * sizeof(float));
  }
  const auto* base = static_cast<const uint8_t*>(w.data);
  const __m256i zero = _mm256_setzero_si256();
  for (int c = 0; c < cols; c += 4) {
    const uint8_t* row[4];
    for (int j = 0; j < 4; ++j) row[j] = c + j < cols ? base + (c0 + c + j) * (k / 2) : nullptr;
    for (int64_t j = 0; j < k; j += 32) {  // one packed block: 32 codes = 8 quads per row
      __m256i r[4];
#pragma GCC unroll 4
      for (int t = 0; t < 4; ++t) r[t] = row[t] ? avx2_unpack_int4(row[t] + j / 2) : zero;
      store_units_4x8(p.codes + (j / 4) * kUnitStride + c * 4, r[0], r[1], r[2], r[3]);
    }
  }
  for (int c = 0; c < cols; ++c)
    for (int64_t g = 0; g < ng; ++g) {
      const float s = w.scales[(c0 + c) * ng + g], z = w.zeros ? w.zeros[(c0 + c) * ng + g] : 8.0f;
      p.s[g * kQPanel + c] = s, p.sz[g * kQPanel + c] = s * z;
    }
}

}  // namespace
}  // namespace tern::cpu
