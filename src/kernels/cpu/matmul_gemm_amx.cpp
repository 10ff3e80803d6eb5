// AMX-BF16 GEMM for prefill with bf16 weights. One step multiplies a 32x32 block of y over 32 inputs:
//   tmm4, tmm5 = x rows 0-15 / 16-31 as bf16 pairs (16 rows x 16 pairs), tmm6, tmm7 = weight
//   columns 0-15 / 16-31 (16 pairs x 16 columns: the VNNI layout tdpbf16ps wants, which is exactly the
//   pair-interleaved panel of matmul_bf16_pack.h read with a 128-byte stride), tmm0-3 = the four
//   16x16 f32 quarters of the block.
// Edges are handled by zero padding (rows of x to 32, inputs to a multiple of 32, columns to 32), so
// the tile shape never changes and one ldtilecfg per call suffices. Other dtypes go to the AVX-512 GEMM.
#include <algorithm>
#include <cstring>

#include "kernels/cpu/matmul_bf16_pack.h"
#include "kernels/cpu/matmul_kernels.h"

#define TERN_TARGET_AMX \
  __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,amx-tile,amx-bf16")))

namespace tern::cpu {

namespace {

constexpr int kBlockRows = 32;  // rows of x per block (two A tiles)
constexpr int64_t kKC = 512;    // inputs per k block (multiple of 32)
constexpr int64_t kNC = 256;    // columns per packed block

// The 64-byte operand of ldtilecfg (palette 1).
struct alignas(64) TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

TERN_TARGET_AMX void configure_tiles() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {  // every tile: 16 rows x 64 bytes
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  _tile_loadconfig(&cfg);
}

TERN_TARGET_AMX void release_tiles() { _tile_release(); }

// out[32][32] = a[32 rows][kq pairs] · panel[kq][32]; kq is a multiple of 16.
TERN_TARGET_AMX void amx_block(const uint32_t* a, int64_t kq, const uint32_t* panel, float* out) {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  const int64_t a_stride = kq * 4;
  for (int64_t q = 0; q < kq; q += 16) {
    _tile_loadd(4, a + q, a_stride);
    _tile_loadd(5, a + 16 * kq + q, a_stride);
    _tile_loadd(6, panel + q * kPairPanel, kPairPanel * 4);
    _tile_loadd(7, panel + q * kPairPanel + 16, kPairPanel * 4);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, out, kPairPanel * 4);
  _tile_stored(1, out + 16, kPairPanel * 4);
  _tile_stored(2, out + 16 * kPairPanel, kPairPanel * 4);
  _tile_stored(3, out + 16 * kPairPanel + 16, kPairPanel * 4);
}

}  // namespace

void gemm_amx(ExecContext& ctx, int thread, const MatmulArgs& a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t k = a.w.cols, n = a.w.rows;
  if (a.w.dtype != DType::BF16 || k == 0) return gemm_avx512(ctx, thread, a, m0, m1, n0, n1);
  auto* packed_b = static_cast<uint32_t*>(ctx.scratch(thread, size_t(kKC / 2 * kNC) * 4, 0));
  auto* packed_a = static_cast<uint32_t*>(ctx.scratch(thread, size_t(kBlockRows * kKC / 2) * 4, 1));
  auto* out = static_cast<float*>(ctx.scratch(thread, size_t(kBlockRows * kPairPanel) * 4, 2));
  configure_tiles();
  for (int64_t nb = n0; nb < n1; nb += kNC) {
    const int64_t nc = std::min(kNC, n1 - nb);
    const int64_t panels = (nc + kPairPanel - 1) / kPairPanel;
    for (int64_t kb = 0; kb < k; kb += kKC) {
      const int64_t kc = std::min(kKC, k - kb);
      const int64_t kq = (kc + 31) / 32 * 16;  // pairs, padded to whole tiles
      for (int64_t j = 0; j < panels; ++j)
        pack_b_pairs(a.w, nb + j * kPairPanel, int(std::min<int64_t>(kPairPanel, nc - j * kPairPanel)), kb, kc, kq,
                     packed_b + j * kq * kPairPanel);
      for (int64_t i = m0; i < m1; i += kBlockRows) {
        const int rows = int(std::min<int64_t>(kBlockRows, m1 - i));
        pack_a_bf16(a.x + i * k, k, rows, kBlockRows, kb, kc, kq, packed_a);
        for (int64_t j = 0; j < panels; ++j) {
          const int64_t c0 = nb + j * kPairPanel;
          const int cols = int(std::min<int64_t>(kPairPanel, nc - j * kPairPanel));
          amx_block(packed_a, kq, packed_b + j * kq * kPairPanel, out);
          for (int r = 0; r < rows; ++r) {
            float* yr = a.y + (i + r) * n + c0;
            const float* o = out + r * kPairPanel;
            if (kb == 0) {
              for (int c = 0; c < cols; ++c) yr[c] = (a.bias ? a.bias[c0 + c] : 0.f) + o[c];
            } else {
              for (int c = 0; c < cols; ++c) yr[c] += o[c];
            }
          }
        }
      }
    }
  }
  release_tiles();
}

}  // namespace tern::cpu
