// Embedding front door: a row gather with dtype conversion (or int8 per-row dequantization); rows are split over threads only for
// prefill-sized batches (the gather is memory-bound and tiny for decode).
#include "ops/embedding.h"

#include <algorithm>
#include <cassert>

#include "kernels/cpu/gguf_kernels.h"
#include "kernels/cpu/pointwise_kernels.h"

namespace tern {

void embedding_lookup(ExecContext& ctx, const WeightMatrix& table, const int32_t* ids, int64_t m, float* out) {
  if (m <= 0 || table.cols <= 0) return;
  assert(table.data && ids && out);
  if (table.format == WeightFormat::Gguf) return cpu::gguf_embedding(table, ids, m, out);
  if (table.format == WeightFormat::Int8Channel) {
    // int8 per-row table (a quantized tied embedding / LM head): row = codes * the row's scale.
    // table.data: int8 [vocab, d], table.scales: [vocab].
    const auto* q = static_cast<const int8_t*>(table.data);
    for (int64_t i = 0; i < m; ++i) {
      const int8_t* row = q + int64_t(ids[i]) * table.cols;
      const float s = table.scales[ids[i]];
      float* o = out + i * table.cols;
      for (int64_t c = 0; c < table.cols; ++c) o[c] = float(row[c]) * s;
    }
    return;
  }
  const int64_t d = table.cols;
  auto kernel = ctx.cpu().avx2 ? cpu::embedding_avx2 : cpu::embedding_scalar;
  constexpr int64_t kMinElementsPerThread = 1 << 16;
  const int threads = int(std::clamp<int64_t>(m * d / kMinElementsPerThread, 1, std::min<int64_t>(ctx.threads(), m)));
  if (threads == 1) {
    kernel(table.data, table.dtype, d, ids, m, out);
    return;
  }
  ctx.pool().run([&](int t, int) {
    if (t >= threads) return;
    const int64_t b = m * t / threads, e = m * (t + 1) / threads;
    if (b < e) kernel(table.data, table.dtype, d, ids + b, e - b, out + b * d);
  });
}

}  // namespace tern
