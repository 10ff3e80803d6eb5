// CPU flash-attention building blocks. The op (src/ops/attention.cpp) cuts the problem into work
// items (prefill: one kv head × a range of queries; decode: all kv heads × a range of keys, merged
// afterwards) and runs attention_block on each; attention_block walks the visible keys in tiles of
// kKeyTile and calls three per-ISA primitives per tile (for each kv head of the item):
//   scores  S = scale · Q·Kᵀ          Q: [rows, D] packed, K tile: nk rows of stride k_stride
//   softmax online update: softcap, mask to each row's visible range [lo, hi), running max m,
//           running sum l, P = exp(S - m) written over S (0 outside the range), alpha = exp(m_old - m)
//   pv      O = O·alpha + P·V          O: [rows, D], V tile like K
// The group of G = n_heads / n_kv_heads query heads that share one kv head is processed together
// (rows = queries × G), so each K/V row is read once per group per query range.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/kv_codec.h"

namespace tern::cpu {

constexpr int kKeyTile = 64;

// One layer of a paged KV pool. Block b's K rows start at k + b·block_stride and hold
// [block_size, n_kv_heads, head_dim] elements of codec.dtype; when codec.scaled, the f32 scales
// [block_size, n_kv_heads] follow at + scale_offset. V alike from v.
struct PagedKvLayer {
  const uint8_t* k = nullptr;
  const uint8_t* v = nullptr;
  size_t block_stride = 0;
  size_t scale_offset = 0;
  int block_size = 0;
  KvRowCodec codec{};
};

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
  // Paged K/V instead of k/v: position t lives in block block_table[t / block_size].
  const PagedKvLayer* paged = nullptr;
  const int32_t* block_table = nullptr;
};

// Fused decode primitives over K/V rows read in place from a paged pool of one dtype (bf16, int8,
// fp8, f32): each row is widened to f32 in registers as it is streamed, never written back, and
// one K/V row serves every query row of its group. Key j of a tile is the D-value row at k[j]
// (v[j]); per-key factors fold the pool's row scales in:
//   scores  s[r, j] = kscale[j] · (q_r · k_j)              j in [lo[r], hi[r])
//   pv      o_r = o_r · alpha_r + Σ_j p[r, j] · vscale[j] · v_j
// Entries of k / v outside every row's range must still point at a readable row.
struct KvTileKernels {
  const char* name;
  void (*scores)(const float* q, int rows, int d, const uint8_t* const* k, const float* kscale, int nk,
                 const int* lo, const int* hi, float* s, int ld_s);
  void (*pv)(const float* p, int rows, int ld_p, const uint8_t* const* v, const float* vscale, int d, const int* lo,
             const int* hi, const float* alpha, float* o);
};

KvTileKernels kv_tile_kernels_scalar(KvDType dtype);  // the reference: widen each row, then f32 math
KvTileKernels kv_tile_kernels_avx2(KvDType dtype);    // needs head_dim % 8 == 0
KvTileKernels kv_tile_kernels_avx512(KvDType dtype);  // needs head_dim % 16 == 0

// Decode attention of one work item straight from a paged pool, keys outermost: the item's rows
// (kv heads [g0, g1) × rg rows each, packed as attention_block packs them: row (g - g0)·rg + r)
// against keys [t_lo, t_hi), walked in runs of up to 16 consecutive keys of one block; each run
// serves every kv head of the item in turn (one pass over the run's K/V bytes, which sit
// contiguously in the block), and each K/V row is widened once for all rg rows of its head. The
// scores of a run stay in registers and enter an online softmax there. Row r of every head sees
// the keys [lo[r], hi[r]) ∩ [t_lo, t_hi); every key of [t_lo, t_hi) must be stored in the pool.
// Writes the unnormalised state of each row: o = Σ p·v, m = max score (-inf if it saw no key),
// l = Σ p with p = exp(score - m), score = scale · q·k (· row scale), soft-capped when softcap > 0.
struct KvDecodeJob {
  const PagedKvLayer* kv = nullptr;
  const int32_t* block_table = nullptr;
  int n_kv_heads = 0, head_dim = 0;
  int g0 = 0, g1 = 0, rg = 0;
  const float* q = nullptr;  // [(g1 - g0)·rg, D]
  const int64_t* lo = nullptr;
  const int64_t* hi = nullptr;  // [rg]
  int64_t t_lo = 0, t_hi = 0;
  float scale = 0.f, softcap = 0.f;
  float* o = nullptr;     // [(g1 - g0)·rg, D]
  float* m = nullptr;     // [(g1 - g0)·rg]
  float* l = nullptr;     // [(g1 - g0)·rg]
  float* work = nullptr;  // kv_decode_work_floats(rows, D) floats, 64-byte aligned
};
using KvDecodeFn = void (*)(const KvDecodeJob&);

// Scratch of a job with `rows` rows (q in the kernel's lane order, per-lane softmax sums).
inline size_t kv_decode_work_floats(int rows, int head_dim) { return size_t(rows) * size_t(head_dim + 16); }

// nullptr where the ISA variant does not take this head_dim (then the tile primitives above run).
KvDecodeFn kv_decode_scalar(KvDType dtype, int head_dim);  // the reference: two passes, f32, std::exp
KvDecodeFn kv_decode_avx2(KvDType dtype, int head_dim);    // head_dim 16, 32, 48, 64, 80, 96, 128
KvDecodeFn kv_decode_avx512(KvDType dtype, int head_dim);  // those, 112, 192, 256

struct AttentionKernels {
  const char* name;
  void (*scores)(const float* q, int rows, int d, const float* k, int64_t k_stride, int nk, const int* lo,
                 const int* hi, float scale, float* s, int ld_s);
  void (*softmax)(float* s, int rows, int ld_s, int nk, const int* lo, const int* hi, float softcap, float* m,
                  float* l, float* alpha);
  void (*pv)(const float* p, int rows, int ld_p, const float* v, int64_t v_stride, int d, const int* lo,
             const int* hi, const float* alpha, float* o);
  // Fused tile primitives of this ISA for a paged pool's dtype (decode reads rows in place).
  KvTileKernels (*kv_tile)(KvDType dtype) = nullptr;
  // Whole-item decode of this ISA (nullptr: not for this dtype / head_dim).
  KvDecodeFn (*kv_decode)(KvDType dtype, int head_dim) = nullptr;
};

AttentionKernels attention_kernels_scalar();
AttentionKernels attention_kernels_avx2();    // needs head_dim % 8 == 0
AttentionKernels attention_kernels_avx512();  // needs head_dim % 16 == 0

// One unit of work: queries [i0, i1) of the query heads that read kv heads [g0, g1), against the
// keys in [t_lo, t_hi) (further clipped to what the queries may see).
struct AttnWork {
  int g0 = 0, g1 = 0;
  int64_t i0 = 0, i1 = 0;
  int64_t t_lo = 0, t_hi = INT64_MAX;
};

// Rows of a work item: (g1 - g0) · (i1 - i0) · G.
inline int attention_rows(const AttnParams& p, const AttnWork& w) {
  return (w.g1 - w.g0) * int(w.i1 - w.i0) * (p.n_heads / p.n_kv_heads);
}

// Scratch bytes attention_block needs for a work item with `rows` rows.
size_t attention_scratch_bytes(int rows, int head_dim);

// Partial results of a work item that saw only part of the keys (split-K decode): per row
// (ordered kv head, query, head in group), the unnormalised output o[rows, D], the running max m
// and the running sum l. Rows that saw no key have m = -inf, l = 0.
struct AttnPartial {
  float* o = nullptr;
  float* m = nullptr;
  float* l = nullptr;
};

// Computes a work item. Without `partial`, writes normalised rows of p.out; with it, the partials.
// scratch: 64-byte aligned, attention_scratch_bytes(attention_rows(p, w), D) bytes.
void attention_block(const AttentionKernels& kr, const AttnParams& p, const AttnWork& w, void* scratch,
                     const AttnPartial* partial = nullptr);

// Combines n_parts partials of the same rows (work w with the full key range) into p.out:
// out = Σ o_c·exp(m_c - M) / Σ l_c·exp(m_c - M), M = max m_c.
void attention_merge(const AttnParams& p, const AttnWork& w, const AttnPartial* parts, int n_parts);

}  // namespace tern::cpu
