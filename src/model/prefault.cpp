#include "model/prefault.h"

#include <sys/mman.h>
#include <unistd.h>

namespace tern {

void prefault_weights(const Model& model) {
  const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  auto populate = [page](const void* p, size_t bytes) {
    if (!p || bytes == 0) return;
    const uintptr_t begin = uintptr_t(p) & ~(page - 1), end = uintptr_t(p) + bytes;
#ifdef MADV_POPULATE_READ
    if (madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_READ) == 0) return;
#endif
    // An older kernel: touch one byte per page.
    volatile uint8_t sink = 0;
    for (uintptr_t a = begin; a < end; a += page) sink = sink + *reinterpret_cast<const uint8_t*>(a);
  };
  auto add = [&](const WeightMatrix& w) {
    switch (w.format) {
      case WeightFormat::Dense:
      case WeightFormat::Gguf:
      case WeightFormat::Bf16Panels: populate(w.data, w.bytes()); break;
      case WeightFormat::Int8Channel:
      case WeightFormat::Fp8E4M3: populate(w.data, size_t(w.rows) * size_t(w.cols)); break;
      case WeightFormat::Int4Group: populate(w.data, size_t(w.rows) * size_t(w.cols) / 2); break;
      default: return;  // sparse layouts: read through their masks
    }
    if (w.scales && !w.dense() && w.format != WeightFormat::Gguf) populate(w.scales, size_t(w.rows) * sizeof(float));
  };
  for (const auto& l : model.weights().layers) {
    if (l.moe || l.mla) continue;
    add(l.attn.q), add(l.attn.k), add(l.attn.v), add(l.attn.o);
    add(l.mlp.gate), add(l.mlp.up), add(l.mlp.down);
  }
  add(model.weights().lm_head);
}

}  // namespace tern
