// Paged attention front door: one list of work items over every sequence of the batch, pulled by
// the pool's threads from an atomic counter. Prompt chunks are cut as in ops/attention.cpp (kv head
// × query range, costliest first); decode sequences take one item over all kv heads (so each block
// is streamed once), split over keys (flash-decoding) only while there are fewer sequences than
// threads, with the partial softmax states merged at the end.
#include "ops/paged_attention.h"
#include "ops/work_items.h"

#include <algorithm>
#include <cassert>

namespace tern {

namespace {

constexpr int64_t kDecodeMaxQueries = 4;
constexpr int64_t kMinKeysPerChunk = 256;

cpu::AttentionKernels pick_kernels(const CpuFeatures& f, int head_dim) {
  if (f.avx512 && head_dim % 16 == 0) return cpu::attention_kernels_avx512();
  if (f.avx2 && head_dim % 8 == 0) return cpu::attention_kernels_avx2();
  return cpu::attention_kernels_scalar();
}

}  // namespace

void paged_attention(ExecContext& ctx, const AttentionShape& shape, const cpu::PagedKvLayer& kv,
                     const PagedAttnSeq* seqs, int n_seqs, const float* q, float* out, PagedAttentionWorkspace& ws) {
  assert(shape.n_heads > 0 && shape.n_kv_heads > 0 && shape.n_heads % shape.n_kv_heads == 0);
  const cpu::AttentionKernels kr = pick_kernels(ctx.cpu(), shape.head_dim);
  const int G = shape.n_heads / shape.n_kv_heads, D = shape.head_dim;
  const int threads = ctx.threads();
  const int64_t row_floats = int64_t(shape.n_heads) * D;

  ws.params.assign(size_t(n_seqs), cpu::AttnParams{});
  ws.items.clear();
  ws.splits.clear();
  int n_decode = 0;
  double flops = 0;
  for (int s = 0; s < n_seqs; ++s) {
    cpu::AttnParams& p = ws.params[size_t(s)];
    p.n_heads = shape.n_heads;
    p.n_kv_heads = shape.n_kv_heads;
    p.head_dim = D;
    p.scale = shape.scale;
    p.sliding_window = std::max(0, shape.sliding_window);
    p.softcap = shape.softcap;
    p.q = q + seqs[s].row0 * row_floats;
    p.out = out + seqs[s].row0 * row_floats;
    p.n_q = seqs[s].n_q;
    p.q_pos0 = seqs[s].pos0;
    p.n_kv = seqs[s].pos0 + seqs[s].n_q;
    p.paged = &kv;
    p.block_table = seqs[s].block_table;
    if (p.n_q > 0 && p.n_q <= kDecodeMaxQueries) ++n_decode;
    flops += 4.0 * shape.n_heads * D * double(p.n_q) * double(p.n_kv);
  }
  const bool tiny = threads == 1 || flops < 2e5;
  const int eff_threads = tiny ? 1 : threads;

  // Prompt chunks first (their items are the costliest), then decodes.
  int max_rows = 0;
  for (int s = 0; s < n_seqs; ++s) {
    const int64_t n_q = seqs[s].n_q;
    if (n_q <= kDecodeMaxQueries) continue;
    int64_t qpi = std::max<int64_t>(1, std::min<int64_t>(n_q, 64 / G));
    auto items_for = [&](int64_t x) { return int64_t(shape.n_kv_heads) * ((n_q + x - 1) / x); };
    while (qpi > 1 && items_for(qpi) < 4 * eff_threads) qpi = (qpi + 1) / 2;
    const int64_t q_tiles = (n_q + qpi - 1) / qpi;
    max_rows = std::max(max_rows, int(qpi) * G);
    for (int64_t tile = q_tiles - 1; tile >= 0; --tile)
      for (int g = 0; g < shape.n_kv_heads; ++g) {
        cpu::AttnWork w;
        w.g0 = g;
        w.g1 = g + 1;
        w.i0 = tile * qpi;
        w.i1 = std::min(n_q, w.i0 + qpi);
        ws.items.push_back({s, w, -1});
      }
  }
  const int64_t chunk_cap = std::max(1, eff_threads / std::max(1, n_decode));
  int n_parts = 0;
  for (int s = 0; s < n_seqs; ++s) {
    const cpu::AttnParams& p = ws.params[size_t(s)];
    if (p.n_q <= 0 || p.n_q > kDecodeMaxQueries) continue;
    cpu::AttnWork w;
    w.g0 = 0;
    w.g1 = shape.n_kv_heads;
    w.i0 = 0;
    w.i1 = p.n_q;
    max_rows = std::max(max_rows, cpu::attention_rows(p, w));
    const int64_t first = p.sliding_window > 0 ? std::max<int64_t>(0, p.q_pos0 - p.sliding_window + 1) : 0;
    const int64_t end = p.n_kv, span = end - first;
    const int64_t n_chunks = std::clamp<int64_t>(span / kMinKeysPerChunk, 1, chunk_cap);
    if (n_chunks == 1) {
      ws.items.push_back({s, w, -1});
      continue;
    }
    ws.splits.push_back({s, n_parts, int(n_chunks)});
    for (int64_t c = 0; c < n_chunks; ++c) {
      cpu::AttnWork wc = w;
      // Chunk edges on key-tile multiples so each chunk walks whole tiles.
      wc.t_lo = c == 0 ? first : (first + span * c / n_chunks) / cpu::kKeyTile * cpu::kKeyTile;
      wc.t_hi = c + 1 == n_chunks ? end : (first + span * (c + 1) / n_chunks) / cpu::kKeyTile * cpu::kKeyTile;
      ws.items.push_back({s, wc, n_parts++});
    }
  }
  if (ws.items.empty()) return;

  // Partials live in thread 0's slot 1: [n_parts] × (o [rows, D], m [rows], l [rows]).
  const size_t part_floats = size_t(shape.n_heads) * kDecodeMaxQueries * size_t(D + 2);
  ws.parts.resize(size_t(n_parts));
  if (n_parts > 0) {
    float* store = static_cast<float*>(ctx.scratch(0, part_floats * sizeof(float) * size_t(n_parts), 1));
    for (const auto& sp : ws.splits) {
      const int rows = int(ws.params[size_t(sp.seq)].n_q) * shape.n_heads;
      for (int c = 0; c < sp.n_parts; ++c) {
        float* base = store + size_t(sp.first_part + c) * part_floats;
        ws.parts[size_t(sp.first_part + c)] = {base, base + size_t(rows) * D, base + size_t(rows) * (D + 1)};
      }
    }
  }
  const size_t scratch_bytes = cpu::attention_scratch_bytes(max_rows, D);
  auto run_item = [&](void* scratch, const PagedAttentionWorkspace::Item& it) {
    const cpu::AttnParams& p = ws.params[size_t(it.seq)];
    cpu::attention_block(kr, p, it.w, scratch, it.part < 0 ? nullptr : &ws.parts[size_t(it.part)]);
  };
  run_work_items(ctx, eff_threads, scratch_bytes, ws.items, run_item);
  for (const auto& sp : ws.splits) {
    const cpu::AttnParams& p = ws.params[size_t(sp.seq)];
    cpu::AttnWork w;
    w.g0 = 0;
    w.g1 = shape.n_kv_heads;
    w.i0 = 0;
    w.i1 = p.n_q;
    cpu::attention_merge(p, w, ws.parts.data() + sp.first_part, sp.n_parts);
  }
}

}  // namespace tern
