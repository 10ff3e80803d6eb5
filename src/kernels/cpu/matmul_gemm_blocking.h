// The cache blocking shared by the f32-panel GEMMs (AVX2 6x16 tiles, AVX-512 8x32 tiles); only the
// register tile differs between them. No intrinsics here: the tiles carry the ISA, pack_panel (an
// AVX2 function, which the AVX-512 targets include) converts the stored weights.
//   for each block of NC output columns and KC inputs:
//     pack w[nb:nb+NC, kb:kb+KC] as f32 panels of NR columns (panel[p][NR], k-major, kept in L2);
//     for every MR rows of x and every panel: tiles[mr](x, panel) accumulates an mr x NR block of y.
#pragma once

#include <algorithm>

#include "kernels/cpu/matmul_avx2_util.h"
#include "kernels/cpu/matmul_kernels.h"

namespace tern::cpu {

// y[0:mr, 0:cols] (+)= x[0:mr, 0:kc] · panel; on the first k block y starts from the bias (or 0).
using GemmTileFn = void (*)(const float* x, int64_t ldx, const float* panel, int64_t kc, float* y, int64_t ldy,
                            int cols, const float* bias, bool first);

// tiles[mr] for mr = 1..MR.
template <DType D, int MR, int NR, int64_t KC, int64_t NC>
void gemm_blocked(ExecContext& ctx, int thread, const MatmulArgs& a, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                  const GemmTileFn* tiles) {
  const int64_t k = a.w.cols, n = a.w.rows;
  float* packed = static_cast<float*>(ctx.scratch(thread, size_t(KC * NC) * sizeof(float)));
  if (k == 0) {  // nothing to multiply: y is the bias (or 0)
    for (int64_t i = m0; i < m1; ++i)
      for (int64_t c = n0; c < n1; ++c) a.y[i * n + c] = a.bias ? a.bias[c] : 0.f;
    return;
  }
  for (int64_t nb = n0; nb < n1; nb += NC) {
    const int64_t nc = std::min(NC, n1 - nb);
    const int64_t panels = (nc + NR - 1) / NR;
    for (int64_t kb = 0; kb < k; kb += KC) {
      const int64_t kc = std::min(KC, k - kb);
      for (int64_t j = 0; j < panels; ++j)
        pack_panel<D, NR>(a.w, nb + j * NR, int(std::min<int64_t>(NR, nc - j * NR)), kb, kc, packed + j * kc * NR);
      for (int64_t i = m0; i < m1; i += MR) {
        const int mr = int(std::min<int64_t>(MR, m1 - i));
        for (int64_t j = 0; j < panels; ++j) {
          const int64_t c0 = nb + j * NR;
          tiles[mr](a.x + i * k + kb, k, packed + j * kc * NR, kc, a.y + i * n + c0, n,
                    int(std::min<int64_t>(NR, nc - j * NR)), a.bias ? a.bias + c0 : nullptr, kb == 0);
        }
      }
    }
  }
}

}  // namespace tern::cpu
