#include "model/bf16_weights.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/cpu_features.h"
#include "kernels/cpu/f16_to_bf16.h"

namespace tern {

Bf16Rounding round_f16_layers_to_bf16(TransformerWeights& w, WeightArena& arena, ThreadPool& pool,
                                      const std::function<void(const void*, size_t)>& release) {
  std::vector<WeightMatrix*> todo;
  for (DecoderLayerWeights& l : w.layers) {
    for (WeightMatrix* m : {&l.attn.q, &l.attn.k, &l.attn.v, &l.attn.o, &l.mlp.gate, &l.mlp.up, &l.mlp.down})
      if (m->data && m->dense() && m->dtype == DType::F16 && m->rows > 0 && m->cols > 0) todo.push_back(m);
  }
  const CpuFeatures cpu = CpuFeatures::detect();  // every variant gives the same bits
  Bf16Rounding r;
  for (WeightMatrix* m : todo) {
    const size_t count = size_t(m->rows) * size_t(m->cols);
    auto* dst = arena.allocate_array<uint16_t>(count);
    const auto* src = static_cast<const uint16_t*>(m->data);
    // Contiguous shares, 4 KiB-aligned so that threads fault in disjoint pages.
    const size_t share = ((count + size_t(pool.size()) - 1) / size_t(pool.size()) + 2047) & ~size_t(2047);
    pool.run([&](int t, int) {
      const size_t b = std::min(count, size_t(t) * share), e = std::min(count, b + share);
      if (b < e) cpu::f16_to_bf16(cpu, src + b, dst + b, e - b);
    });
    release(src, count * 2);
    m->data = dst;
    m->dtype = DType::BF16;
    ++r.matrices;
    r.bytes += count * 2;
  }
  return r;
}

}  // namespace tern
