// AVX2 2:4 int8 sparse GEMV (sparse_kernels.h): rows whose mask keeps exactly 2 of every 4 columns
// (checked per row, so any SparseBitmask matrix may come here; other rows go to the per-byte-table
// kernel). Instead of expanding the weights into their columns, it gathers x to the weights: in 2:4,
// group g (columns 4g..4g+3) keeps exactly two values, stored as bytes 2g, 2g+1 of the row's stream at a
// fixed offset, so after vpmovsxbw they are the int16 pair of int32 lane g, and vpmaddwd adds both
// products of the group in one lane as soon as that lane of x holds the group's two kept x values.
//
// Per 32 columns (16 kept bytes, 4 mask bytes) and row: x, int16 (sparse_x16.h), is stored per call in
// the 8-column chunk order 0, 2, 1, 3, so that one ymm load holds columns [0-7 | 16-23] (A) and the next
// [8-15 | 24-31] (B). 8 control bytes per mask byte select the kept x of its 8 columns (4 int16) within
// a 128-bit lane; the control [c(b0) c(b1) | c(b2) c(b3)] serves both: vpshufb(A) leaves chunk 0 / 2 in
// the low 8 bytes of each lane, vpshufb(B) chunk 1 / 3 in the high 8, vpblendd joins them into the
// kept x of columns 0-15 | 16-31 in stream order, and one vpmaddwd against the 16 widened weights
// gives 8 int32 partial sums. Int32 sums are converted once per 256-column x16 block (overflow: 8
// steps · 2 · 127 · 32767 < 2^31). Compared with the per-byte-table kernel (a table load, a vpshufb, a
// conversion and an FMA per 8 columns, plus a popcount chain on the value pointer), this is per 32
// columns 7 instructions to decode the control in registers (step_control), then per row of x 2 vpshufb
// + a blend + vpmaddwd + vpaddd; the value pointer advances by a constant.
#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <vector>

#include "kernels/cpu/matmul_avx2_util.h"
#include "kernels/cpu/sparse_kernels.h"
#include "kernels/cpu/sparse_x16.h"

#define TERN_TARGET_AVX2_SPARSE24 __attribute__((target("avx2,fma,f16c,popcnt")))

namespace tern::cpu {

namespace {

constexpr int64_t kStep = 32;  // columns per step
constexpr int64_t kPrefetchBytes = 512;
constexpr int64_t kMaskPrefetchBytes = 256;

// Whether the row's first `bytes` mask bytes keep exactly 2 columns of every 4.
TERN_TARGET_AVX2_SPARSE24 bool is_two_four(const uint8_t* mask, int64_t bytes) {
  // 0xFF for a nibble with two bits set.
  const __m256i two = _mm256_setr_epi8(0, 0, 0, -1, 0, -1, -1, 0, 0, -1, -1, 0, -1, 0, 0, 0,  //
                                       0, 0, 0, -1, 0, -1, -1, 0, 0, -1, -1, 0, -1, 0, 0, 0);
  const __m256i low = _mm256_set1_epi8(0x0f);
  __m256i ok = _mm256_set1_epi8(-1);
  int64_t b = 0;
  for (; b + 32 <= bytes; b += 32) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(mask + b));
    ok = _mm256_and_si256(ok, _mm256_shuffle_epi8(two, _mm256_and_si256(v, low)));
    ok = _mm256_and_si256(ok, _mm256_shuffle_epi8(two, _mm256_and_si256(_mm256_srli_epi16(v, 4), low)));
  }
  if (_mm256_movemask_epi8(ok) != -1) return false;
  for (; b < bytes; ++b) {
    if (std::popcount(unsigned(mask[b] & 0xf)) != 2 || std::popcount(unsigned(mask[b] >> 4)) != 2) return false;
  }
  return true;
}

// The kept-x control of one step, [c(b0) c(b1) | c(b2) c(b3)] for mask bytes b0..b3, where c(b) (8 bytes)
// selects the 4 kept int16 of b's 8 columns within a 128-bit lane: [2a, 2a+1, 2b, 2b+1] for the kept
// columns a < b of its low nibble, then the same + 8 for its high nibble. Decoded in registers (a
// 256-entry table of c(b) costs 4 loads + 3 blends + ~9 scalar instructions a step, 15% slower at
// kernel level): each control byte gets its mask byte (vpshufb of
// the broadcast mask word), its group's nibble (vpsrlvd by 0 / 4 per dword, & 0xF), and a 16-entry
// vpshufb table gives 2 × the position of the group's first kept column at n and of its second at
// n ^ 1 (the 2:4 nibbles 3, 5, 6, 9, 10, 12 and their ^ 1 are 12 distinct entries); + 8 for the
// chunk's second group, + 1 for a value's high byte.
struct DecodeConsts {
  __m256i spread, shift, low, flip, lut, off;
};

TERN_TARGET_AVX2_SPARSE24 inline DecodeConsts decode_consts() {
  alignas(32) int8_t spread[32], lut[32], flip[32], off[32];
  for (int e = 0; e < 32; ++e) {
    const int lane = e / 16, b = e % 16;
    spread[e] = int8_t(2 * lane + (b >= 8));
    flip[e] = int8_t(b % 4 >= 2);
    off[e] = int8_t(8 * (b / 4 % 2) + b % 2);
    lut[e] = 0;
  }
  for (int n : {3, 5, 6, 9, 10, 12}) {
    const int first = std::countr_zero(unsigned(n)), second = 31 - std::countl_zero(unsigned(n));
    lut[n] = lut[16 + n] = int8_t(2 * first);
    lut[n ^ 1] = lut[16 + (n ^ 1)] = int8_t(2 * second);
  }
  const auto* v = reinterpret_cast<const __m256i*>(spread);
  return {_mm256_load_si256(v), _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4), _mm256_set1_epi8(0x0f),
          _mm256_load_si256(reinterpret_cast<const __m256i*>(flip)), _mm256_load_si256(reinterpret_cast<const __m256i*>(lut)),
          _mm256_load_si256(reinterpret_cast<const __m256i*>(off))};
}

TERN_TARGET_AVX2_SPARSE24 inline __m256i step_control(const uint8_t* mask, const DecodeConsts& c) {
  uint32_t mw;
  std::memcpy(&mw, mask, 4);
  __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(int(mw)), c.spread);
  v = _mm256_xor_si256(_mm256_and_si256(_mm256_srlv_epi32(v, c.shift), c.low), c.flip);
  return _mm256_add_epi8(_mm256_shuffle_epi8(c.lut, v), c.off);
}

// x16 codes [m, k] in step order: per 32 columns, the 8-column chunks 0, 2, 1, 3 (columns past the
// last full step are not needed: the tail uses f32 x).
std::vector<int16_t> step_order(const SparseX16& xq, int64_t m, int64_t full) {
  std::vector<int16_t> xp(size_t(m * full));
  static constexpr int kChunk[4] = {0, 2, 1, 3};
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < full; j += kStep)
      for (int c = 0; c < 4; ++c)
        std::memcpy(&xp[size_t(i * full + j + 8 * c)], &xq.q[size_t(i * xq.k + j + 8 * kChunk[c])], 16);
  return xp;
}

// y[0:M, r] for the R rows r = r0 + s * stride, each checked 2:4 over its full steps.
template <int M, int R>
TERN_TARGET_AVX2_SPARSE24 void block24(const float* x, const int16_t* xp, const SparseX16& xq, const WeightMatrix& w,
                                       float* y, const float* bias, int64_t r0, int64_t stride) {
  const int64_t k = w.cols, n = w.rows, mstride = (k + 7) / 8, full = k / kStep * kStep;
  const int8_t* p[R];
  const uint8_t* mk[R];
  for (int r = 0; r < R; ++r) {
    const int64_t row = r0 + r * stride;
    p[r] = static_cast<const int8_t*>(w.data) + w.row_offsets[row];
    mk[r] = w.mask + row * mstride;
  }
  const DecodeConsts dc = decode_consts();
  __m256 facc[M][R];
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) facc[i][r] = _mm256_setzero_ps();
  for (int64_t j0 = 0; j0 < full; j0 += kSparseX16Block) {
    const int64_t j1 = std::min(full, j0 + kSparseX16Block);
    __m256i acc[M][R];
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[i][r] = _mm256_setzero_si256();
    for (int64_t j = j0; j < j1; j += kStep) {
      __m256i ctl[R], wv[R];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        if ((j & 127) == 0) _mm_prefetch(reinterpret_cast<const char*>(p[r]) + kPrefetchBytes, _MM_HINT_T0);
        // The mask stream (4 bytes a step) too, once per cache line.
        if ((j & 511) == 0) _mm_prefetch(reinterpret_cast<const char*>(mk[r] + (j >> 3)) + kMaskPrefetchBytes, _MM_HINT_T0);
        ctl[r] = step_control(mk[r] + (j >> 3), dc);
        wv[r] = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p[r])));
        p[r] += kStep / 2;
      }
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i) {
        const __m256i xa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp + i * full + j));
        const __m256i xb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp + i * full + j + 16));
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
          const __m256i kept =
              _mm256_blend_epi32(_mm256_shuffle_epi8(xa, ctl[r]), _mm256_shuffle_epi8(xb, ctl[r]), 0xCC);
          acc[i][r] = _mm256_add_epi32(acc[i][r], _mm256_madd_epi16(kept, wv[r]));
        }
      }
    }
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const __m256 d = _mm256_set1_ps(xq.d[size_t(i * xq.blocks + j0 / kSparseX16Block)]);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) facc[i][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[i][r]), d, facc[i][r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    const int64_t row = r0 + r * stride;
    float sums[M];
    for (int i = 0; i < M; ++i) sums[i] = avx2_hsum(facc[i][r]);
    sparse_i8_finish_row<M>(mk[r], p[r], x, k, full, sums, w.scales[row], bias ? bias[row] : 0.f, y, n, row);
  }
}

template <int M>
void rows24(const float* x, const int16_t* xp, const SparseX16& xq, const WeightMatrix& w, float* y,
            const float* bias, int64_t n0, int64_t n1) {
  // M·R int32 + M·R f32 accumulators + R controls + R weight vectors + 2 x vectors + 2 shuffle temporaries.
  constexpr int R = M == 1 ? 3 : M == 2 ? 2 : 1;
  const int64_t mstride = (w.cols + 7) / 8, full_bytes = w.cols / kStep * kStep / 8;
  const auto one = [&](int64_t row) {
    if (is_two_four(w.mask + row * mstride, full_bytes)) {
      block24<M, 1>(x, xp, xq, w, y, bias, row, 0);
    } else {
      sparse_gemv_bitmask_avx2(x, M, w, y, bias, row, row + 1);
    }
  };
  const int64_t part = (n1 - n0) / R;
  for (int64_t b = 0; b < part; ++b) {
    bool all = true;
    for (int r = 0; r < R && all; ++r) all = is_two_four(w.mask + (n0 + b + r * part) * mstride, full_bytes);
    if (all) {
      block24<M, R>(x, xp, xq, w, y, bias, n0 + b, part);
    } else {
      for (int r = 0; r < R; ++r) one(n0 + b + r * part);
    }
  }
  for (int64_t r = n0 + R * part; r < n1; ++r) one(r);
}

}  // namespace

void sparse24_gemv_i8_avx2(const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias, int64_t n0,
                           int64_t n1) {
  const int64_t full = w.cols / kStep * kStep;
  // An unstructured matrix goes straight to the bitmask kernel (with its multi-row blocking) after one
  // row's check; in a 2:4 matrix the rare other row falls back on its own (rows24).
  if (n0 < n1 && !is_two_four(w.mask + n0 * ((w.cols + 7) / 8), full / 8))
    return sparse_gemv_bitmask_avx2(x, m, w, y, bias, n0, n1);
  for (int64_t i0 = 0; i0 < m; i0 += 8) {
    const int64_t mi = std::min<int64_t>(8, m - i0);
    const float* xi = x + i0 * w.cols;
    float* yi = y + i0 * w.rows;
    const SparseX16 xq = sparse_x16_avx2(xi, mi, w.cols);
    const std::vector<int16_t> xp = step_order(xq, mi, full);
    switch (mi) {
      case 1: rows24<1>(xi, xp.data(), xq, w, yi, bias, n0, n1); break;
      case 2: rows24<2>(xi, xp.data(), xq, w, yi, bias, n0, n1); break;
      case 3: rows24<3>(xi, xp.data(), xq, w, yi, bias, n0, n1); break;
      case 4: rows24<4>(xi, xp.data(), xq, w, yi, bias, n0, n1); break;
      case 5: rows24<5>(xi, xp.data(), xq, w, yi, bias, n0, n1); break;
      case 6: rows24<6>(xi, xp.data(), xq, w, yi, bias, n0, n1); break;
      case 7: rows24<7>(xi, xp.data(), xq, w, yi, bias, n0, n1); break;
      default: rows24<8>(xi, xp.data(), xq, w, yi, bias, n0, n1); break;
    }
  }
}

}  // namespace tern::cpu
