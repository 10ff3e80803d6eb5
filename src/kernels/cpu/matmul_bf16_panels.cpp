// Bf16Panels: packing (scalar reference + AVX512 transpose), scalar reference GEMV / GEMM and the
// AVX-512 GEMV for decode. The AVX512-BF16 GEMM shares its tile with the dense one
// (matmul_gemm_avx512bf16.cpp).
#include "kernels/cpu/matmul_bf16_panels.h"

#include <algorithm>
#include <cassert>

#include "core/dtype.h"
#include "kernels/cpu/matmul_avx512_util.h"
#include "kernels/cpu/matmul_bf16_pack.h"

namespace tern::cpu {

namespace {

// Element (r, j) of a Bf16Panels matrix as f32.
float panel_weight(const WeightMatrix& w, int64_t r, int64_t j) {
  const auto* d = static_cast<const uint32_t*>(w.data);
  const uint32_t word = d[(r / kBf16PanelRows) * bf16_panel_words(w.cols) + (j / 2) * kBf16PanelRows + r % kBf16PanelRows];
  return bf16_to_f32(uint16_t(j % 2 ? word >> 16 : word & 0xffffu));
}

// One 128-byte row q of a panel (rows 0-31's bf16 pair for inputs 2q, 2q + 1) widened to f32: lo* hold the
// even inputs' weights, hi* the odd inputs', *0 rows 0-15 and *1 rows 16-31. Both of its cache lines are
// prefetched `ahead` bytes on.
struct PanelRow {
  __m512 lo0, hi0, lo1, hi1;
};
TERN_TARGET_AVX512 inline PanelRow load_panel_row(const uint32_t* wq, int64_t ahead) {
  const __m512i hi_mask = _mm512_set1_epi32(int(0xffff0000u));
  _mm_prefetch(reinterpret_cast<const char*>(wq) + ahead, _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(wq) + ahead + 64, _MM_HINT_T0);
  const __m512i v0 = _mm512_load_si512(wq), v1 = _mm512_load_si512(wq + 16);
  return {_mm512_castsi512_ps(_mm512_slli_epi32(v0, 16)), _mm512_castsi512_ps(_mm512_and_si512(v0, hi_mask)),
          _mm512_castsi512_ps(_mm512_slli_epi32(v1, 16)), _mm512_castsi512_ps(_mm512_and_si512(v1, hi_mask))};
}

// Rows i < MR of x times the panel's `cols` columns: y[i][c] = Σ_q lo(w[q][c]) x[i][2q] + hi(w[q][c]) x[i][2q+1]
// (+ bias). The low and high halves accumulate apart (4 chains per row), summed at the end.
template <int MR>
TERN_TARGET_AVX512 void gemv_panel(const float* x, int64_t k, const uint32_t* panel, float* y, int64_t ldy, int cols,
                                   const float* bias) {
  __m512 acc[MR][4];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = _mm512_setzero_ps();
  const int64_t full = k / 2;
  for (int64_t q = 0; q < full; ++q) {
    const auto [lo0, hi0, lo1, hi1] = load_panel_row(panel + q * kBf16PanelRows, 1024);
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m512 xa = _mm512_set1_ps(x[i * k + 2 * q]), xb = _mm512_set1_ps(x[i * k + 2 * q + 1]);
      acc[i][0] = _mm512_fmadd_ps(lo0, xa, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(hi0, xb, acc[i][1]);
      acc[i][2] = _mm512_fmadd_ps(lo1, xa, acc[i][2]);
      acc[i][3] = _mm512_fmadd_ps(hi1, xb, acc[i][3]);
    }
  }
  if (k % 2) {  // the last pair holds one input (its high half is zero)
    const uint32_t* wq = panel + full * kBf16PanelRows;
    const __m512 lo0 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_load_si512(wq), 16));
    const __m512 lo1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_load_si512(wq + 16), 16));
    for (int i = 0; i < MR; ++i) {
      const __m512 xa = _mm512_set1_ps(x[i * k + 2 * full]);
      acc[i][0] = _mm512_fmadd_ps(lo0, xa, acc[i][0]);
      acc[i][2] = _mm512_fmadd_ps(lo1, xa, acc[i][2]);
    }
  }
  const __mmask16 m0 = cols >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1);
  const __mmask16 m1 = cols >= 32 ? __mmask16(0xFFFF) : cols > 16 ? __mmask16((1u << (cols - 16)) - 1) : 0;
  const __m512 b0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
  const __m512 b1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
  for (int i = 0; i < MR; ++i) {
    _mm512_mask_storeu_ps(y + i * ldy, m0, _mm512_add_ps(b0, _mm512_add_ps(acc[i][0], acc[i][1])));
    _mm512_mask_storeu_ps(y + i * ldy + 16, m1, _mm512_add_ps(b1, _mm512_add_ps(acc[i][2], acc[i][3])));
  }
}

using PanelGemvFn = void (*)(const float*, int64_t, const uint32_t*, float*, int64_t, int, const float*);
constexpr PanelGemvFn kPanelGemv[5] = {nullptr, gemv_panel<1>, gemv_panel<2>, gemv_panel<3>, gemv_panel<4>};

// Decode (MR = 1, 2 rows of x): S full panels from S far-apart parts of the thread's range at once, so
// S sequential streams are in flight (one stream reached ~10 GB/s of a core's ~17). Per panel and row
// two accumulators (columns 0-15, 16-31), the low and high halves chained into the same one.
template <int MR, int S>
TERN_TARGET_AVX512 void gemv_panels_streams(const float* x, int64_t k, const uint32_t* const* panel, float* const* y,
                                            int64_t ldy, const float* const* bias) {
  __m512 acc[S][MR][2];
#pragma GCC unroll 8
  for (int s = 0; s < S; ++s)
#pragma GCC unroll 2
    for (int i = 0; i < MR; ++i) acc[s][i][0] = acc[s][i][1] = _mm512_setzero_ps();
  const int64_t kq = (k + 1) / 2, full = k / 2;
  for (int64_t q = 0; q < kq; ++q) {
    __m512 xa[MR], xb[MR];
#pragma GCC unroll 2
    for (int i = 0; i < MR; ++i) {
      xa[i] = _mm512_set1_ps(x[i * k + 2 * q]);
      xb[i] = q < full ? _mm512_set1_ps(x[i * k + 2 * q + 1]) : _mm512_setzero_ps();
    }
#pragma GCC unroll 8
    for (int s = 0; s < S; ++s) {
      const auto [lo0, hi0, lo1, hi1] = load_panel_row(panel[s] + q * kBf16PanelRows, 2048);
#pragma GCC unroll 2
      for (int i = 0; i < MR; ++i) {
        acc[s][i][0] = _mm512_fmadd_ps(hi0, xb[i], _mm512_fmadd_ps(lo0, xa[i], acc[s][i][0]));
        acc[s][i][1] = _mm512_fmadd_ps(hi1, xb[i], _mm512_fmadd_ps(lo1, xa[i], acc[s][i][1]));
      }
    }
  }
#pragma GCC unroll 8
  for (int s = 0; s < S; ++s) {
    const __m512 b0 = bias[s] ? _mm512_loadu_ps(bias[s]) : _mm512_setzero_ps();
    const __m512 b1 = bias[s] ? _mm512_loadu_ps(bias[s] + 16) : _mm512_setzero_ps();
    for (int i = 0; i < MR; ++i) {
      _mm512_storeu_ps(y[s] + i * ldy, _mm512_add_ps(b0, acc[s][i][0]));
      _mm512_storeu_ps(y[s] + i * ldy + 16, _mm512_add_ps(b1, acc[s][i][1]));
    }
  }
}

// Full panels [p0, p0 + count) for rows 0..MR-1 of x in S streams of count / S panels each; returns
// how many panels it did (a multiple of S; the caller does the rest one by one).
template <int MR, int S>
int64_t gemv_streams(const MatmulArgs& a, int64_t p0, int64_t count) {
  const int64_t k = a.w.cols, n = a.w.rows, words = bf16_panel_words(k), per = count / S;
  const auto* data = static_cast<const uint32_t*>(a.w.data);
  for (int64_t t = 0; t < per; ++t) {
    const uint32_t* panel[S];
    float* y[S];
    const float* bias[S];
    for (int s = 0; s < S; ++s) {
      const int64_t p = p0 + s * per + t;
      panel[s] = data + p * words;
      y[s] = a.y + p * kBf16PanelRows;
      bias[s] = a.bias ? a.bias + p * kBf16PanelRows : nullptr;
    }
    gemv_panels_streams<MR, S>(a.x, k, panel, y, n, bias);
  }
  return per * S;
}

}  // namespace

void pack_bf16_panels_scalar(const WeightMatrix& w, int64_t p0, int64_t p1, uint32_t* dst) {
  const int64_t k = w.cols, kq = (k + 1) / 2, words = bf16_panel_words(k);
  for (int64_t p = p0; p < p1; ++p) {
    uint32_t* d = dst + p * words;
    for (int64_t q = 0; q < kq; ++q) {
      for (int64_t c = 0; c < kBf16PanelRows; ++c) {
        const int64_t r = p * kBf16PanelRows + c;
        uint16_t lo = 0, hi = 0;
        if (r < w.rows) {
          const auto* row = static_cast<const uint16_t*>(w.row(r));
          lo = row[2 * q];
          if (2 * q + 1 < k) hi = row[2 * q + 1];
        }
        d[q * kBf16PanelRows + c] = uint32_t(lo) | (uint32_t(hi) << 16);
      }
    }
  }
}

TERN_TARGET_AVX512BF16 void pack_bf16_panels_avx512bf16(const WeightMatrix& w, int64_t p0, int64_t p1, uint32_t* dst) {
  const int64_t k = w.cols, kq = (k + 1) / 2, words = bf16_panel_words(k);
  for (int64_t p = p0; p < p1; ++p) {
    const int cols = int(std::min<int64_t>(kBf16PanelRows, w.rows - p * kBf16PanelRows));
    pack_b_pairs(w, p * kBf16PanelRows, cols, 0, k, kq, dst + p * words);
  }
}

namespace {

void panels_scalar(const MatmulArgs& a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t k = a.w.cols, n = a.w.rows;
  for (int64_t i = m0; i < m1; ++i) {
    for (int64_t r = n0; r < n1; ++r) {
      float s = 0.f;
      for (int64_t j = 0; j < k; ++j) s += a.x[i * k + j] * panel_weight(a.w, r, j);
      a.y[i * n + r] = (a.bias ? a.bias[r] : 0.f) + s;
    }
  }
}

}  // namespace

void gemv_bf16_panels_scalar(const MatmulArgs& a, int64_t n0, int64_t n1) { panels_scalar(a, 0, a.m, n0, n1); }

void gemm_bf16_panels_scalar(ExecContext&, int, const MatmulArgs& a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  panels_scalar(a, m0, m1, n0, n1);
}

void gemv_bf16_panels_avx512(const MatmulArgs& a, int64_t n0, int64_t n1) {
  assert(n0 % kBf16PanelRows == 0);
  const int64_t k = a.w.cols, n = a.w.rows, words = bf16_panel_words(k);
  const auto* data = static_cast<const uint32_t*>(a.w.data);
  // Decode: full panels in several streams; what is left (a partial last panel, count % S) below.
  const int64_t full_panels = (std::min(n1, n) / kBf16PanelRows) - n0 / kBf16PanelRows;
  if (a.m == 1) n0 += kBf16PanelRows * gemv_streams<1, 4>(a, n0 / kBf16PanelRows, full_panels);
  else if (a.m == 2) n0 += kBf16PanelRows * gemv_streams<2, 2>(a, n0 / kBf16PanelRows, full_panels);
  for (int64_t c0 = n0; c0 < n1; c0 += kBf16PanelRows) {
    const int cols = int(std::min<int64_t>(kBf16PanelRows, n1 - c0));
    const uint32_t* panel = data + (c0 / kBf16PanelRows) * words;
    for (int64_t i = 0; i < a.m; i += 4) {  // rows 5..8: a second pass over the panel, from L2
      const int mr = int(std::min<int64_t>(4, a.m - i));
      kPanelGemv[mr](a.x + i * k, k, panel, a.y + i * n + c0, n, cols, a.bias ? a.bias + c0 : nullptr);
    }
  }
}

}  // namespace tern::cpu
