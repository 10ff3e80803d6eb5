// AVX2 matmul against GGUF blocks.
//   GEMV (m <= 8): for each weight row, each block is decoded once into an aligned stack buffer
//     (L1) and FMA'd against the m rows of x; m is a template parameter so the m accumulators live
//     in registers.
//   GEMM (prefill): for each 16 output columns and kKC inputs, the 16 weight rows are decoded block
//     by block into a k-major panel [kKC][16] in per-thread scratch (16 KiB), then a 6x16 register
//     tile (12 accumulators) sweeps all rows of x over it.
#include <algorithm>

#include "kernels/cpu/gguf_decode_avx2.h"
#include "kernels/cpu/gguf_kernels.h"

namespace tern::cpu {

namespace {

TERN_GGUF_AVX2 float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <int M>
TERN_GGUF_AVX2 void gemv_rows(const MatmulArgs& a, GgufBlockDecoder decode, int64_t n0, int64_t n1) {
  const GgufTypeTraits& tr = gguf_traits(GgufType(a.w.gguf_type));
  const int64_t k = a.w.cols, n = a.w.rows, nb = k / tr.block_elems;
  const int be = tr.block_elems;
  const size_t row_bytes = size_t(nb) * size_t(tr.block_bytes);
  alignas(32) float buf[256];
  for (int64_t r = n0; r < n1; ++r) {
    const auto* row = static_cast<const uint8_t*>(a.w.data) + size_t(r) * row_bytes;
    __m256 acc[M];
    for (int i = 0; i < M; ++i) acc[i] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      decode(row + b * tr.block_bytes, buf);
      const float* x = a.x + b * be;
      for (int e = 0; e < be; e += 8) {
        const __m256 w = _mm256_load_ps(buf + e);
#pragma GCC unroll 8
        for (int i = 0; i < M; ++i) acc[i] = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + i * k + e), acc[i]);
      }
    }
    for (int i = 0; i < M; ++i) a.y[i * n + r] = hsum(acc[i]) + (a.bias ? a.bias[r] : 0.f);
  }
}

constexpr int kMR = 6;
constexpr int kNR = int(kGgufPanelCols);
constexpr int64_t kKC = 256;  // a multiple of every block size; panel = 256 x 16 f32 = 16 KiB (L1)

// y[0:MR, 0:cols] (+)= x[0:MR, 0:kc] · panel[kc][16].
template <int MR>
TERN_GGUF_AVX2 void tile(const float* x, int64_t ldx, const float* panel, int64_t kc, float* y, int64_t ldy,
                         int cols, const float* bias, bool first) {
  __m256 acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_load_ps(panel + p * kNR), b1 = _mm256_load_ps(panel + p * kNR + 8);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m256 xv = _mm256_broadcast_ss(x + i * ldx + p);
      acc[i][0] = _mm256_fmadd_ps(xv, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(xv, b1, acc[i][1]);
    }
  }
  alignas(32) float out[MR][kNR];
  for (int i = 0; i < MR; ++i) {
    _mm256_store_ps(out[i], acc[i][0]);
    _mm256_store_ps(out[i] + 8, acc[i][1]);
  }
  for (int i = 0; i < MR; ++i) {
    float* yi = y + i * ldy;
    for (int c = 0; c < cols; ++c) yi[c] = (first ? (bias ? bias[c] : 0.f) : yi[c]) + out[i][c];
  }
}

using TileFn = void (*)(const float*, int64_t, const float*, int64_t, float*, int64_t, int, const float*, bool);
constexpr TileFn kTiles[kMR + 1] = {nullptr, tile<1>, tile<2>, tile<3>, tile<4>, tile<5>, tile<6>};

}  // namespace

GgufBlockDecoder gguf_decoder_avx2(GgufType t) {
  switch (t) {
    case GgufType::Q8_0: return decode_q8_0_avx2;
    case GgufType::Q4_0: return decode_q4_0_avx2;
    case GgufType::Q4_1: return decode_q4_1_avx2;
    case GgufType::Q4_K: return decode_q45_k_avx2<false>;
    case GgufType::Q5_K: return decode_q45_k_avx2<true>;
    case GgufType::Q6_K: return decode_q6_k_avx2;
    default: return gguf_decoder_scalar(t);
  }
}

void gguf_gemv_avx2(const MatmulArgs& a, int64_t n0, int64_t n1) {
  const GgufBlockDecoder d = gguf_decoder_avx2(GgufType(a.w.gguf_type));
  switch (a.m) {
    case 1: return gemv_rows<1>(a, d, n0, n1);
    case 2: return gemv_rows<2>(a, d, n0, n1);
    case 3: return gemv_rows<3>(a, d, n0, n1);
    case 4: return gemv_rows<4>(a, d, n0, n1);
    case 5: return gemv_rows<5>(a, d, n0, n1);
    case 6: return gemv_rows<6>(a, d, n0, n1);
    case 7: return gemv_rows<7>(a, d, n0, n1);
    default: return gemv_rows<8>(a, d, n0, n1);
  }
}

void gguf_gemm_avx2(ExecContext& ctx, int thread, const MatmulArgs& a, int64_t m0, int64_t m1, int64_t n0,
                    int64_t n1) {
  const GgufType t = GgufType(a.w.gguf_type);
  const GgufTypeTraits& tr = gguf_traits(t);
  const GgufBlockDecoder decode = gguf_decoder_avx2(t);
  const int64_t k = a.w.cols, n = a.w.rows;
  const size_t row_bytes = gguf_row_bytes(t, k);
  // slot 3: the dense kernels use slots 0-2, and a GGUF matmul never runs inside one of them.
  auto* panel = static_cast<float*>(ctx.scratch(thread, size_t(kKC * kNR) * sizeof(float), 3));
  alignas(32) float buf[256];
  for (int64_t c0 = n0; c0 < n1; c0 += kNR) {
    const int cols = int(std::min<int64_t>(kNR, n1 - c0));
    for (int64_t kb = 0; kb < k; kb += kKC) {
      const int64_t kc = std::min(kKC, k - kb);
      for (int c = 0; c < kNR; ++c) {
        if (c >= cols) {
          for (int64_t p = 0; p < kc; ++p) panel[p * kNR + c] = 0.f;
          continue;
        }
        const auto* row = static_cast<const uint8_t*>(a.w.data) + size_t(c0 + c) * row_bytes;
        for (int64_t e0 = 0; e0 < kc; e0 += tr.block_elems) {
          decode(row + (kb + e0) / tr.block_elems * tr.block_bytes, buf);
          for (int e = 0; e < tr.block_elems; ++e) panel[(e0 + e) * kNR + c] = buf[e];
        }
      }
      for (int64_t i = m0; i < m1; i += kMR) {
        const int mr = int(std::min<int64_t>(kMR, m1 - i));
        kTiles[mr](a.x + i * k + kb, k, panel, kc, a.y + i * n + c0, n, cols, a.bias ? a.bias + c0 : nullptr,
                   kb == 0);
      }
    }
  }
}

}  // namespace tern::cpu
