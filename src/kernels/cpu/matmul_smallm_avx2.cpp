// AVX2 small-m GEMM for bf16 weights (m = 9..64: batched decode). Compute-bound, yet every weight
// byte should come from DRAM once and nothing should be packed: the GEMM's f32 panel packing costs
// as much as the FMAs at this m. So the kernel works in the GEMV's dot-product layout:
//   y[i, r] = sum_k x[i, k] * w[r, k], vectors along k, weight rows read in place.
// bf16 widening without shuffles: a 32-bit lane of a weight row holds (w[2q], w[2q+1]); `lane << 16`
// is w[2q] as f32 and `lane & 0xffff0000` is w[2q+1], both exact. That splits every 16 k of a row
// into its even and odd elements, so x is permuted once per call into the same order
// (xp: per 16 k, x[even 8] then x[odd 8]) and each 32-byte weight load feeds 2 * M FMAs.
// Register tile: M x rows (M <= 6) by 2 weight rows: 12 accumulators + 2 widened weights + 1 x +
// 1 mask = 16 ymm; per 16 k: 2 weight loads (+2 reloads), 2M x loads, 4M FMAs.
// Blocking: for each block of kNC weight rows x kKC inputs (128 KiB of bf16, stays in L2) every
// group of M x rows sweeps all row pairs; its x block [M, kKC] stays in L1. The group that first
// touches a block streams it from memory; the others re-read it from L2.
#include <algorithm>

#include "kernels/cpu/matmul_avx2_util.h"
#include "kernels/cpu/matmul_kernels.h"
#include "kernels/cpu/matmul_smallm_asm.h"

namespace tern::cpu {

namespace {

constexpr int kMaxM = 6;        // x rows per register tile
constexpr int64_t kKC = 1024;   // inputs per block: an [M, kKC] f32 x block is <= 24 KiB (L1)
constexpr int64_t kNC = 64;    // weight rows per block: kNC x kKC bf16 = 256 KiB (L2)

// Row stride of the permuted x: k rounded up to 16, plus 16 floats, so that rows are not 4 KiB
// apart (k = 2048 f32 rows would all land in the same L1 sets as each other and as the weight rows).
inline int64_t xp_stride(int64_t k) { return (k + 15) / 16 * 16 + 16; }

// xp[i, :] = x[i, :] with every full 16-block of k reordered to (even elements, odd elements);
// the tail past the last full block is copied as is. x: [m, k], xp: [m, xp_stride(k)].
TERN_TARGET_AVX2 void permute_x(const float* x, int64_t m, int64_t k, float* xp) {
  const __m256i even_odd = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
  const int64_t k16 = k / 16 * 16;
  for (int64_t i = 0; i < m; ++i) {
    const float* xi = x + i * k;
    float* d = xp + i * xp_stride(k);
    for (int64_t j = 0; j < k16; j += 16) {
      // a = x[j..j+7] as (e0 e1 e2 e3 | o0 o1 o2 o3) after the lane permute; same for b.
      const __m256 a = _mm256_permutevar8x32_ps(_mm256_loadu_ps(xi + j), even_odd);
      const __m256 b = _mm256_permutevar8x32_ps(_mm256_loadu_ps(xi + j + 8), even_odd);
      _mm256_storeu_ps(d + j, _mm256_permute2f128_ps(a, b, 0x20));      // evens
      _mm256_storeu_ps(d + j + 8, _mm256_permute2f128_ps(a, b, 0x31));  // odds
    }
    for (int64_t j = k16; j < k; ++j) d[j] = xi[j];
  }
}

// An x vector load the compiler can neither fold into the FMAs (2 loads instead of 1) nor hoist
// (volatile asm keeps program order, so the register tile does not spill).
TERN_TARGET_AVX2 inline __m256 load_x(const float* p) {
  __m256 v;
  asm volatile("vmovups %1, %0" : "=x"(v) : "m"(*reinterpret_cast<const __m256_u*>(p)));
  return v;
}

// Sums of the 8 lanes of a and b: {sum(a), sum(b)} in the low two floats.
TERN_TARGET_AVX2 inline __m128 hsum2(__m256 a, __m256 b) {
  const __m256 h = _mm256_hadd_ps(a, b);  // a01 b01 a23 b23 | a45 b45 a67 b67
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));  // a0145 a2367 b0145 b2367
  return _mm_hadd_ps(s, s);
}

// y[i, r0 + r] (+)= xp[i, kb:ke] · w[r0 + r, kb:ke] for i < M, r < R. kb..ke is a multiple of 16
// except at the end of k, whose tail (< 16 elements) is done in scalar from the unpermuted x.
// `first`: y starts from the bias (or 0) instead of its old value.
// pf: Prefetch (see smallm_avx2) this tile's share of the next weight block into L2.
struct Prefetch {
  const char* row = nullptr;  // first byte of this row pair's part of the next block; null: none
  int64_t row_bytes = 0;      // bytes of one row in the next block
  int64_t row_stride = 0;     // bytes between the pair's two rows
  int rows = 0;               // 1 or 2
  int part = 0, parts = 1;    // this tile prefetches every parts-th line, starting at `part`
};

template <int M, int R>
TERN_TARGET_AVX2 void tile(const MatmulArgs& a, const float* xp, int64_t i0, int64_t r0, int64_t kb, int64_t ke,
                           bool first, const Prefetch& pf) {
  const int64_t k = a.w.cols, n = a.w.rows;
  constexpr bool kAsm = R == 2 && M >= 4 && M <= 6;
  if (!kAsm)
  for (int r = 0; r < pf.rows; ++r)
    for (int64_t off = int64_t(pf.part) * 64; off < pf.row_bytes; off += int64_t(pf.parts) * 64)
      _mm_prefetch(pf.row + r * pf.row_stride + off, _MM_HINT_T1);
  const uint16_t* wr[R];
#pragma GCC unroll 2
  for (int r = 0; r < R; ++r) wr[r] = static_cast<const uint16_t*>(a.w.row(r0 + r));
  const int64_t ldp = xp_stride(k);
  const float* xr = xp + i0 * ldp;
  const __m256i hi_mask = _mm256_set1_epi32(int32_t(0xffff0000u));
  __m256 acc[M][R];
#pragma GCC unroll 6
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
    for (int r = 0; r < R; ++r) acc[i][r] = _mm256_setzero_ps();
  const int64_t kv = kb + (ke - kb) / 16 * 16;
  if constexpr (kAsm) {
    const float* xs[M];
    for (int i = 0; i < M; ++i) xs[i] = xr + i * ldp;
    alignas(32) float out[2 * M][8];
    // The loop prefetches one row of its share of the next block as it goes (group `part` takes row
    // `part` of the pair; groups past the pair's rows touch their own, L1-resident row).
    const char* target = pf.part < pf.rows ? pf.row + pf.part * pf.row_stride : reinterpret_cast<const char*>(wr[0] + kb);
    smallm_asm_loop<M>(xs, reinterpret_cast<const char*>(wr[0]), reinterpret_cast<const char*>(wr[1]),
                       target - kb * 2, kb * 2, kv * 2, &out[0][0]);
#pragma GCC unroll 6
    for (int i = 0; i < M; ++i) {
      acc[i][0] = _mm256_load_ps(out[2 * i]);
      acc[i][R - 1] = _mm256_load_ps(out[2 * i + 1]);
    }
  } else for (int64_t j = kb; j < kv; j += 16) {
    __m256 wv[R];
#pragma GCC unroll 2
    for (int r = 0; r < R; ++r)
      wv[r] = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr[r] + j)), 16));
#pragma GCC unroll 6
    for (int i = 0; i < M; ++i) {
      // A register, not a memory operand of both FMAs: that would be 2 loads per x vector, and
      // loads, not FMAs, would set the pace.
      const __m256 xv = load_x(xr + i * ldp + j);
#pragma GCC unroll 2
      for (int r = 0; r < R; ++r) acc[i][r] = _mm256_fmadd_ps(xv, wv[r], acc[i][r]);
    }
#pragma GCC unroll 2
    for (int r = 0; r < R; ++r)
      wv[r] = _mm256_castsi256_ps(
          _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr[r] + j)), hi_mask));
#pragma GCC unroll 6
    for (int i = 0; i < M; ++i) {
      const __m256 xv = load_x(xr + i * ldp + j + 8);
#pragma GCC unroll 2
      for (int r = 0; r < R; ++r) acc[i][r] = _mm256_fmadd_ps(xv, wv[r], acc[i][r]);
    }
  }
  if (R == 2 && kv == ke) {  // no k tail: both sums of a row of x go to y as one 8-byte pair
    const __m128 b = first && a.bias ? _mm_loadl_pi(_mm_setzero_ps(), reinterpret_cast<const __m64*>(a.bias + r0))
                                     : _mm_setzero_ps();
#pragma GCC unroll 6
    for (int i = 0; i < M; ++i) {
      __m64* yp = reinterpret_cast<__m64*>(a.y + (i0 + i) * n + r0);
      const __m128 old = first ? b : _mm_loadl_pi(_mm_setzero_ps(), yp);
      _mm_storel_pi(yp, _mm_add_ps(old, hsum2(acc[i][0], acc[i][R - 1])));
    }
    return;
  }
  alignas(16) float s[M][4];
#pragma GCC unroll 6
  for (int i = 0; i < M; ++i) _mm_store_ps(s[i], hsum2(acc[i][0], acc[i][R - 1]));
  for (int i = 0; i < M; ++i) {
    float* yi = a.y + (i0 + i) * n + r0;
    const float* xi = a.x + (i0 + i) * k;
    for (int r = 0; r < R; ++r) {
      float v = s[i][r];
      for (int64_t t = kv; t < ke; ++t) v += xi[t] * bf16_to_f32(wr[r][t]);
      yi[r] = first ? v + (a.bias ? a.bias[r0 + r] : 0.f) : yi[r] + v;
    }
  }
}

using TileFn = void (*)(const MatmulArgs&, const float*, int64_t, int64_t, int64_t, int64_t, bool, const Prefetch&);

template <int M>
constexpr TileFn kTiles[2] = {tile<M, 1>, tile<M, 2>};

constexpr const TileFn* kTileTable[kMaxM + 1] = {nullptr,   kTiles<1>, kTiles<2>, kTiles<3>,
                                                 kTiles<4>, kTiles<5>, kTiles<6>};

}  // namespace

void smallm_avx2(ExecContext& ctx, int thread, const MatmulArgs& a, int64_t n0, int64_t n1) {
  const int64_t m = a.m, k = a.w.cols;
  if (m <= 0 || n1 <= n0) return;
  if (k == 0) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t c = n0; c < n1; ++c) a.y[i * a.w.rows + c] = a.bias ? a.bias[c] : 0.f;
    return;
  }
  float* xp = static_cast<float*>(ctx.scratch(thread, size_t(m * xp_stride(k)) * sizeof(float)));
  permute_x(a.x, m, k, xp);
  // Split m into ceil(m / 6) groups as even as possible (16 -> 6 5 5, not 6 6 4), so that small
  // groups (few independent accumulator chains) are rare.
  const int64_t groups = (m + kMaxM - 1) / kMaxM;
  const int64_t esize = 2;
  for (int64_t nb = n0; nb < n1; nb += kNC) {
    const int64_t ne = std::min(n1, nb + kNC);
    for (int64_t kb = 0; kb < k; kb += kKC) {
      const int64_t ke = std::min(k, kb + kKC);
      // The next block in this loop order: (nb, kb + kKC), or (nb + kNC, 0). The first group's
      // pass over a block would wait on DRAM; prefetching the next block during every group's
      // pass (asm tiles: one row of the matching pair per group; others: every groups-th line)
      // spreads that traffic over passes that otherwise only read L2.
      const bool next_k = ke < k;
      const int64_t pnb = next_k ? nb : nb + kNC, pkb = next_k ? ke : 0;
      const int64_t pne = std::min(n1, pnb + kNC), pke = std::min(k, pkb + kKC);
      for (int64_t g = 0, i0 = 0; g < groups; ++g) {
        const int mg = int((m - i0 + groups - g - 1) / (groups - g));
        const TileFn* tiles = kTileTable[mg];
        Prefetch pf;
        pf.row_bytes = (pke - pkb) * esize;
        pf.row_stride = k * esize;
        pf.part = int(g);
        pf.parts = int(groups);
        int64_t r = nb;
        for (; r <= ne; r += 2) {
          const int64_t pr = pnb + (r - nb);  // the matching row pair of the next block
          pf.rows = pr < pne ? int(std::min<int64_t>(2, pne - pr)) : 0;
          pf.row = pf.rows ? static_cast<const char*>(a.w.row(pr)) + pkb * esize : nullptr;
          if (r + 2 <= ne) {
            tiles[1](a, xp, i0, r, kb, ke, kb == 0, pf);
          } else {
            if (r < ne) tiles[0](a, xp, i0, r, kb, ke, kb == 0, pf);
            break;
          }
        }
        i0 += mg;
      }
    }
  }
}

}  // namespace tern::cpu
