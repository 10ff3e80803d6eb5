#include "model/bf16_weights.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/cpu_features.h"
#include "kernels/cpu/f16_to_bf16.h"
#include "kernels/cpu/matmul_bf16_panels.h"

namespace tern {

Bf16Packing pack_layers_for_bf16_dot(TransformerWeights& w, WeightArena& arena, ThreadPool& pool,
                                     const std::function<void(const void*, size_t)>& release) {
  std::vector<WeightMatrix*> todo;
  size_t total = 0;
  for (DecoderLayerWeights& l : w.layers) {
    for (WeightMatrix* m : {&l.attn.q, &l.attn.k, &l.attn.v, &l.attn.o, &l.mlp.gate, &l.mlp.up, &l.mlp.down}) {
      if (!m->data || !m->dense() || (m->dtype != DType::F16 && m->dtype != DType::BF16) || m->rows <= 0 ||
          m->cols <= 0)
        continue;
      todo.push_back(m);
      total += (cpu::bf16_panels_bytes(m->rows, m->cols) + 63) & ~size_t(63);
    }
  }
  Bf16Packing r;
  if (todo.empty()) return r;
  // One block for all. Not marked MADV_HUGEPAGE: on this VM zeroing fresh huge pages made the load
  // 1.5-4.5 s instead of ~1 s with no measurable prefill gain (docs/benchmarks.md).
  char* base = static_cast<char*>(arena.allocate(total));
  const CpuFeatures cpu = CpuFeatures::detect();  // every variant gives the same bits
  std::unique_ptr<uint16_t[]> rounded;             // an F16 matrix rounded to bf16, [rows, cols]
  size_t rounded_count = 0;
  for (WeightMatrix* m : todo) {
    const size_t count = size_t(m->rows) * size_t(m->cols);
    WeightMatrix src = *m;
    if (m->dtype == DType::F16) {
      if (rounded_count < count) rounded.reset(new uint16_t[count]), rounded_count = count;
      const auto* h = static_cast<const uint16_t*>(m->data);
      uint16_t* d = rounded.get();
      pool.parallel_for(int64_t(count), 2048,
                        [&](int64_t b, int64_t e) { cpu::f16_to_bf16(cpu, h + b, d + b, size_t(e - b)); });
      src.data = d;
      src.dtype = DType::BF16;
      ++r.from_f16;
    }
    auto* dst = reinterpret_cast<uint32_t*>(base);
    const size_t bytes = cpu::bf16_panels_bytes(m->rows, m->cols);
    base += (bytes + 63) & ~size_t(63);
    pool.parallel_for(cpu::bf16_panel_count(m->rows), 1, [&](int64_t b, int64_t e) {
      if (cpu.avx512_bf16) cpu::pack_bf16_panels_avx512bf16(src, b, e, dst);
      else cpu::pack_bf16_panels_scalar(src, b, e, dst);
    });
    release(m->data, count * 2);
    m->data = dst;
    m->dtype = DType::BF16;
    m->format = WeightFormat::Bf16Panels;
    m->quant_bytes = bytes;
    ++r.matrices;
    r.bytes += bytes;
  }
  return r;
}

}  // namespace tern
