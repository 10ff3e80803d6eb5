// AVX-512 GEMV for bf16 weights at m = 2..8 rows of x (speculative verify steps, small decode batches;
// m = 1, plain decode, keeps matmul_gemv_avx512.cpp).
// From m = 4 the plain AVX-512 GEMV (matmul_gemv_avx512.cpp) is bound by its widening, not by the
// FMAs: every 16 weights take a vpmovzxwd (shuffle) + vpslld on the pipes the 512-bit FMA needs, so it
// ran at ~60% of the FMA peak. Here the widening is one cheap op per 16 weights and no shuffle:
//   a 32-bit lane q of a weight row holds (w[2q] low, w[2q+1] high); `lane << 16` is w[2q] as f32 and
//   `lane & 0xffff0000` is w[2q+1], both exact.
// So every 32 k of a row (one 64-byte load) are its 16 even and 16 odd elements, each feeding M FMAs,
// and x is permuted once per call into the same order (evenodd_permute_x_avx512: per 32 k, x[even 16]
// then x[odd 16], the last block zero-padded).
// Register tile: M rows of x by R weight rows (M*R accumulators, R widened weights, 1 x vector
// <= 32 zmm); the R rows come from R far-apart parts of the thread's range (R sequential streams, each
// prefetched ahead, see kPrefetchL2Bytes) as in the plain GEMV, which keeps m = 3, 4 near the memory
// bandwidth.
#include "kernels/cpu/matmul_avx512_util.h"
#include "kernels/cpu/matmul_kernels.h"

namespace tern::cpu {

namespace {

// How far ahead (bytes) each row stream is prefetched: into L2 well ahead, and from there into L1.
// A step here is M*R*2 FMAs per 64 bytes of each row, several times the plain GEMV's, so the plain
// GEMV's 512 bytes (T0 only) ahead is too little time ahead of the loads: with it the kernel streamed
// only ~13-17 GB/s from DRAM at one thread (bench_matmul --cpu-time, m = 4: 65 GFLOP/s); with these,
// ~25 GB/s (m = 4: ~98 GFLOP/s; m = 3..8 measured with T0 768..1536 and T1 2560..8192 alike).
constexpr int64_t kPrefetchL1Bytes = 1024, kPrefetchL2Bytes = 4096;

// x vector load kept as its own instruction in program order: a memory operand of R FMAs would be R
// loads, and a hoisted load would spill the accumulators.
TERN_TARGET_AVX512 inline __m512 load_x(const float* p) {
  __m512 v;
  asm volatile("vmovups %1, %0" : "=v"(v) : "m"(*reinterpret_cast<const __m512_u*>(p)));
  return v;
}

// Sums of 4 vectors' lanes: {sum(a), sum(b), sum(c), sum(d)}.
TERN_TARGET_AVX512 inline __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d) {
  const __m256 a8 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
  const __m256 b8 = _mm256_add_ps(_mm512_castps512_ps256(b), _mm512_extractf32x8_ps(b, 1));
  const __m256 c8 = _mm256_add_ps(_mm512_castps512_ps256(c), _mm512_extractf32x8_ps(c, 1));
  const __m256 d8 = _mm256_add_ps(_mm512_castps512_ps256(d), _mm512_extractf32x8_ps(d, 1));
  const __m256 ab = _mm256_hadd_ps(a8, b8), cd = _mm256_hadd_ps(c8, d8);  // a01 a23 b01 b23 | a45 a67 b45 b67
  const __m256 abcd = _mm256_hadd_ps(ab, cd);                             // a0-3 b0-3 c0-3 d0-3 | a4-7 ...
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// y[0:M, r] = x[0:M, :] · w[r, :]ᵀ (+ bias) for the R rows r = r0 + s * stride.
template <int M, int R>
TERN_TARGET_AVX512 void evenodd_block(const MatmulArgs& a, const float* xp, int64_t r0, int64_t stride) {
  const int64_t k = a.w.cols, n = a.w.rows, ldx = evenodd_xp_stride(k);
  const char* wr[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) wr[r] = static_cast<const char*>(a.w.row(r0 + r * stride));
  __m512 acc[M][R];
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[i][r] = _mm512_setzero_ps();
  // One step: 32 k = one 64-byte line of every row: R even vectors by M rows of x, then R odd ones.
  // (A masked word load could widen without the shift/and; measured the same, and this one never
  // reads outside the row.)
  const __m512i hi_half = _mm512_set1_epi32(int32_t(0xffff0000u));
  int64_t j = 0;
  for (; j + 32 <= k; j += 32) {
    __m512i wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      _mm_prefetch(wr[r] + 2 * j + kPrefetchL1Bytes, _MM_HINT_T0);
      _mm_prefetch(wr[r] + 2 * j + kPrefetchL2Bytes, _MM_HINT_T1);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wv[r] = _mm512_slli_epi32(_mm512_loadu_si512(wr[r] + 2 * j), 16);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const __m512 xv = load_x(xp + i * ldx + j);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[i][r] = _mm512_fmadd_ps(xv, _mm512_castsi512_ps(wv[r]), acc[i][r]);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wv[r] = _mm512_and_si512(_mm512_loadu_si512(wr[r] + 2 * j), hi_half);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const __m512 xv = load_x(xp + i * ldx + j + 16);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[i][r] = _mm512_fmadd_ps(xv, _mm512_castsi512_ps(wv[r]), acc[i][r]);
    }
  }
  // The last, partial step (k - j = 1..31 elements): the words past k load as zero, and so do
  // the matching elements of xp.
  if (j < k) {
    const __mmask32 valid = __mmask32((uint64_t(1) << (k - j)) - 1);
    __m512i wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wv[r] = _mm512_maskz_loadu_epi16(valid, wr[r] + 2 * j);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const __m512 xe = _mm512_loadu_ps(xp + i * ldx + j), xo = _mm512_loadu_ps(xp + i * ldx + j + 16);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        acc[i][r] = _mm512_fmadd_ps(xe, _mm512_castsi512_ps(_mm512_slli_epi32(wv[r], 16)), acc[i][r]);
        acc[i][r] = _mm512_fmadd_ps(xo, _mm512_castsi512_ps(_mm512_and_si512(wv[r], hi_half)), acc[i][r]);
      }
    }
  }
  // Lane sums four accumulators at a time (hsum4), the tile padded with zero vectors.
  constexpr int kSums = (M * R + 3) / 4 * 4;
  alignas(16) float sums[kSums];
  {
    __m512 flat[kSums];
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) flat[i * R + r] = acc[i][r];
#pragma GCC unroll 4
    for (int s = M * R; s < kSums; ++s) flat[s] = _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int s = 0; s < kSums; s += 4) _mm_store_ps(sums + s, hsum4(flat[s], flat[s + 1], flat[s + 2], flat[s + 3]));
  }
  for (int r = 0; r < R; ++r) {
    const int64_t row = r0 + r * stride;
    const float b = a.bias ? a.bias[row] : 0.f;
    for (int i = 0; i < M; ++i) a.y[i * n + row] = sums[i * R + r] + b;
  }
}

template <int M>
void evenodd_rows(const MatmulArgs& a, const float* xp, int64_t n0, int64_t n1) {
  // M*R accumulators + R weights + 1 x vector <= 32 zmm.
  constexpr int R = M <= 5 ? 4 : 3;
  // R equal, far-apart parts of [n0, n1), one sequential read stream each (see matmul_gemv_avx512.cpp).
  const int64_t part = (n1 - n0) / R;
  for (int64_t b = 0; b < part; ++b) evenodd_block<M, R>(a, xp, n0 + b, part);
  for (int64_t r = n0 + R * part; r < n1; ++r) evenodd_block<M, 1>(a, xp, r, 0);
}

TERN_TARGET_AVX512 void permute_x(const float* x, int64_t m, int64_t k, float* xp) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const int64_t ldx = evenodd_xp_stride(k);
  for (int64_t i = 0; i < m; ++i) {
    const float* xi = x + i * k;
    float* d = xp + i * ldx;
    for (int64_t j = 0; j < k; j += 32) {
      // Past k: zeros (the kernel's masked weight loads are zero there too).
      const int64_t t = k - j;
      const __mmask16 lo = t >= 16 ? __mmask16(0xffff) : __mmask16((1u << t) - 1);
      const __mmask16 hi = t >= 32 ? __mmask16(0xffff) : t <= 16 ? __mmask16(0) : __mmask16((1u << (t - 16)) - 1);
      const __m512 a = _mm512_maskz_loadu_ps(lo, xi + j), b = _mm512_maskz_loadu_ps(hi, xi + j + 16);
      _mm512_storeu_ps(d + j, _mm512_permutex2var_ps(a, even, b));
      _mm512_storeu_ps(d + j + 16, _mm512_permutex2var_ps(a, odd, b));
    }
  }
}

}  // namespace

void evenodd_permute_x_avx512(const float* x, int64_t m, int64_t k, float* xp) { permute_x(x, m, k, xp); }

void gemv_evenodd_avx512(const MatmulArgs& a, const float* xp, int64_t n0, int64_t n1) {
  if (n1 <= n0) return;
  switch (a.m) {
    case 1: return evenodd_rows<1>(a, xp, n0, n1);
    case 2: return evenodd_rows<2>(a, xp, n0, n1);
    case 3: return evenodd_rows<3>(a, xp, n0, n1);
    case 4: return evenodd_rows<4>(a, xp, n0, n1);
    case 5: return evenodd_rows<5>(a, xp, n0, n1);
    case 6: return evenodd_rows<6>(a, xp, n0, n1);
    case 7: return evenodd_rows<7>(a, xp, n0, n1);
    case 8: return evenodd_rows<8>(a, xp, n0, n1);
    default: break;
  }
  // Larger m is not this kernel's job; cover it anyway in chunks of 8 rows of x.
  const int64_t ldx = evenodd_xp_stride(a.w.cols);
  for (int64_t i0 = 0; i0 < a.m; i0 += 8) {
    MatmulArgs sub = a;
    sub.x = a.x + i0 * a.w.cols;
    sub.y = a.y + i0 * a.w.rows;
    sub.m = a.m - i0 < 8 ? a.m - i0 : 8;
    gemv_evenodd_avx512(sub, xp + i0 * ldx, n0, n1);
  }
}

}  // namespace tern::cpu
