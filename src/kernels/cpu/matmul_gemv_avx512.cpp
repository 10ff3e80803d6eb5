// AVX-512 GEMV for decode (m = 1..8); the same scheme as the AVX2 one (matmul_gemv_avx2.cpp) with
// 16-wide vectors and 32 registers, so more rows of w and x share each pass. Memory-bound: stream every weight byte
// exactly once at full bandwidth. Each weight row is read once for all m rows of x (x: [m, k]
// is tiny and stays in L1/L2); R rows taken from R far-apart parts of the thread's row range are
// processed together, giving M*R independent FMA chains and R sequential read streams, each
// software-prefetched a few lines ahead. Weights are widened in registers (bf16: shift, f16: vcvtph2ps).
#include "kernels/cpu/matmul_avx512_util.h"
#include "kernels/cpu/matmul_kernels.h"

namespace tern::cpu {

namespace {

// How far ahead (bytes) each row stream is prefetched: a few cache lines beyond the
// hardware prefetcher's usual reach into the same row. Only with several rows of x: at m = 1 the
// four streams run at the hardware prefetcher's pace, and the software prefetch only took slots from
// it (Zen 5, bf16 MoE decode against bracketing probes: 77-79% of 52-56 GB/s with it, 83-89% without;
// 92-96% / 96-97% at 33-35 GB/s; docs/benchmarks.md, 2026-12-08).
constexpr int64_t kPrefetchBytes = 512;

// y[0:M, r] = x[0:M, :] · w[r, :]ᵀ (+ bias) for the R rows r = r0 + s * stride. U vectors of k per
// step give M*R*U independent FMA chains.
template <DType D, int M, int R, int U>
TERN_TARGET_AVX512 void gemv_block(const MatmulArgs& a, int64_t r0, int64_t stride) {
  const int64_t k = a.w.cols, n = a.w.rows;
  constexpr int64_t esize = D == DType::F32 ? 4 : 2;
  const char* wr[R];
  for (int r = 0; r < R; ++r) wr[r] = static_cast<const char*>(a.w.row(r0 + r * stride));
  __m512 acc[U][M][R];
#pragma GCC unroll 8
  for (int u = 0; u < U; ++u)
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[u][i][r] = _mm512_setzero_ps();
  // Each step consumes one 64-byte line of every row (S vectors) and prefetches the line
  // kPrefetchBytes ahead; past a row's end that is the start of row + 1, this stream's next row.
  constexpr int S = int(64 / (16 * esize)) > 0 ? int(64 / (16 * esize)) : 1;
  int64_t j = 0;
  for (; j + 16 * S <= k; j += 16 * S) {
    const int64_t pf = j * esize + kPrefetchBytes;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
      if constexpr (M > 1) _mm_prefetch(wr[r] + pf, _MM_HINT_T0);
#pragma GCC unroll 8
    for (int s = 0; s < S; ++s) {
      const int u = s % U;
      __m512 wv[R];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) wv[r] = avx512_load16<D>(wr[r], j + 16 * s);
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i) {
        const __m512 xv = _mm512_loadu_ps(a.x + i * k + j + 16 * s);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) acc[u][i][r] = _mm512_fmadd_ps(xv, wv[r], acc[u][i][r]);
      }
    }
  }
  for (; j + 16 <= k; j += 16) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 wv = avx512_load16<D>(wr[r], j);
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i) acc[0][i][r] = _mm512_fmadd_ps(_mm512_loadu_ps(a.x + i * k + j), wv, acc[0][i][r]);
    }
  }
  alignas(32) float sums[M][R];
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      __m512 t = acc[0][i][r];
#pragma GCC unroll 8
      for (int u = 1; u < U; ++u) t = _mm512_add_ps(t, acc[u][i][r]);
      sums[i][r] = avx512_hsum(t);
    }
  for (int i = 0; i < M; ++i) {
    for (int r = 0; r < R; ++r) {
      float s = sums[i][r];
      for (int64_t t = j; t < k; ++t) s += a.x[i * k + t] * load_as_f32(wr[r], D, size_t(t));
      const int64_t row = r0 + r * stride;
      a.y[i * n + row] = s + (a.bias ? a.bias[row] : 0.f);
    }
  }
}

template <DType D, int M>
void gemv_rows(const MatmulArgs& a, int64_t n0, int64_t n1) {
  // Keep U*M*R accumulators + R weight vectors + 1 x vector within the 32 zmm registers.
  constexpr int R = M <= 4 ? 4 : M <= 6 ? 3 : 2;
  constexpr int U = M <= 2 ? 2 : 1;
  // The R rows of a block come from R equal, far-apart parts of [n0, n1): each part is one
  // sequential read stream (rows are contiguous), R streams in flight like the multi-stream read
  // that sets this machine's bandwidth ceiling; adjacent rows would be four streams 1 row apart.
  const int64_t part = (n1 - n0) / R;
  for (int64_t b = 0; b < part; ++b) gemv_block<D, M, R, U>(a, n0 + b, part);
  for (int64_t r = n0 + R * part; r < n1; ++r) gemv_block<D, M, 1, 1>(a, r, 0);
}

template <DType D>
void gemv_dtype(const MatmulArgs& a, int64_t n0, int64_t n1) {
  switch (a.m) {
    case 1: return gemv_rows<D, 1>(a, n0, n1);
    case 2: return gemv_rows<D, 2>(a, n0, n1);
    case 3: return gemv_rows<D, 3>(a, n0, n1);
    case 4: return gemv_rows<D, 4>(a, n0, n1);
    case 5: return gemv_rows<D, 5>(a, n0, n1);
    case 6: return gemv_rows<D, 6>(a, n0, n1);
    case 7: return gemv_rows<D, 7>(a, n0, n1);
    case 8: return gemv_rows<D, 8>(a, n0, n1);
    default: break;
  }
  // Larger m is the GEMM's job; cover it anyway in chunks of 8 rows of x.
  for (int64_t i0 = 0; i0 < a.m; i0 += 8) {
    MatmulArgs sub = a;
    sub.x = a.x + i0 * a.w.cols;
    sub.y = a.y + i0 * a.w.rows;
    sub.m = a.m - i0 < 8 ? a.m - i0 : 8;
    gemv_dtype<D>(sub, n0, n1);
  }
}

}  // namespace

void gemv_avx512(const MatmulArgs& a, int64_t n0, int64_t n1) {
  if (a.m <= 0) return;
  switch (a.w.dtype) {
    case DType::F32: return gemv_dtype<DType::F32>(a, n0, n1);
    case DType::F16: return gemv_dtype<DType::F16>(a, n0, n1);
    case DType::BF16: return gemv_dtype<DType::BF16>(a, n0, n1);
  }
}

}  // namespace tern::cpu
