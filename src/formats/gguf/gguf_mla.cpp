#include "formats/gguf/gguf_mla.h"

namespace tern {

void mla_k_b_row(const MlaKvbDims& d, const KvbElement& kv_b, int64_t r, float* out) {
  const int64_t h = r / d.kv_lora, col = r % d.kv_lora;
  for (int64_t c = 0; c < d.nope; ++c) out[c] = kv_b(h * (d.nope + d.v) + c, col);
}

void mla_v_b_row(const MlaKvbDims& d, const KvbElement& kv_b, int64_t r, float* out) {
  const int64_t h = r / d.v, j = r % d.v;
  for (int64_t c = 0; c < d.kv_lora; ++c) out[c] = kv_b(h * (d.nope + d.v) + d.nope + j, c);
}

std::vector<float> mla_kv_b_merge(const MlaKvbDims& d, const float* k_b, const float* v_b) {
  const int64_t per_head = d.nope + d.v;
  std::vector<float> kv(size_t(d.heads * per_head * d.kv_lora));
  for (int64_t h = 0; h < d.heads; ++h) {
    for (int64_t r = 0; r < d.kv_lora; ++r) {
      for (int64_t c = 0; c < d.nope; ++c) {
        kv[size_t((h * per_head + c) * d.kv_lora + r)] = k_b[size_t((h * d.kv_lora + r) * d.nope + c)];
      }
    }
    for (int64_t j = 0; j < d.v; ++j) {
      for (int64_t c = 0; c < d.kv_lora; ++c) {
        kv[size_t((h * per_head + d.nope + j) * d.kv_lora + c)] = v_b[size_t((h * d.v + j) * d.kv_lora + c)];
      }
    }
  }
  return kv;
}

}  // namespace tern
