// AMX-INT8 GEMM for W8A8 prefill: tdpbssd multiplies a 16x64 int8 tile of x by a 64x16 int8 tile of
// wᵀ into a 16x16 int32 tile. B tiles want the VNNI layout: tile row p holds, for each of 16
// weight rows n, the four inputs 4p..4p+3 (B[p][4n + t] = w[n, k0 + 4p + t]); a block of 16 weight
// rows is packed that way once and reused by every 16-row block of x. Edges are zero-padded (x rows
// to 16, inputs to 64, weight rows to 16), so one tile configuration serves the whole call.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/quant_kernels.h"

#define TERN_TARGET_AMX_INT8 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,amx-tile,amx-int8")))

namespace tern::cpu {

namespace {

struct alignas(64) Int8TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// packed: [kp / 4][16 rows × 4 bytes] for weight rows n0 .. n0 + 16 (missing rows and inputs are 0).
void pack_b_vnni(const WeightMatrix& w, int64_t n0, int64_t kp, int8_t* packed) {
  const int64_t k = w.cols;
  const int8_t* q = static_cast<const int8_t*>(w.data);
  std::memset(packed, 0, size_t(kp) * 16);
  for (int n = 0; n < 16 && n0 + n < w.rows; ++n)
    for (int64_t c = 0; c < k; ++c) packed[(c / 4) * 64 + n * 4 + (c % 4)] = q[(n0 + n) * k + c];
}

TERN_TARGET_AMX_INT8 void tile_block(const int8_t* a, const int8_t* b, int64_t kp, int32_t* c) {
  _tile_zero(0);
  for (int64_t kk = 0; kk < kp; kk += 64) {
    _tile_loadd(1, a + kk, kp);          // 16 rows of x, 64 inputs each
    _tile_loadd(2, b + kk * 16, 64);     // 16 VNNI rows covering the same 64 inputs
    _tile_dpbssd(0, 1, 2);
  }
  _tile_stored(0, c, 64);
}

}  // namespace

TERN_TARGET_AMX_INT8 void quant_w8a8_amx(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias,
                                         int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t k = w.cols, kp = (k + 63) / 64 * 64;
  Int8TileConfig cfg;
  for (int t = 0; t < 3; ++t) cfg.colsb[t] = 64, cfg.rows[t] = 16;
  std::vector<int8_t> bpack(size_t(kp) * 16), apack(size_t(kp) * 16);
  alignas(64) int32_t c[16 * 16];
  _tile_loadconfig(&cfg);
  for (int64_t nb = n0; nb < n1; nb += 16) {
    pack_b_vnni(w, nb, kp, bpack.data());
    const int cols = int(std::min<int64_t>(16, n1 - nb));
    for (int64_t mb = m0; mb < m1; mb += 16) {
      const int rows = int(std::min<int64_t>(16, m1 - mb));
      std::memset(apack.data(), 0, apack.size());
      for (int i = 0; i < rows; ++i) std::memcpy(apack.data() + i * kp, a.xq + (mb + i) * k, size_t(k));
      tile_block(apack.data(), bpack.data(), kp, c);
      for (int i = 0; i < rows; ++i)
        for (int j = 0; j < cols; ++j) {
          const int64_t r = nb + j;
          y[(mb + i) * w.rows + r] = float(c[i * 16 + j]) * (w.scales[r] * a.xd[mb + i]) + (bias ? bias[r] : 0.f);
        }
    }
  }
  _tile_release();
}

}  // namespace tern::cpu
