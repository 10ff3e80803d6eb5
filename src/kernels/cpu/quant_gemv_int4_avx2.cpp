// AVX2 int4 GEMV for one row of x (decode, m = 1) with x in pair order (QuantActs::xq_pairs, group a
// multiple of 64), the hot path of int4 decode. Memory-bound only if the instructions per weight byte
// stay low enough (two vCPUs may share a core), so the per-group work is done for 4 rows at once:
//   inner loop, per 64 codes of a row (32 bytes): 1 load, 1 shift, 2 masks, 2 vpmaddubsw, 2 adds
//     (int16 lanes: ≤ 2·15·127 per vpmaddubsw lane, ≤ 8 blocks of 32 per partial sum → < 2^15);
//   per group, for 4 rows together: vpmaddwd to int32, one 4x8 -> 4 transpose-add (unpack/add),
//     one vcvtdq2ps and two FMAs applying s·(xd·dot − z·xs) to a 4-lane accumulator, instead of a
//     broadcast + FMA per row and scalar scale / zero-point arithmetic that spilled registers.
// R rows taken from R far-apart parts of the thread's row range are processed together (R read
// streams, each software-prefetched), as in quant_gemv_avx2.cpp.
#include "kernels/cpu/quant_avx2_util.h"

namespace tern::cpu {

namespace {

// Bytes ahead of the current position each row stream is prefetched (as quant_gemv_avx2.cpp).
constexpr int64_t kPrefetchBytes = 320;

// y[i, r0 + s·stride] for s < R (R <= 4). GS: the group size when known at compile time (full
// unroll of the group), 0 = w.group at run time.
template <int R, int GS>
TERN_TARGET_AVX2 void int4_rows(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t i,
                                int64_t r0, int64_t stride) {
  const int64_t k = w.cols, gs = GS ? GS : w.group, ng = k / gs;
  const int64_t sub = std::min<int64_t>(gs, 256);  // columns per exact int16 partial sum
  const __m256i lo = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
  const uint8_t* q[R];
  const float* sc[R];
  const float* zp[R];
  for (int r = 0; r < R; ++r) {
    const int64_t row = r0 + r * stride;
    q[r] = static_cast<const uint8_t*>(w.data) + row * (k / 2);
    sc[r] = w.scales + row * ng;
    zp[r] = w.zeros ? w.zeros + row * ng : nullptr;
    // The scales (and zero points) of a row are their own small stream: fetch those of a row two
    // ahead in this stream now, so its first group does not wait for a DRAM miss.
    const int64_t ahead = std::min(row + 2, w.rows - 1) * ng;
    for (int64_t g = 0; g < ng; g += 16) {
      _mm_prefetch(reinterpret_cast<const char*>(w.scales + ahead + g), _MM_HINT_T0);
      if (w.zeros) _mm_prefetch(reinterpret_cast<const char*>(w.zeros + ahead + g), _MM_HINT_T0);
    }
  }
  const int8_t* x = a.xq_pairs + i * k;
  const float* xd = a.xd + i * ng;
  const float* xs = a.xs + i * ng;
  __m128 acc = _mm_setzero_ps();
  for (int64_t g = 0; g < ng; ++g) {
    __m256i s32[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
#pragma GCC unroll 4
    for (int64_t j0 = g * gs; j0 < (g + 1) * gs; j0 += sub) {
      const int64_t j1 = std::min((g + 1) * gs, j0 + sub);
      __m256i p16[R];
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) p16[r] = _mm256_setzero_si256();
#pragma GCC unroll 4
      for (int64_t j = j0; j < j1; j += 64) {
        if ((j & 127) == 0) {  // 128 columns = one 64-byte line of every row
#pragma GCC unroll 4
          for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(q[r] + j / 2 + kPrefetchBytes), _MM_HINT_T0);
        }
        const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + j));
        const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + j + 32));
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[r] + j / 2));
          const __m256i pl = _mm256_maddubs_epi16(_mm256_and_si256(v, lo), x0);
          const __m256i ph = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), lo), x1);
          p16[r] = _mm256_add_epi16(p16[r], _mm256_add_epi16(pl, ph));
        }
      }
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) s32[r] = _mm256_add_epi32(s32[r], _mm256_madd_epi16(p16[r], ones));
    }
    // Built in registers (4 scalar stores + one vector load would miss store-to-load forwarding).
    const __m128 sv = _mm_setr_ps(sc[0][g], R > 1 ? sc[1 % R][g] : 0.f, R > 2 ? sc[2 % R][g] : 0.f,
                                  R > 3 ? sc[3 % R][g] : 0.f);
    const __m128 zv = !zp[0] ? _mm_set1_ps(8.0f)
                             : _mm_setr_ps(zp[0][g], R > 1 ? zp[1 % R][g] : 0.f, R > 2 ? zp[2 % R][g] : 0.f,
                                           R > 3 ? zp[3 % R][g] : 0.f);
    const __m128 dot = _mm_cvtepi32_ps(avx2_hsum4_i32(s32[0], s32[1], s32[2], s32[3]));
    // Per row: s · (xd · dot − z · xs), the reference's grouping.
    const __m128 t = _mm_fmsub_ps(dot, _mm_set1_ps(xd[g]), _mm_mul_ps(zv, _mm_set1_ps(xs[g])));
    acc = _mm_fmadd_ps(sv, t, acc);
  }
  float out[4];
  _mm_storeu_ps(out, acc);
  for (int r = 0; r < R; ++r) {
    const int64_t row = r0 + r * stride;
    y[i * w.rows + row] = out[r] + (bias ? bias[row] : 0.f);
  }
}


// One group of 128 columns of one row (64 bytes): [8] int32 partial sums (4 vpmaddubsw results of
// ≤ 3810 per int16 lane summed as a tree: < 2^15; the tree saves the add into a zeroed accumulator).
TERN_TARGET_AVX2 inline __m256i group128(const uint8_t* q, __m256i x0a, __m256i x1a, __m256i x0b, __m256i x1b) {
  const __m256i lo = _mm256_set1_epi8(0x0f);
  const __m256i va = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
  const __m256i vb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32));
  const __m256i pa = _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_and_si256(va, lo), x0a),
                                      _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(va, 4), lo), x1a));
  const __m256i pb = _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_and_si256(vb, lo), x0b),
                                      _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(vb, 4), lo), x1b));
  return _mm256_madd_epi16(_mm256_add_epi16(pa, pb), _mm256_set1_epi16(1));
}

// Group g of 4 rows: [8] int32, lanes 0-3 = rows 0-3 over the chunk's columns 0-15 / 32-47 / ...,
// lanes 4-7 the same rows over the other columns (summed later, together with the next group's).
TERN_TARGET_AVX2 inline __m256i rows4_group128(const uint8_t* const q[4], const int8_t* x, int64_t g) {
  const int8_t* xg = x + g * 128;
  const __m256i x0a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xg));
  const __m256i x1a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xg + 32));
  const __m256i x0b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xg + 64));
  const __m256i x1b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xg + 96));
  __m256i s[4];
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(q[r] + g * 64 + kPrefetchBytes), _MM_HINT_T0);
    s[r] = group128(q[r] + g * 64, x0a, x1a, x0b, x1b);
  }
  const __m256i t01 = _mm256_add_epi32(_mm256_unpacklo_epi32(s[0], s[1]), _mm256_unpackhi_epi32(s[0], s[1]));
  const __m256i t23 = _mm256_add_epi32(_mm256_unpacklo_epi32(s[2], s[3]), _mm256_unpackhi_epi32(s[2], s[3]));
  return _mm256_add_epi32(_mm256_unpacklo_epi64(t01, t23), _mm256_unpackhi_epi64(t01, t23));
}

// [8] = v[r][g] for r < 4 in lanes 0-3 and v[r][g + 1] in lanes 4-7 (two adjacent floats per row).
TERN_TARGET_AVX2 inline __m256 pairs4(const float* const v[4], int64_t g) {
  auto two = [&](int r) TERN_TARGET_AVX2 {
    return _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(v[r] + g)));
  };
  const __m128 a01 = _mm_unpacklo_ps(two(0), two(1));  // v0g v1g v0g1 v1g1
  const __m128 a23 = _mm_unpacklo_ps(two(2), two(3));
  return _mm256_set_m128(_mm_movehl_ps(a23, a01), _mm_movelh_ps(a01, a23));
}

// 4 rows r0 + s·stride, group 128: two groups per step share one cross-lane reduction, one
// vcvtdq2ps and the two FMAs of s · (xd · dot − z · xs) over 8 lanes.
TERN_TARGET_AVX2 void rows4_g128(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t i,
                                 int64_t r0, int64_t stride) {
  const int64_t k = w.cols, ng = k / 128;
  const uint8_t* q[4];
  const float* sc[4];
  const float* zp[4];
  for (int r = 0; r < 4; ++r) {
    const int64_t row = r0 + r * stride;
    q[r] = static_cast<const uint8_t*>(w.data) + row * (k / 2);
    sc[r] = w.scales + row * ng;
    zp[r] = w.zeros ? w.zeros + row * ng : nullptr;
    const int64_t ahead = std::min(row + 2, w.rows - 1) * ng;  // as int4_rows
    for (int64_t g = 0; g < ng; g += 16) {
      _mm_prefetch(reinterpret_cast<const char*>(w.scales + ahead + g), _MM_HINT_T0);
      if (w.zeros) _mm_prefetch(reinterpret_cast<const char*>(w.zeros + ahead + g), _MM_HINT_T0);
    }
  }
  const int8_t* x = a.xq_pairs + i * k;
  const float* xd = a.xd + i * ng;
  const float* xs = a.xs + i * ng;
  const __m256i dup = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
  __m256 acc = _mm256_setzero_ps();
  int64_t g = 0;
  for (; g + 2 <= ng; g += 2) {
    const __m256i u0 = rows4_group128(q, x, g), u1 = rows4_group128(q, x, g + 1);
    const __m256i d = _mm256_add_epi32(_mm256_permute2x128_si256(u0, u1, 0x20), _mm256_permute2x128_si256(u0, u1, 0x31));
    const __m256 dot = _mm256_cvtepi32_ps(d);
    const __m256 xdv = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(xd + g)))), dup);
    const __m256 xsv = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(xs + g)))), dup);
    const __m256 zv = zp[0] ? pairs4(zp, g) : _mm256_set1_ps(8.0f);
    const __m256 t = _mm256_fmsub_ps(dot, xdv, _mm256_mul_ps(zv, xsv));
    acc = _mm256_fmadd_ps(pairs4(sc, g), t, acc);
  }
  __m128 acc4 = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  if (g < ng) {  // an odd last group
    const __m256i u = rows4_group128(q, x, g);
    const __m128 dot = _mm_cvtepi32_ps(_mm_add_epi32(_mm256_castsi256_si128(u), _mm256_extracti128_si256(u, 1)));
    const __m128 sv = _mm_setr_ps(sc[0][g], sc[1][g], sc[2][g], sc[3][g]);
    const __m128 zv = zp[0] ? _mm_setr_ps(zp[0][g], zp[1][g], zp[2][g], zp[3][g]) : _mm_set1_ps(8.0f);
    const __m128 t = _mm_fmsub_ps(dot, _mm_set1_ps(xd[g]), _mm_mul_ps(zv, _mm_set1_ps(xs[g])));
    acc4 = _mm_fmadd_ps(sv, t, acc4);
  }
  float out[4];
  _mm_storeu_ps(out, acc4);
  for (int r = 0; r < 4; ++r) {
    const int64_t row = r0 + r * stride;
    y[i * w.rows + row] = out[r] + (bias ? bias[row] : 0.f);
  }
}

template <int GS>
TERN_TARGET_AVX2 void int4_m1(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t i,
                              int64_t n0, int64_t n1) {
  constexpr int R = 4;
  const int64_t part = (n1 - n0) / R;
  for (int64_t b = 0; b < part; ++b) {
    if constexpr (GS == 128) rows4_g128(a, w, y, bias, i, n0 + b, part);
    else int4_rows<R, GS>(a, w, y, bias, i, n0 + b, part);
  }
  for (int64_t r = n0 + R * part; r < n1; ++r) int4_rows<1, GS>(a, w, y, bias, i, r, 0);
}

}  // namespace

void quant_gemv_int4_m1_avx2(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t i,
                             int64_t n0, int64_t n1) {
  if (w.group == 128) return int4_m1<128>(a, w, y, bias, i, n0, n1);
  int4_m1<0>(a, w, y, bias, i, n0, n1);
}

}  // namespace tern::cpu
