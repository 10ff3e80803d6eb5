// CPU flash-attention building blocks. The op (src/ops/attention.cpp) cuts the problem into work
// items (one kv head × a range of queries) and runs attention_block on each; attention_block walks
// the visible keys in tiles of kKeyTile and calls three per-ISA primitives per tile:
//   scores  S = scale · Q·Kᵀ          Q: [rows, D] packed, K tile: nk rows of stride k_stride
//   softmax online update: softcap, mask to each row's visible range [lo, hi), running max m,
//           running sum l, P = exp(S - m) written over S (0 outside the range), alpha = exp(m_old - m)
//   pv      O = O·alpha + P·V          O: [rows, D], V tile like K
// The group of G = n_heads / n_kv_heads query heads that share one kv head is processed together
// (rows = queries × G), so each K/V row is read once per group per query range.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tern::cpu {

constexpr int kKeyTile = 64;

struct AttnParams {
  int n_heads = 0, n_kv_heads = 0, head_dim = 0;
  float scale = 0.f;
  int sliding_window = 0;  // 0 = full causal
  float softcap = 0.f;     // 0 = off
  const float* q = nullptr;  // [n_q, n_heads, D]
  int64_t n_q = 0, q_pos0 = 0;
  const float* k = nullptr;  // [n_kv, n_kv_heads, D]
  const float* v = nullptr;
  int64_t n_kv = 0;
  float* out = nullptr;  // [n_q, n_heads, D]
};

struct AttentionKernels {
  const char* name;
  void (*scores)(const float* q, int rows, int d, const float* k, int64_t k_stride, int nk, const int* lo,
                 const int* hi, float scale, float* s, int ld_s);
  void (*softmax)(float* s, int rows, int ld_s, int nk, const int* lo, const int* hi, float softcap, float* m,
                  float* l, float* alpha);
  void (*pv)(const float* p, int rows, int ld_p, const float* v, int64_t v_stride, int d, const int* lo,
             const int* hi, const float* alpha, float* o);
};

AttentionKernels attention_kernels_scalar();
AttentionKernels attention_kernels_avx2();    // needs head_dim % 8 == 0
AttentionKernels attention_kernels_avx512();  // needs head_dim % 16 == 0

// Scratch bytes attention_block needs for `rows` = G × (queries per item).
size_t attention_scratch_bytes(int rows, int head_dim);

// Queries [i0, i1) of kv head g's group; writes their rows of p.out. scratch: 64-byte aligned.
void attention_block(const AttentionKernels& kr, const AttnParams& p, int g, int64_t i0, int64_t i1,
                     void* scratch);

}  // namespace tern::cpu
