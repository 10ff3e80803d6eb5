// DeepSeek's kv_b_proj as llama.cpp's converter stores it for its MLA graph: split per head into
//   attn_k_b [H, kv_lora, nope]  (the k part of each head, transposed: k_b[h][r][c] = kv_b[h·(nope+v) + c][r])
//   attn_v_b [H, v, kv_lora]     (the v part: v_b[h][j][c] = kv_b[h·(nope+v) + nope + j][c])
// from the Hugging Face kv_b_proj [H·(nope + v), kv_lora]. Loading merges them back (in f32: tern
// reads kv_b only to build its absorbed per-head f32 copies); exporting reads rows of the split views.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace tern {

struct MlaKvbDims {
  int64_t heads = 0, nope = 0, v = 0, kv_lora = 0;
};

// Element (row, col) of kv_b_proj [H·(nope + v), kv_lora] as f32.
using KvbElement = std::function<float(int64_t row, int64_t col)>;

// Row r of attn_k_b seen as [H·kv_lora, nope] (out: nope values) / of attn_v_b as [H·v, kv_lora].
void mla_k_b_row(const MlaKvbDims& d, const KvbElement& kv_b, int64_t r, float* out);
void mla_v_b_row(const MlaKvbDims& d, const KvbElement& kv_b, int64_t r, float* out);

// kv_b_proj [H·(nope + v), kv_lora] from k_b [H·kv_lora, nope] and v_b [H·v, kv_lora] (f32, row-major).
std::vector<float> mla_kv_b_merge(const MlaKvbDims& d, const float* k_b, const float* v_b);

}  // namespace tern
