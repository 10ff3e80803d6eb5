// Attention front door: picks the primitive set for the host ISA and head_dim and cuts the problem
// into work items. Prefill: (kv head × query range) items handed to the pool through an atomic
// counter, issued in decreasing cost (the latest queries see the most keys under the causal mask)
// so the uneven causal work still balances. Decode: see run_decode (split over keys).
#include "ops/attention.h"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <vector>

#include "kernels/cpu/attention_kernels.h"

namespace tern {

namespace {

cpu::AttentionKernels pick_kernels(const CpuFeatures& f, int head_dim) {
  if (f.avx512 && head_dim % 16 == 0) return cpu::attention_kernels_avx512();
  if (f.avx2 && head_dim % 8 == 0) return cpu::attention_kernels_avx2();
  return cpu::attention_kernels_scalar();
}

// Decode (and other tiny query counts): one work item covers all kv heads, so it streams the KV
// cache rows contiguously ([t, all kv heads, D] is one block per key). With several threads the
// visible keys are split into chunks (split-K, "flash-decoding") and the partial softmax states
// are merged afterwards; heads alone would leave threads idle or read strided memory.
constexpr int64_t kDecodeMaxQueries = 4;
constexpr int64_t kMinKeysPerChunk = 256;

void run_decode(ExecContext& ctx, const cpu::AttentionKernels& kr, const cpu::AttnParams& p, int threads) {
  cpu::AttnWork w;
  w.g0 = 0;
  w.g1 = p.n_kv_heads;
  w.i0 = 0;
  w.i1 = p.n_q;
  const int rows = cpu::attention_rows(p, w);
  const size_t scratch_bytes = cpu::attention_scratch_bytes(rows, p.head_dim);
  const int64_t first = p.sliding_window > 0 ? std::max<int64_t>(0, p.q_pos0 - p.sliding_window + 1) : 0;
  const int64_t end = p.q_pos0 + p.n_q;
  const int64_t n_chunks = std::clamp<int64_t>((end - first) / kMinKeysPerChunk, 1, threads);
  if (n_chunks == 1) {
    cpu::attention_block(kr, p, w, ctx.scratch(0, scratch_bytes));
    return;
  }
  // Partials live in thread 0's slot 1: [n_chunks] × (o [rows, D], m [rows], l [rows]).
  const size_t part_floats = size_t(rows) * (p.head_dim + 2);
  float* store = static_cast<float*>(ctx.scratch(0, part_floats * sizeof(float) * size_t(n_chunks), 1));
  std::vector<cpu::AttnPartial> parts(static_cast<size_t>(n_chunks));
  for (int64_t c = 0; c < n_chunks; ++c) {
    float* base = store + size_t(c) * part_floats;
    parts[size_t(c)] = {base, base + size_t(rows) * p.head_dim, base + size_t(rows) * (p.head_dim + 1)};
  }
  ctx.pool().run([&](int t, int) {
    if (t >= n_chunks) return;
    cpu::AttnWork wc = w;
    // Chunk edges on key-tile multiples so each chunk walks whole tiles.
    const int64_t span = end - first;
    wc.t_lo = first + (span * t / n_chunks) / cpu::kKeyTile * cpu::kKeyTile;
    wc.t_hi = t + 1 == n_chunks ? end : first + (span * (t + 1) / n_chunks) / cpu::kKeyTile * cpu::kKeyTile;
    cpu::attention_block(kr, p, wc, ctx.scratch(t, scratch_bytes), &parts[size_t(t)]);
  });
  cpu::attention_merge(p, w, parts.data(), int(n_chunks));
}

}  // namespace

void attention(ExecContext& ctx, const AttentionShape& shape, const float* q, int64_t n_q, int64_t q_pos0,
               const float* k, const float* v, int64_t n_kv, float* out) {
  if (n_q <= 0) return;
  assert(shape.n_heads > 0 && shape.n_kv_heads > 0 && shape.n_heads % shape.n_kv_heads == 0);
  assert(shape.head_dim > 0 && q_pos0 >= 0 && n_kv >= q_pos0 + n_q);
  const cpu::AttentionKernels kr = pick_kernels(ctx.cpu(), shape.head_dim);
  cpu::AttnParams p;
  p.n_heads = shape.n_heads;
  p.n_kv_heads = shape.n_kv_heads;
  p.head_dim = shape.head_dim;
  p.scale = shape.scale;
  p.sliding_window = std::max(0, shape.sliding_window);
  p.softcap = shape.softcap;
  p.q = q;
  p.n_q = n_q;
  p.q_pos0 = q_pos0;
  p.k = k;
  p.v = v;
  p.n_kv = n_kv;
  p.out = out;

  const int G = shape.n_heads / shape.n_kv_heads;
  const int threads = ctx.threads();
  const double flops = 4.0 * double(shape.n_heads) * shape.head_dim * double(n_q) * double(q_pos0 + n_q);
  const bool tiny = threads == 1 || flops < 2e5;  // not worth waking the pool

  if (n_q <= kDecodeMaxQueries) {
    run_decode(ctx, kr, p, tiny ? 1 : threads);
    return;
  }

  // Prefill: work items are (kv head, query range). About 64 rows (queries × group heads) per item
  // keep Q, O and the score tile in L1/L2; halve the query range while there are too few items to
  // keep every thread busy.
  int64_t q_per_item = std::max<int64_t>(1, std::min<int64_t>(n_q, 64 / G));
  auto items_for = [&](int64_t qpi) { return int64_t(shape.n_kv_heads) * ((n_q + qpi - 1) / qpi); };
  while (q_per_item > 1 && items_for(q_per_item) < 4 * threads) q_per_item = (q_per_item + 1) / 2;
  const int64_t q_tiles = (n_q + q_per_item - 1) / q_per_item;
  const int64_t n_items = int64_t(shape.n_kv_heads) * q_tiles;
  const size_t scratch_bytes = cpu::attention_scratch_bytes(int(q_per_item) * G, shape.head_dim);

  auto run_item = [&](int t, int64_t item) {
    const int64_t tile = q_tiles - 1 - item / shape.n_kv_heads;  // latest (costliest) tiles first
    cpu::AttnWork w;
    w.g0 = int(item % shape.n_kv_heads);
    w.g1 = w.g0 + 1;
    w.i0 = tile * q_per_item;
    w.i1 = std::min(n_q, w.i0 + q_per_item);
    cpu::attention_block(kr, p, w, ctx.scratch(t, scratch_bytes));
  };
  if (tiny || n_items == 1) {
    for (int64_t it = 0; it < n_items; ++it) run_item(0, it);
    return;
  }
  std::atomic<int64_t> next{0};
  ctx.pool().run([&](int t, int) {
    for (int64_t it = next.fetch_add(1, std::memory_order_relaxed); it < n_items;
         it = next.fetch_add(1, std::memory_order_relaxed))
      run_item(t, it);
  });
}

}  // namespace tern
