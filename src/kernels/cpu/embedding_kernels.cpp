// Embedding row gather with conversion to f32: bf16 is a 16-bit shift, f16 uses F16C's exact
// conversion (same results as dtype.h's scalar f16_to_f32, subnormals included).
#include <cstring>

#include "kernels/cpu/pointwise_kernels.h"
#include "kernels/cpu/vec_math.h"

namespace tern::cpu {

void embedding_scalar(const void* table, DType dtype, int64_t d, const int32_t* ids, int64_t m, float* out) {
  const size_t row_bytes = size_t(d) * dtype_size(dtype);
  for (int64_t i = 0; i < m; ++i) {
    const void* row = static_cast<const char*>(table) + size_t(ids[i]) * row_bytes;
    float* y = out + i * d;
    if (dtype == DType::F32) {
      std::memcpy(y, row, row_bytes);
      continue;
    }
    for (int64_t j = 0; j < d; ++j) y[j] = load_as_f32(row, dtype, size_t(j));
  }
}

TERN_AVX2_TARGET void embedding_avx2(const void* table, DType dtype, int64_t d, const int32_t* ids, int64_t m,
                                     float* out) {
  if (dtype == DType::F32) return embedding_scalar(table, dtype, d, ids, m, out);
  const size_t row_bytes = size_t(d) * 2;
  const int64_t d8 = d & ~int64_t(7);
  for (int64_t i = 0; i < m; ++i) {
    const uint16_t* row = reinterpret_cast<const uint16_t*>(static_cast<const char*>(table) + size_t(ids[i]) * row_bytes);
    float* y = out + i * d;
    for (int64_t j = 0; j < d8; j += 8) {
      const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + j));
      const __m256 f = dtype == DType::BF16 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
                                            : _mm256_cvtph_ps(h);
      _mm256_storeu_ps(y + j, f);
    }
    for (int64_t j = d8; j < d; ++j) y[j] = load_as_f32(row, dtype, size_t(j));
  }
}

}  // namespace tern::cpu
