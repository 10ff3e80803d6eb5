// Embedding front door: a row gather with dtype conversion; rows are split over threads only for
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
