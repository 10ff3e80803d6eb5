// AVX-512 VBMI 2:4 int8 sparse GEMV (sparse_kernels.h): the decode kernel (m <= 8 per pass) for rows
// whose mask keeps exactly 2 of every 4 columns. Like the AVX2 2:4 kernel (sparse24_avx2.cpp) it gathers
// x to the kept weights instead of expanding the weights into their columns: in 2:4, group g (columns
// 4g..4g+3) keeps exactly two values, bytes 2g and 2g+1 of the row's stream at a fixed offset, so after
// vpmovsxbw they are the int16 pair that vpdpwssd multiplies into int32 lane g, and x needs only to be
// gathered to those two words. The expanding kernel (sparse_gemv_bitmask_avx512) widens every column,
// kept or not: per 64 columns a vpexpandb, two vpmovsxbw and two vpdpwssd over 64 products of which 32
// are zeros, with a popcount chain on the value pointer. Here per 128 columns (64 stored bytes + 16 mask
// bytes) and weight row:
//   - positions of the 64 kept weights from the mask, in registers, 6 instructions: a 16-byte broadcast
//     load of the mask; vpmultishiftqb brings each group's nibble to its two output bytes; vpternlogd
//     keeps the nibble and adds 16 for the second of the pair; vpermb looks up the kept column in the
//     group (a 32-entry table: 6 valid nibbles, first and second; any other nibble gives 0x80); vpaddb
//     adds 4g. The output byte order is chosen so that vpunpcklbw / vpunpckhbw of the indices with
//     themselves are the word indices of the two 64-column halves (vpermt2w reads only their low 6 bits).
//   - two vpmovsxbw of the 64 stored bytes (a fixed 64-byte advance, no popcount);
//   and per row of x: two vpermt2w (the kept x of each half out of its 64 int16 columns, two zmm) and
//   two vpdpwssd. For m = 1 that is 14 vector instructions per 80 bytes read (with the OR of the 2:4
//   check and the per-block conversion) against the dense W8A16 kernel's 12 per 128 (vpmovsxbw +
//   vpdpwssd per 32 columns, a conversion and an FMA per 64): still more per byte than dense, whose
//   instructions leave it memory-bound with room to spare, but with no popcount chain and no
//   vpexpandb (slower than a permute on Zen 5) the kernel runs at ~25 GB/s of its bytes from L2 on one
//   Zen 5 core (the expanding kernel: ~19), about what one core streams from DRAM. x is int16 per 256
//   columns (sparse_x16.h), as in the expanding kernel, so the result is the same to the int32 sum.
// Rows: R weight rows from R far-apart parts of the range per pass, sharing the x loads: 3 at m = 1
// (measured against 2 and 4 on the 7 linears of a 1B layer), 2 up to m = 4, then 1.
// 2:4 is checked as the kernel goes: each row's indices are OR-ed together, and a row with a nibble that
// does not keep exactly two columns (its 0x80 survives the +4g) is computed again by the bitmask kernel.
// Before reading a row's values at the fixed advance, the row must have that many values in the buffer
// (row_offsets[row] + full / 2 <= nnz), so a non-2:4 row is never read past the end. Columns past the
// last multiple of 128 go through a scalar tail on f32 x.
#include <algorithm>
#include <bit>
#include <cstring>

#include "kernels/cpu/sparse_kernels.h"
#include "kernels/cpu/sparse_x16.h"

// GCC 12's AVX-512 intrinsics start from an "undefined" vector that -Wmaybe-uninitialized reports
// once inlined (see matmul_avx512_util.h); the code is fine.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#define TERN_TARGET_AVX512_SPARSE24 \
  __attribute__((target("avx2,fma,f16c,popcnt,avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,avx512vnni")))

namespace tern::cpu {

namespace {

constexpr int64_t kStep = 128;  // columns per step: 64 stored bytes, 16 mask bytes
constexpr int64_t kPrefetchBytes = 512;
constexpr int64_t kMaskPrefetchBytes = 256;

// The index decode's constants. Output byte e (0..63) lies in 128-bit lane L = e / 16; its half of the
// step is h = (e % 16) / 8 and its word within the half w = 8L + e % 8, the w-th kept weight of the half:
// the first (w even) or second (w odd) of group g = w / 2. Its source qword under the 16-byte broadcast
// is qword e / 8 = mask qword h, where group g's nibble starts at bit 4g.
struct DecodeConsts {
  __m512i ctrl;    // vpmultishiftqb control: 4g
  __m512i second;  // 16 for the second of a pair (the table's upper half)
  __m512i lut;     // [16 · second + nibble] -> kept column within the group; 0x80 for a nibble not 2:4
  __m512i group;   // 4g
  __m512i low4;
};

TERN_TARGET_AVX512_SPARSE24 inline DecodeConsts decode_consts() {
  alignas(64) uint8_t ctrl[64], second[64], lut[64], group[64];
  for (int e = 0; e < 64; ++e) {
    const int w = 8 * (e / 16) + e % 8, g = w / 2;
    ctrl[e] = uint8_t(4 * g);
    group[e] = uint8_t(4 * g);
    second[e] = uint8_t(16 * (w % 2));
    lut[e] = 0x80;
  }
  for (unsigned n = 0; n < 16; ++n) {
    if (std::popcount(n) != 2) continue;
    lut[n] = uint8_t(std::countr_zero(n));
    lut[16 + n] = uint8_t(31 - std::countl_zero(n));
  }
  return {_mm512_load_si512(ctrl), _mm512_load_si512(second), _mm512_load_si512(lut), _mm512_load_si512(group),
          _mm512_set1_epi8(0x0f)};
}

// The 64 column indices of one step's kept weights (byte order above; bit 7 set where a nibble is not 2:4).
TERN_TARGET_AVX512_SPARSE24 inline __m512i step_indices(const uint8_t* mask, const DecodeConsts& c) {
  const __m512i mq = _mm512_broadcast_i64x2(_mm_loadu_si128(reinterpret_cast<const __m128i*>(mask)));
  const __m512i nib = _mm512_multishift_epi64_epi8(c.ctrl, mq);
  const __m512i sel = _mm512_ternarylogic_epi32(nib, c.low4, c.second, 0xEA);  // (nib & 0x0f) | second
  return _mm512_add_epi8(_mm512_permutexvar_epi8(sel, c.lut), c.group);
}

// Whether the row's first `bytes` mask bytes keep exactly 2 columns of every 4.
TERN_TARGET_AVX512_SPARSE24 bool is_two_four(const uint8_t* mask, int64_t bytes) {
  const DecodeConsts c = decode_consts();
  __m512i bad = _mm512_setzero_si512();
  int64_t b = 0;
  for (; b + 16 <= bytes; b += 16) bad = _mm512_or_si512(bad, step_indices(mask + b, c));
  if (_mm512_movepi8_mask(bad) != 0) return false;
  for (; b < bytes; ++b) {
    if (std::popcount(unsigned(mask[b] & 0xf)) != 2 || std::popcount(unsigned(mask[b] >> 4)) != 2) return false;
  }
  return true;
}

TERN_TARGET_AVX512_SPARSE24 inline float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

// y[0:M, r] for the R rows r = r0 + s * stride (R far-apart read streams). Returns false, having
// written nothing, if a row is not 2:4 over its full steps (or lacks the values to be).
template <int M, int R>
TERN_TARGET_AVX512_SPARSE24 bool block24(const float* x, const SparseX16& xq, const WeightMatrix& w, float* y,
                                         const float* bias, int64_t r0, int64_t stride) {
  const int64_t k = w.cols, n = w.rows, mstride = (k + 7) / 8, full = k / kStep * kStep;
  const int8_t* p[R];
  const uint8_t* mk[R];
  for (int r = 0; r < R; ++r) {
    const int64_t row = r0 + r * stride;
    if (w.row_offsets[row] + full / 2 > w.nnz) return false;
    p[r] = static_cast<const int8_t*>(w.data) + w.row_offsets[row];
    mk[r] = w.mask + row * mstride;
  }
  const DecodeConsts dc = decode_consts();
  __m512 facc[M][R];
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) facc[i][r] = _mm512_setzero_ps();
  __m512i bad = _mm512_setzero_si512();
  for (int64_t j0 = 0; j0 < full; j0 += kSparseX16Block) {
    const int64_t j1 = std::min(full, j0 + kSparseX16Block);
    __m512i acc[M][R];
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[i][r] = _mm512_setzero_si512();
    for (int64_t j = j0; j < j1; j += kStep) {
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        _mm_prefetch(reinterpret_cast<const char*>(p[r]) + kPrefetchBytes, _MM_HINT_T0);
        // The mask stream (16 bytes a step) too, once per cache line.
        if ((j & 511) == 0) _mm_prefetch(reinterpret_cast<const char*>(mk[r] + (j >> 3)) + kMaskPrefetchBytes, _MM_HINT_T0);
        const __m512i idx = step_indices(mk[r] + (j >> 3), dc);
        bad = _mm512_or_si512(bad, idx);
        const __m512i i0 = _mm512_unpacklo_epi8(idx, idx), i1 = _mm512_unpackhi_epi8(idx, idx);
        const __m512i w0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p[r])));
        const __m512i w1 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p[r] + 32)));
        p[r] += kStep / 2;
#pragma GCC unroll 8
        for (int i = 0; i < M; ++i) {
          const int16_t* xi = xq.q.data() + i * k + j;
          const __m512i g0 = _mm512_permutex2var_epi16(_mm512_loadu_si512(xi), i0, _mm512_loadu_si512(xi + 32));
          const __m512i g1 = _mm512_permutex2var_epi16(_mm512_loadu_si512(xi + 64), i1, _mm512_loadu_si512(xi + 96));
          acc[i][r] = _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(acc[i][r], w0, g0), w1, g1);
        }
      }
    }
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const __m512 d = _mm512_set1_ps(xq.d[size_t(i * xq.blocks + j0 / kSparseX16Block)]);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        facc[i][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i][r]), d, facc[i][r]);
      }
    }
  }
  if (_mm512_movepi8_mask(bad) != 0) return false;
  for (int r = 0; r < R; ++r) {
    const int64_t row = r0 + r * stride;
    float sums[M];
    for (int i = 0; i < M; ++i) sums[i] = hsum(facc[i][r]);
    sparse_i8_finish_row<M>(mk[r], p[r], x, k, full, sums, w.scales[row], bias ? bias[row] : 0.f, y, n, row);
  }
  return true;
}

template <int M>
void rows24(const float* x, const SparseX16& xq, const WeightMatrix& w, float* y, const float* bias, int64_t n0,
            int64_t n1) {
  // M·R int32 + M·R f32 accumulators, one row's indices and weights and 5 constants in 32 zmm; at
  // M = 1, 3 streams beat 2 and 4 (bench_sparse --threads 1: 1.40-1.50x of dense int8 against
  // 1.24-1.31x and 1.25-1.28x).
  constexpr int R = M == 1 ? 3 : M <= 4 ? 2 : 1;
  // A block with a row that is not 2:4: each of its rows through the bitmask kernel.
  const auto fallback = [&](int64_t r0, int count, int64_t stride) {
    for (int r = 0; r < count; ++r) sparse_gemv_bitmask_avx512(x, M, w, y, bias, r0 + r * stride, r0 + r * stride + 1);
  };
  const int64_t part = (n1 - n0) / R;
  for (int64_t b = 0; b < part; ++b) {
    if (!block24<M, R>(x, xq, w, y, bias, n0 + b, part)) fallback(n0 + b, R, part);
  }
  for (int64_t r = n0 + R * part; r < n1; ++r) {
    if (!block24<M, 1>(x, xq, w, y, bias, r, 0)) fallback(r, 1, 0);
  }
}

}  // namespace

void sparse24_gemv_i8_avx512(const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias,
                             int64_t n0, int64_t n1) {
  const int64_t full = w.cols / kStep * kStep;
  // An unstructured matrix (or one too narrow for a step) goes straight to the bitmask kernel after one
  // row's check; in a 2:4 matrix the rare other row falls back on its own (rows24).
  if (n0 < n1 && (full == 0 || !is_two_four(w.mask + n0 * ((w.cols + 7) / 8), full / 8)))
    return sparse_gemv_bitmask_avx512(x, m, w, y, bias, n0, n1);
  for (int64_t i0 = 0; i0 < m; i0 += 8) {
    const int64_t mi = std::min<int64_t>(8, m - i0);
    const float* xi = x + i0 * w.cols;
    float* yi = y + i0 * w.rows;
    const SparseX16 xq = sparse_x16_avx2(xi, mi, w.cols);
    switch (mi) {
      case 1: rows24<1>(xi, xq, w, yi, bias, n0, n1); break;
      case 2: rows24<2>(xi, xq, w, yi, bias, n0, n1); break;
      case 3: rows24<3>(xi, xq, w, yi, bias, n0, n1); break;
      case 4: rows24<4>(xi, xq, w, yi, bias, n0, n1); break;
      case 5: rows24<5>(xi, xq, w, yi, bias, n0, n1); break;
      case 6: rows24<6>(xi, xq, w, yi, bias, n0, n1); break;
      case 7: rows24<7>(xi, xq, w, yi, bias, n0, n1); break;
      default: rows24<8>(xi, xq, w, yi, bias, n0, n1); break;
    }
  }
}

}  // namespace tern::cpu
