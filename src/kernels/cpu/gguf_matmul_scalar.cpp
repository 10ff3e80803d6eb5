// Scalar GGUF matmul: the portable fallback and the reference the AVX2 kernels are tested against.
// Each block is decoded once (reference decoder) and multiplied with every row of x.
#include <algorithm>
#include <vector>

#include "kernels/cpu/gguf_kernels.h"

namespace tern::cpu {

GgufBlockDecoder gguf_decoder_scalar(GgufType t) {
  switch (t) {
    case GgufType::Q8_0: return gguf_ref::dequant_q8_0;
    case GgufType::Q4_0: return gguf_ref::dequant_q4_0;
    case GgufType::Q4_1: return gguf_ref::dequant_q4_1;
    case GgufType::Q5_0: return gguf_ref::dequant_q5_0;
    case GgufType::Q5_1: return gguf_ref::dequant_q5_1;
    case GgufType::Q2_K: return gguf_ref::dequant_q2_k;
    case GgufType::Q3_K: return gguf_ref::dequant_q3_k;
    case GgufType::Q4_K: return gguf_ref::dequant_q4_k;
    case GgufType::Q5_K: return gguf_ref::dequant_q5_k;
    case GgufType::Q6_K: return gguf_ref::dequant_q6_k;
    case GgufType::Q8_K: return gguf_ref::dequant_q8_k;
    default: return nullptr;
  }
}

void gguf_gemv_scalar(const MatmulArgs& a, int64_t n0, int64_t n1) {
  const GgufType t = GgufType(a.w.gguf_type);
  const GgufTypeTraits& tr = gguf_traits(t);
  const GgufBlockDecoder decode = gguf_decoder_scalar(t);
  const int64_t k = a.w.cols, n = a.w.rows, nb = k / tr.block_elems;
  const size_t row_bytes = gguf_row_bytes(t, k);
  float buf[256];
  float acc[kGemvMaxRows];
  for (int64_t r = n0; r < n1; ++r) {
    const auto* row = static_cast<const uint8_t*>(a.w.data) + size_t(r) * row_bytes;
    std::fill(acc, acc + a.m, 0.f);
    for (int64_t b = 0; b < nb; ++b) {
      decode(row + b * tr.block_bytes, buf);
      for (int64_t i = 0; i < a.m; ++i) {
        const float* x = a.x + i * k + b * tr.block_elems;
        float s = 0.f;
        for (int e = 0; e < tr.block_elems; ++e) s += buf[e] * x[e];
        acc[i] += s;
      }
    }
    for (int64_t i = 0; i < a.m; ++i) a.y[i * n + r] = acc[i] + (a.bias ? a.bias[r] : 0.f);
  }
}

void gguf_gemm_scalar(ExecContext&, int, const MatmulArgs& a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t k = a.w.cols, n = a.w.rows;
  for (int64_t i = m0; i < m1; i += kGemvMaxRows) {
    MatmulArgs part = a;
    part.x = a.x + i * k;
    part.y = a.y + i * n;
    part.m = std::min(kGemvMaxRows, m1 - i);
    gguf_gemv_scalar(part, n0, n1);
  }
}

void gguf_embedding(const WeightMatrix& table, const int32_t* ids, int64_t m, float* out) {
  const GgufType t = GgufType(table.gguf_type);
  const size_t row_bytes = gguf_row_bytes(t, table.cols);
  for (int64_t i = 0; i < m; ++i) {
    gguf_dequantize_row(t, static_cast<const uint8_t*>(table.data) + size_t(ids[i]) * row_bytes,
                        out + i * table.cols, table.cols);
  }
}

}  // namespace tern::cpu
