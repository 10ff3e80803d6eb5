// Scalar reference of the sparse kernels (sparse_kernels.h): walks each row's mask bit by bit.
#include <cstring>

#include "kernels/cpu/sparse_kernels.h"

namespace tern::cpu {

namespace {

float value_at(const WeightMatrix& w, int64_t i) {
  if (w.dtype == DType::I8) return float(static_cast<const int8_t*>(w.data)[i]);
  return load_as_f32(w.data, w.dtype, size_t(i));
}

}  // namespace

void sparse_gemv_scalar(const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias, int64_t n0,
                        int64_t n1) {
  const int64_t k = w.cols, n = w.rows, stride = (k + 7) / 8;
  constexpr int kRows = 8;
  for (int64_t r = n0; r < n1; ++r) {
    const uint8_t* mask = w.mask + r * stride;
    const float s = w.scales ? w.scales[r] : 1.f;
    for (int64_t i0 = 0; i0 < m; i0 += kRows) {
      const int64_t mi = m - i0 < kRows ? m - i0 : kRows;
      float acc[kRows] = {};
      int64_t p = w.row_offsets[r];
      for (int64_t j = 0; j < k; ++j) {
        if (!(mask[j >> 3] >> (j & 7) & 1)) continue;
        const float v = value_at(w, p++);
        for (int64_t i = 0; i < mi; ++i) acc[i] += x[(i0 + i) * k + j] * v;
      }
      for (int64_t i = 0; i < mi; ++i) y[(i0 + i) * n + r] = acc[i] * s + (bias ? bias[r] : 0.f);
    }
  }
}

void sparse_expand_rows_scalar(const WeightMatrix& w, int64_t r0, int64_t rows, float* dst) {
  const int64_t k = w.cols, stride = (k + 7) / 8;
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* mask = w.mask + (r0 + r) * stride;
    const float s = w.scales ? w.scales[r0 + r] : 1.f;
    float* d = dst + r * k;
    std::memset(d, 0, size_t(k) * sizeof(float));
    int64_t p = w.row_offsets[r0 + r];
    for (int64_t j = 0; j < k; ++j) {
      if (mask[j >> 3] >> (j & 7) & 1) d[j] = value_at(w, p++) * s;
    }
  }
}

}  // namespace tern::cpu
