// Shared by the GGUF kernel tests: random inputs and GGUF weight matrices with their exact
// dequantized values (the reference every kernel is checked against).
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/weight_matrix.h"
#include "kernels/cpu/gguf_blocks.h"

namespace tern::test {

inline std::vector<float> randn(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

struct Quantized {
  std::vector<uint8_t> q;
  std::vector<float> deq;
  WeightMatrix w;
};

inline Quantized make(GgufType t, int64_t n, int64_t k, uint32_t seed) {
  Quantized r;
  const auto wf = randn(size_t(n * k), seed);
  const size_t rb = gguf_row_bytes(t, k);
  r.q.resize(rb * size_t(n));
  r.deq.resize(size_t(n * k));
  for (int64_t i = 0; i < n; ++i) {
    gguf_quantize_row(t, wf.data() + i * k, r.q.data() + size_t(i) * rb, k);
    gguf_dequantize_row(t, r.q.data() + size_t(i) * rb, r.deq.data() + i * k, k);
  }
  r.w.format = WeightFormat::Gguf, r.w.gguf_type = int(t), r.w.data = r.q.data();
  r.w.rows = n, r.w.cols = k, r.w.quant_bytes = r.q.size();
  return r;
}

// Blocks of random bytes (every code, every packed scale / min and negative Q6_K scales), with the f16
// super-scales replaced by small finite values: the whole code space, not just what the quantizer emits.
inline Quantized make_random_bytes(GgufType t, int64_t n, int64_t k, uint32_t seed) {
  Quantized r;
  const GgufTypeTraits& tr = gguf_traits(t);
  const size_t rb = gguf_row_bytes(t, k);
  r.q.resize(rb * size_t(n));
  std::mt19937 rng(seed);
  for (auto& b : r.q) b = uint8_t(rng());
  std::uniform_real_distribution<float> scale(-0.02f, 0.02f);
  for (size_t off = 0; off < r.q.size(); off += size_t(tr.block_bytes)) {
    const int at = t == GgufType::Q6_K ? 208 : 0;
    const uint16_t d = f32_to_f16(scale(rng)), dmin = f32_to_f16(scale(rng));
    std::memcpy(&r.q[off + size_t(at)], &d, 2);
    if (t == GgufType::Q4_K || t == GgufType::Q5_K) std::memcpy(&r.q[off + 2], &dmin, 2);
  }
  r.deq.resize(size_t(n * k));
  for (int64_t i = 0; i < n; ++i) gguf_dequantize_row(t, r.q.data() + size_t(i) * rb, r.deq.data() + i * k, k);
  r.w.format = WeightFormat::Gguf, r.w.gguf_type = int(t), r.w.data = r.q.data();
  r.w.rows = n, r.w.cols = k, r.w.quant_bytes = r.q.size();
  return r;
}

}  // namespace tern::test
