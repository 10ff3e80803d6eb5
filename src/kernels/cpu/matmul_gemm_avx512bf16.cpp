// AVX-512-BF16 GEMM for prefill with bf16 weights: vdpbf16ps multiplies pairs of bf16 and
// accumulates in f32, so the weights are used as stored (no widening) and x is rounded to bf16
// once per call. Register tile 8 rows x 32 columns (16 zmm accumulators):
//   pack all of x[m0:m1, 0:k] to bf16 pairs once, as [k block][8-row group][8][kKC/2] words (L2/L3:
//   512 rows x 2048 inputs = 2 MiB; rounding it inside the column loop instead re-read the f32 rows
//   once per kNC columns, 10% of a prefill);
//   for each block of kNC columns and kKC inputs: pack the B panels (matmul_bf16_pack.h, L2);
//   for every 8 rows: run every panel, the 8 x kKC/2 packed words of x staying in L1.
// Bf16Panels weights (packed at load, matmul_bf16_panels.h) skip the B packing: the tile reads them in place.
// Other weight dtypes go to the f32 AVX-512 GEMM.
#include <algorithm>
#include <cassert>

#include "kernels/cpu/matmul_bf16_pack.h"
#include "kernels/cpu/matmul_bf16_panels.h"
#include "kernels/cpu/matmul_kernels.h"

namespace tern::cpu {

namespace {

constexpr int kMR = 8;
constexpr int64_t kKC = 2048;  // inputs per block: a panel is 1024 pairs x 32 columns = 128 KiB
constexpr int64_t kNC = 64;  // columns per packed block: 256 KiB of L2

// y[0:MR, 0:cols] (+)= a[0:MR, 0:kq pairs] · panel; on the first k block y starts from the bias (or 0).
template <int MR>
TERN_TARGET_AVX512BF16 void bf16_tile(const uint32_t* a, int64_t kq, const uint32_t* panel, float* y, int64_t ldy,
                                      int cols, const float* bias, bool first) {
  __m512 acc[MR][2];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int64_t q = 0; q < kq; ++q) {
    const __m512i b0 = _mm512_load_si512(panel + q * kPairPanel);
    const __m512i b1 = _mm512_load_si512(panel + q * kPairPanel + 16);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512i av = _mm512_set1_epi32(int(a[i * kq + q]));
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], (__m512bh)av, (__m512bh)b0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], (__m512bh)av, (__m512bh)b1);
    }
  }
  // Columns past `cols` (a partial last panel) are masked off.
  const __mmask16 m0 = cols >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1);
  const __mmask16 m1 = cols >= 32 ? __mmask16(0xFFFF) : cols > 16 ? __mmask16((1u << (cols - 16)) - 1) : 0;
  __m512 base0 = _mm512_setzero_ps(), base1 = _mm512_setzero_ps();
  if (first && bias) base0 = _mm512_maskz_loadu_ps(m0, bias), base1 = _mm512_maskz_loadu_ps(m1, bias + 16);
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    float* yi = y + i * ldy;
    if (!first) base0 = _mm512_maskz_loadu_ps(m0, yi), base1 = _mm512_maskz_loadu_ps(m1, yi + 16);
    _mm512_mask_storeu_ps(yi, m0, _mm512_add_ps(base0, acc[i][0]));
    _mm512_mask_storeu_ps(yi + 16, m1, _mm512_add_ps(base1, acc[i][1]));
  }
}

using TileFn = void (*)(const uint32_t*, int64_t, const uint32_t*, float*, int64_t, int, const float*, bool);
constexpr TileFn kTiles[kMR + 1] = {nullptr,      bf16_tile<1>, bf16_tile<2>, bf16_tile<3>, bf16_tile<4>,
                                    bf16_tile<5>, bf16_tile<6>, bf16_tile<7>, bf16_tile<8>};

// kPanels: w is Bf16Panels (packed at load): the tile reads its panels in place, n0 a multiple of 32.
template <bool kPanels>
void gemm_bf16_dot(ExecContext& ctx, int thread, const MatmulArgs& a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t k = a.w.cols, n = a.w.rows;
  const int64_t k_blocks = (k + kKC - 1) / kKC, groups = (m1 - m0 + kMR - 1) / kMR;
  // x packed: group g of k block b at packed_a + (b * groups + g) * kGroupWords (a last partial block
  // or group uses the front of its slot).
  constexpr int64_t kGroupWords = kMR * kKC / 2;
  auto* packed_b = kPanels ? nullptr : static_cast<uint32_t*>(ctx.scratch(thread, size_t(kKC / 2 * kNC) * 4, 0));
  auto* packed_a = static_cast<uint32_t*>(ctx.scratch(thread, size_t(k_blocks * groups * kGroupWords) * 4, 1));
  for (int64_t b = 0; b < k_blocks; ++b) {
    const int64_t kb = b * kKC, kc = std::min(kKC, k - kb), kq = (kc + 1) / 2;
    for (int64_t g = 0; g < groups; ++g) {
      const int mr = int(std::min<int64_t>(kMR, m1 - m0 - g * kMR));
      pack_a_bf16(a.x + (m0 + g * kMR) * k, k, mr, mr, kb, kc, kq, packed_a + (b * groups + g) * kGroupWords);
    }
  }
  const int64_t panel_words = bf16_panel_words(k);
  for (int64_t nb = n0; nb < n1; nb += kNC) {
    const int64_t nc = std::min(kNC, n1 - nb);
    const int64_t panels = (nc + kPairPanel - 1) / kPairPanel;
    for (int64_t b = 0; b < k_blocks; ++b) {
      const int64_t kb = b * kKC, kc = std::min(kKC, k - kb), kq = (kc + 1) / 2;
      // Panel j of this block: [kq][32] words, consecutive panels panel_stride apart.
      const uint32_t* block_b;
      int64_t panel_stride;
      if constexpr (kPanels) {
        block_b = static_cast<const uint32_t*>(a.w.data) + (nb / kPairPanel) * panel_words + (kb / 2) * kPairPanel;
        panel_stride = panel_words;
      } else {
        for (int64_t j = 0; j < panels; ++j)
          pack_b_pairs(a.w, nb + j * kPairPanel, int(std::min<int64_t>(kPairPanel, nc - j * kPairPanel)), kb, kc, kq,
                       packed_b + j * kq * kPairPanel);
        block_b = packed_b;
        panel_stride = kq * kPairPanel;
      }
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t i = m0 + g * kMR;
        const int mr = int(std::min<int64_t>(kMR, m1 - i));
        const uint32_t* pa = packed_a + (b * groups + g) * kGroupWords;
        for (int64_t j = 0; j < panels; ++j) {
          const int64_t c0 = nb + j * kPairPanel;
          kTiles[mr](pa, kq, block_b + j * panel_stride, a.y + i * n + c0, n,
                     int(std::min<int64_t>(kPairPanel, nc - j * kPairPanel)), a.bias ? a.bias + c0 : nullptr, b == 0);
        }
      }
    }
  }
}

}  // namespace

void gemm_avx512bf16(ExecContext& ctx, int thread, const MatmulArgs& a, int64_t m0, int64_t m1, int64_t n0,
                     int64_t n1) {
  if (a.w.dtype != DType::BF16 || a.w.cols == 0) return gemm_avx512(ctx, thread, a, m0, m1, n0, n1);
  gemm_bf16_dot<false>(ctx, thread, a, m0, m1, n0, n1);
}

void gemm_bf16_panels_avx512bf16(ExecContext& ctx, int thread, const MatmulArgs& a, int64_t m0, int64_t m1,
                                 int64_t n0, int64_t n1) {
  assert(n0 % kPairPanel == 0 && a.w.format == WeightFormat::Bf16Panels);
  gemm_bf16_dot<true>(ctx, thread, a, m0, m1, n0, n1);
}

}  // namespace tern::cpu
