// Latent attention front door. Prompt chunks are cut into query ranges (all heads of a query in one
// item, so a key tile is decoded once for H heads), costliest first; a decode sequence is one item,
// split over its keys (flash-decoding) while there are fewer decode sequences than threads, the
// partial softmax states merged at the end.
#include "ops/latent_attention.h"
#include "ops/work_items.h"

#include <algorithm>
#include <cassert>

namespace tern {

namespace {

constexpr int64_t kDecodeMaxQueries = 4;
constexpr int64_t kMinKeysPerChunk = 256;

cpu::AttentionKernels pick_kernels(const CpuFeatures& f, int dk, int dv) {
  if (f.avx512 && dk % 16 == 0 && dv % 16 == 0) return cpu::attention_kernels_avx512();
  if (f.avx2 && dk % 8 == 0 && dv % 8 == 0) return cpu::attention_kernels_avx2();
  return cpu::attention_kernels_scalar();
}

}  // namespace

const char* latent_attention_kernel_name(const ExecContext& ctx, int dk, int dv) {
  return pick_kernels(ctx.cpu(), dk, dv).name;
}

void latent_attention(ExecContext& ctx, int n_heads, float scale, const cpu::LatentKvLayer& kv,
                      const PagedAttnSeq* seqs, int n_seqs, const float* q, float* out, LatentAttentionWorkspace& ws) {
  assert(n_heads > 0 && kv.dv <= kv.dk);
  const cpu::AttentionKernels kr = pick_kernels(ctx.cpu(), kv.dk, kv.dv);
  const int H = n_heads;
  const int threads = ctx.threads();
  ws.params.assign(size_t(n_seqs), cpu::LatentAttnParams{});
  ws.items.clear();
  ws.splits.clear();
  int n_decode = 0;
  double flops = 0;
  for (int s = 0; s < n_seqs; ++s) {
    cpu::LatentAttnParams& p = ws.params[size_t(s)];
    p.n_heads = H;
    p.scale = scale;
    p.q = q + seqs[s].row0 * H * kv.dk;
    p.out = out + seqs[s].row0 * H * kv.dv;
    p.n_q = seqs[s].n_q;
    p.q_pos0 = seqs[s].pos0;
    p.kv = &kv;
    p.block_table = seqs[s].block_table;
    if (p.n_q > 0 && p.n_q <= kDecodeMaxQueries) ++n_decode;
    flops += 2.0 * H * (kv.dk + kv.dv) * double(p.n_q) * double(p.q_pos0 + p.n_q);
  }
  const int eff_threads = threads == 1 || flops < 2e5 ? 1 : threads;

  int max_rows = 0;
  for (int s = 0; s < n_seqs; ++s) {
    const int64_t n_q = seqs[s].n_q;
    if (n_q <= kDecodeMaxQueries) continue;
    int64_t qpi = std::max<int64_t>(1, std::min<int64_t>(n_q, 64 / H));
    while (qpi > 1 && (n_q + qpi - 1) / qpi < 4 * eff_threads) qpi = (qpi + 1) / 2;
    max_rows = std::max(max_rows, int(qpi) * H);
    for (int64_t i0 = (n_q - 1) / qpi * qpi; i0 >= 0; i0 -= qpi) {
      cpu::LatentAttnWork w;
      w.i0 = i0;
      w.i1 = std::min(n_q, i0 + qpi);
      ws.items.push_back({s, w, -1});
    }
  }
  const int64_t chunk_cap = std::max(1, eff_threads / std::max(1, n_decode));
  int n_parts = 0;
  for (int s = 0; s < n_seqs; ++s) {
    const cpu::LatentAttnParams& p = ws.params[size_t(s)];
    if (p.n_q <= 0 || p.n_q > kDecodeMaxQueries) continue;
    cpu::LatentAttnWork w;
    w.i1 = p.n_q;
    max_rows = std::max(max_rows, int(p.n_q) * H);
    const int64_t end = p.q_pos0 + p.n_q;
    const int64_t n_chunks = std::clamp<int64_t>(end / kMinKeysPerChunk, 1, chunk_cap);
    if (n_chunks == 1) {
      ws.items.push_back({s, w, -1});
      continue;
    }
    ws.splits.push_back({s, n_parts, int(n_chunks)});
    for (int64_t c = 0; c < n_chunks; ++c) {
      cpu::LatentAttnWork wc = w;
      // Chunk edges on key-tile multiples so each chunk walks whole tiles.
      wc.t_lo = c == 0 ? 0 : end * c / n_chunks / cpu::kKeyTile * cpu::kKeyTile;
      wc.t_hi = c + 1 == n_chunks ? end : end * (c + 1) / n_chunks / cpu::kKeyTile * cpu::kKeyTile;
      ws.items.push_back({s, wc, n_parts++});
    }
  }
  if (ws.items.empty()) return;

  // Partials live in thread 0's slot 1: [n_parts] × (o [rows, dv], m [rows], l [rows]).
  const size_t part_floats = size_t(H) * kDecodeMaxQueries * size_t(kv.dv + 2);
  ws.parts.resize(size_t(n_parts));
  if (n_parts > 0) {
    float* store = static_cast<float*>(ctx.scratch(0, part_floats * sizeof(float) * size_t(n_parts), 1));
    for (const auto& sp : ws.splits) {
      const int rows = int(ws.params[size_t(sp.seq)].n_q) * H;
      for (int c = 0; c < sp.n_parts; ++c) {
        float* base = store + size_t(sp.first_part + c) * part_floats;
        ws.parts[size_t(sp.first_part + c)] = {base, base + size_t(rows) * kv.dv, base + size_t(rows) * (kv.dv + 1)};
      }
    }
  }
  const size_t scratch_bytes = cpu::latent_attention_scratch_bytes(max_rows, kv.dk, kv.dv);
  auto run_item = [&](void* scratch, const LatentAttentionWorkspace::Item& it) {
    cpu::latent_attention_block(kr, ws.params[size_t(it.seq)], it.w, scratch,
                                it.part < 0 ? nullptr : &ws.parts[size_t(it.part)]);
  };
  run_work_items(ctx, eff_threads, scratch_bytes, ws.items, run_item);
  for (const auto& sp : ws.splits) {
    const cpu::LatentAttnParams& p = ws.params[size_t(sp.seq)];
    cpu::LatentAttnWork w;
    w.i1 = p.n_q;
    cpu::latent_attention_merge(p, w, ws.parts.data() + sp.first_part, sp.n_parts);
  }
}

}  // namespace tern
