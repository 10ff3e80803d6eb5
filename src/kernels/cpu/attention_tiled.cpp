// The tiled online-softmax driver (attention_block) and the scalar reference primitives.
// Memory per work item is O(rows · (D + kKeyTile)), independent of the context length.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <xmmintrin.h>
#include <limits>

#include "kernels/cpu/attention_kernels.h"

namespace tern::cpu {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Query rows per kv head from which copying a K/V tile into contiguous scratch pays off (each
// copied row is then reused by >= 8 row pairs).
constexpr int kPackMinRows = 16;

size_t align64(size_t n) { return (n + 63) & ~size_t(63); }

void scores_scalar(const float* q, int rows, int d, const float* k, int64_t k_stride, int nk, const int* lo,
                   const int* hi, float scale, float* s, int ld_s) {
  for (int r = 0; r < rows; ++r) {
    const float* qr = q + int64_t(r) * d;
    for (int j = lo[r]; j < hi[r]; ++j) {
      const float* kj = k + j * k_stride;
      float acc = 0.f;
      for (int c = 0; c < d; ++c) acc += qr[c] * kj[c];
      s[int64_t(r) * ld_s + j] = acc * scale;
    }
  }
}

void softmax_scalar(float* s, int rows, int ld_s, int nk, const int* lo, const int* hi, float softcap, float* m,
                    float* l, float* alpha) {
  for (int r = 0; r < rows; ++r) {
    float* sr = s + int64_t(r) * ld_s;
    if (lo[r] >= hi[r]) {
      std::fill(sr, sr + nk, 0.f);
      alpha[r] = 1.f;
      continue;
    }
    float mx = kNegInf;
    for (int j = lo[r]; j < hi[r]; ++j) {
      if (softcap > 0) sr[j] = softcap * std::tanh(sr[j] / softcap);
      mx = std::max(mx, sr[j]);
    }
    const float m_new = std::max(m[r], mx);
    alpha[r] = std::exp(m[r] - m_new);  // m[r] = -inf on the first visible tile → 0
    float sum = 0.f;
    for (int j = 0; j < nk; ++j) {
      const float pj = (j >= lo[r] && j < hi[r]) ? std::exp(sr[j] - m_new) : 0.f;
      sr[j] = pj;
      sum += pj;
    }
    l[r] = l[r] * alpha[r] + sum;
    m[r] = m_new;
  }
}

void pv_scalar(const float* p, int rows, int ld_p, const float* v, int64_t v_stride, int d, const int* lo,
               const int* hi, const float* alpha, float* o) {
  for (int r = 0; r < rows; ++r) {
    float* orow = o + int64_t(r) * d;
    const float* pr = p + int64_t(r) * ld_p;
    if (alpha[r] != 1.f)
      for (int c = 0; c < d; ++c) orow[c] *= alpha[r];
    for (int j = lo[r]; j < hi[r]; ++j) {
      const float* vj = v + j * v_stride;
      const float pj = pr[j];
      for (int c = 0; c < d; ++c) orow[c] += pj * vj[c];
    }
  }
}

// K and V rows [t0, t0 + n) of kv heads [g0, g1): one contiguous range each, 64-byte lines.
void prefetch_tile(const AttnParams& p, const AttnWork& w, int64_t t0, int64_t n) {
  if (n <= 0) return;
  const int64_t row = int64_t(p.n_kv_heads) * p.head_dim;
  const int64_t first = t0 * row + int64_t(w.g0) * p.head_dim;
  const int64_t last = (t0 + n - 1) * row + int64_t(w.g1) * p.head_dim;  // exclusive
  const char* kb = reinterpret_cast<const char*>(p.k + first);
  const char* vb = reinterpret_cast<const char*>(p.v + first);
  const size_t bytes = size_t(last - first) * sizeof(float);
  for (size_t off = 0; off < bytes; off += 64) {
    _mm_prefetch(kb + off, _MM_HINT_T1);
    _mm_prefetch(vb + off, _MM_HINT_T1);
  }
}

// Paged twin of prefetch_tile: positions [t0, t0 + n) of kv heads [g0, g1) sit in different blocks,
// one contiguous run of (g1 - g0) head rows per position. Gathers are latency-bound without this.
void prefetch_paged_tile(const AttnParams& p, const AttnWork& w, int64_t t0, int64_t n) {
  const PagedKvLayer& L = *p.paged;
  const size_t row_bytes = size_t(p.head_dim) * L.codec.elem_bytes;
  const size_t span = size_t(w.g1 - w.g0) * row_bytes;
  for (int64_t t = t0; t < t0 + n; ++t) {
    const size_t off = size_t(p.block_table[t / L.block_size]) * L.block_stride +
                       (size_t(t % L.block_size) * size_t(p.n_kv_heads) + size_t(w.g0)) * row_bytes;
    for (size_t b = 0; b < span; b += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(L.k + off + b), _MM_HINT_T1);
      _mm_prefetch(reinterpret_cast<const char*>(L.v + off + b), _MM_HINT_T1);
    }
  }
}

// Decodes K and V rows [tb + j0, tb + nk) of kv head g from the pool into kpack/vpack [nk, D]
// (rows below j0 are zeroed: masked, but the vector kernels may touch them).
void gather_tile(const AttnParams& p, int g, int64_t tb, int j0, int nk, float* kpack, float* vpack) {
  const PagedKvLayer& L = *p.paged;
  const int D = p.head_dim;
  const size_t row_bytes = size_t(D) * L.codec.elem_bytes;
  if (j0 > 0) {
    std::memset(kpack, 0, sizeof(float) * size_t(j0) * D);
    std::memset(vpack, 0, sizeof(float) * size_t(j0) * D);
  }
  for (int j = j0; j < nk; ++j) {
    const int64_t t = tb + j;
    const size_t block = size_t(p.block_table[t / L.block_size]);
    const size_t slot_head = size_t(t % L.block_size) * size_t(p.n_kv_heads) + size_t(g);
    const size_t off = block * L.block_stride;
    float ks = 1.f, vs = 1.f;
    if (L.codec.scaled) {
      std::memcpy(&ks, L.k + off + L.scale_offset + slot_head * sizeof(float), sizeof(float));
      std::memcpy(&vs, L.v + off + L.scale_offset + slot_head * sizeof(float), sizeof(float));
    }
    L.codec.decode(L.k + off + slot_head * row_bytes, ks, D, kpack + int64_t(j) * D);
    L.codec.decode(L.v + off + slot_head * row_bytes, vs, D, vpack + int64_t(j) * D);
  }
}

// Where the rows of one key tile sit in a paged pool, for the fused primitives: offsets of the
// tile's token slots (kv head 0) computed once per tile, then per kv head the row pointers and
// the per-key factors (scale · the K row scale; the V row scale, or 1 for unscaled dtypes).
struct FusedTile {
  size_t block[kKeyTile];  // byte offset of the key's block in the pool
  size_t slot[kKeyTile];   // slot · n_kv_heads: the key's first row in its block
  const uint8_t* k[kKeyTile];
  const uint8_t* v[kKeyTile];
  float kscale[kKeyTile], vscale[kKeyTile];

  // Keys [0, j0) are outside every row's range; they point at key j0's slot so no read leaves the
  // rows this sequence owns.
  void locate(const AttnParams& p, int64_t tb, int j0, int nk) {
    const PagedKvLayer& L = *p.paged;
    for (int j = 0; j < nk; ++j) {
      const int64_t t = tb + std::max(j, j0);
      block[j] = size_t(p.block_table[t / L.block_size]) * L.block_stride;
      slot[j] = size_t(t % L.block_size) * size_t(p.n_kv_heads);
    }
  }
  void head(const AttnParams& p, int g, int nk) {
    const PagedKvLayer& L = *p.paged;
    const size_t row_bytes = size_t(p.head_dim) * L.codec.elem_bytes;
    for (int j = 0; j < nk; ++j) {
      const size_t sh = slot[j] + size_t(g);
      k[j] = L.k + block[j] + sh * row_bytes;
      v[j] = L.v + block[j] + sh * row_bytes;
    }
    if (!L.codec.scaled) {
      std::fill(kscale, kscale + nk, p.scale);
      std::fill(vscale, vscale + nk, 1.f);
      return;
    }
    for (int j = 0; j < nk; ++j) {
      const size_t at = block[j] + L.scale_offset + (slot[j] + size_t(g)) * sizeof(float);
      float ks, vs;
      std::memcpy(&ks, L.k + at, sizeof(float));
      std::memcpy(&vs, L.v + at, sizeof(float));
      kscale[j] = p.scale * ks;
      vscale[j] = vs;
    }
  }
};

}  // namespace

AttentionKernels attention_kernels_scalar() {
  return {"attention_scalar", scores_scalar, softmax_scalar, pv_scalar, kv_tile_kernels_scalar};
}

// Layout: Q [rows, D] | S [rows, kKeyTile] | O [rows, D] | m, l, alpha [rows] | lo, hi [rows] int |
//         packed K, V tiles [kKeyTile, D] | the decode kernel's work [kv_decode_work_floats].
size_t attention_scratch_bytes(int rows, int head_dim) {
  const size_t f = sizeof(float);
  return align64(size_t(rows) * head_dim * f) * 2 + align64(size_t(rows) * kKeyTile * f) +
         align64(size_t(rows) * f) * 3 + align64(size_t(rows) * sizeof(int)) * 2 +
         align64(size_t(kKeyTile) * head_dim * f) * 2 + align64(kv_decode_work_floats(rows, head_dim) * f);
}

void attention_block(const AttentionKernels& kr, const AttnParams& p, const AttnWork& w, void* scratch,
                     const AttnPartial* partial) {
  const int G = p.n_heads / p.n_kv_heads, D = p.head_dim;
  const int nq = int(w.i1 - w.i0), rg = nq * G;  // rows per kv head
  const int rows = attention_rows(p, w);
  char* cur = static_cast<char*>(scratch);
  auto take = [&](size_t bytes) {
    char* at = cur;
    cur += align64(bytes);
    return at;
  };
  float* qp = reinterpret_cast<float*>(take(size_t(rows) * D * sizeof(float)));
  float* s = reinterpret_cast<float*>(take(size_t(rows) * kKeyTile * sizeof(float)));
  float* o = reinterpret_cast<float*>(take(size_t(rows) * D * sizeof(float)));
  float* m = reinterpret_cast<float*>(take(size_t(rows) * sizeof(float)));
  float* l = reinterpret_cast<float*>(take(size_t(rows) * sizeof(float)));
  float* alpha = reinterpret_cast<float*>(take(size_t(rows) * sizeof(float)));
  int* lo = reinterpret_cast<int*>(take(size_t(rows) * sizeof(int)));
  int* hi = reinterpret_cast<int*>(take(size_t(rows) * sizeof(int)));
  float* kpack = reinterpret_cast<float*>(take(size_t(kKeyTile) * D * sizeof(float)));
  float* vpack = reinterpret_cast<float*>(take(size_t(kKeyTile) * D * sizeof(float)));
  float* decode_work = reinterpret_cast<float*>(take(kv_decode_work_floats(rows, D) * sizeof(float)));

  // Row (g - g0)·rg + (i - i0)·G + hh holds query i of head g·G + hh; the G heads of one query are
  // adjacent in q, so each (kv head, query) contributes one contiguous [G, D] block.
  for (int g = w.g0; g < w.g1; ++g)
    for (int i = 0; i < nq; ++i)
      std::memcpy(qp + (int64_t(g - w.g0) * rg + int64_t(i) * G) * D,
                  p.q + ((w.i0 + i) * p.n_heads + int64_t(g) * G) * D, sizeof(float) * size_t(G) * D);
  std::fill(o, o + int64_t(rows) * D, 0.f);
  std::fill(m, m + rows, kNegInf);
  std::fill(l, l + rows, 0.f);

  const int W = p.sliding_window;
  const int64_t pos_first = p.q_pos0 + w.i0, pos_last = p.q_pos0 + w.i1 - 1;
  const int64_t kv_begin = std::max(w.t_lo, W > 0 ? std::max<int64_t>(0, pos_first - W + 1) : int64_t(0));
  const int64_t kv_end = std::min({pos_last + 1, p.n_kv, w.t_hi});
  const int64_t kv_stride = int64_t(p.n_kv_heads) * D;
  // Paged: tiles start on kKeyTile multiples so that, when blocks hold whole tiles of f32, a tile
  // is one contiguous run of a block and is read in place; any other pool is decoded tile by tile.
  const bool paged = p.paged != nullptr;
  const bool in_place = !paged || (p.paged->codec.dtype == KvDType::F32 && p.paged->block_size % kKeyTile == 0);
  const int64_t tile0 = paged ? kv_begin / kKeyTile * kKeyTile : kv_begin;
  // Few rows per kv head (decode): read the pool's rows in place with the fused primitives; each
  // K/V byte is then streamed once, widened in registers. Many rows (prompt chunks) amortise one
  // decode of the tile into f32 over all of them and take the packed path below.
  const bool fused = paged && !in_place && kr.kv_tile != nullptr && rg < kPackMinRows;
  const KvTileKernels tk = fused ? kr.kv_tile(p.paged->codec.dtype) : KvTileKernels{};
  // Whole-item decode kernel where the ISA has one for this dtype and head_dim: keys outermost,
  // every kv head of the item per run of keys, scores in registers.
  const KvDecodeFn decode = fused && kr.kv_decode ? kr.kv_decode(p.paged->codec.dtype, D) : nullptr;
  if (decode && kv_begin < kv_end) {
    int64_t lo_pos[kPackMinRows], hi_pos[kPackMinRows];
    for (int i = 0; i < nq; ++i) {
      const int64_t pos = p.q_pos0 + w.i0 + i;
      for (int hh = 0; hh < G; ++hh) {
        lo_pos[i * G + hh] = std::max<int64_t>(W > 0 ? pos - W + 1 : 0, kv_begin);
        hi_pos[i * G + hh] = std::min<int64_t>(pos + 1, kv_end);
      }
    }
    KvDecodeJob job;
    job.kv = p.paged;
    job.block_table = p.block_table;
    job.n_kv_heads = p.n_kv_heads;
    job.head_dim = D;
    job.g0 = w.g0;
    job.g1 = w.g1;
    job.rg = rg;
    job.q = qp;
    job.lo = lo_pos;
    job.hi = hi_pos;
    job.t_lo = kv_begin;
    job.t_hi = kv_end;
    job.scale = p.scale;
    job.softcap = p.softcap;
    job.o = o;
    job.m = m;
    job.l = l;
    job.work = decode_work;
    decode(job);
  }
  FusedTile ft;
  for (int64_t tb = decode ? kv_end : tile0; tb < kv_end; tb += kKeyTile) {
    const int nk = int(std::min<int64_t>(kKeyTile, kv_end - tb));
    // Visible keys of query position pos: max(0, pos - W + 1) <= t <= pos, clipped to the tile.
    for (int i = 0; i < nq; ++i) {
      const int64_t pos = p.q_pos0 + w.i0 + i;
      const int64_t first = std::max<int64_t>(W > 0 ? pos - W + 1 : 0, kv_begin);
      int64_t a = std::max<int64_t>(first, tb) - tb, b = std::min<int64_t>(pos + 1, tb + nk) - tb;
      if (a >= b) a = b = 0;
      for (int hh = 0; hh < G; ++hh) {
        lo[i * G + hh] = int(a);
        hi[i * G + hh] = int(b);
      }
    }
    // All kv heads of the item walk the same tile, so a multi-head item reads one contiguous K/V
    // block per tile; ask for the next block now (into L2) so the memory stream overlaps the
    // compute: per head the rows are strided, which hardware prefetchers follow poorly.
    if (!paged && w.g1 - w.g0 > 1) prefetch_tile(p, w, tb + nk, std::min<int64_t>(kKeyTile, kv_end - tb - nk));
    if (paged && !in_place) prefetch_paged_tile(p, w, tb + nk, std::min<int64_t>(kKeyTile, kv_end - tb - nk));
    if (fused) ft.locate(p, tb, int(std::max<int64_t>(0, kv_begin - tb)), nk);
    for (int g = w.g0; g < w.g1; ++g) {
      const int64_t r0 = int64_t(g - w.g0) * rg;
      if (fused) {
        ft.head(p, g, nk);
        // V rows of this head are read right after the scores; start fetching them now.
        const size_t row_bytes = size_t(D) * p.paged->codec.elem_bytes;
        for (int j = 0; j < nk; ++j)
          for (size_t off = 0; off < row_bytes; off += 64)
            _mm_prefetch(reinterpret_cast<const char*>(ft.v[j] + off), _MM_HINT_T0);
        tk.scores(qp + r0 * D, rg, D, ft.k, ft.kscale, nk, lo, hi, s, kKeyTile);
        kr.softmax(s, rg, kKeyTile, nk, lo, hi, p.softcap, m + r0, l + r0, alpha + r0);
        tk.pv(s, rg, kKeyTile, ft.v, ft.vscale, D, lo, hi, alpha + r0, o + r0 * D);
        continue;
      }
      const float* kbase = p.k;
      const float* vbase = p.v;
      int64_t t_in = tb;  // row of kbase/vbase holding position tb
      if (paged && in_place) {
        const size_t off = size_t(p.block_table[tb / p.paged->block_size]) * p.paged->block_stride;
        kbase = reinterpret_cast<const float*>(p.paged->k + off);
        vbase = reinterpret_cast<const float*>(p.paged->v + off);
        t_in = tb % p.paged->block_size;
      }
      const float* kt = kbase + t_in * kv_stride + int64_t(g) * D;
      const float* vt = vbase + t_in * kv_stride + int64_t(g) * D;
      int64_t stride = kv_stride;
      if (!in_place) {
        gather_tile(p, g, tb, int(std::max<int64_t>(0, kv_begin - tb)), nk, kpack, vpack);
        kt = kpack;
        vt = vpack;
        stride = D;
      } else if (rg >= kPackMinRows) {
        // Rows of one head sit kv_stride apart (often 2 KiB): a whole tile then maps onto a few
        // L1 sets and evicts itself. Packed copies make the heavy reuse below hit L1.
        for (int j = 0; j < nk; ++j) {
          std::memcpy(kpack + int64_t(j) * D, kt + j * kv_stride, sizeof(float) * size_t(D));
          std::memcpy(vpack + int64_t(j) * D, vt + j * kv_stride, sizeof(float) * size_t(D));
        }
        kt = kpack;
        vt = vpack;
        stride = D;
      }
      kr.scores(qp + r0 * D, rg, D, kt, stride, nk, lo, hi, p.scale, s, kKeyTile);
      kr.softmax(s, rg, kKeyTile, nk, lo, hi, p.softcap, m + r0, l + r0, alpha + r0);
      kr.pv(s, rg, kKeyTile, vt, stride, D, lo, hi, alpha + r0, o + r0 * D);
    }
  }

  if (partial) {
    std::memcpy(partial->o, o, sizeof(float) * size_t(rows) * D);
    std::memcpy(partial->m, m, sizeof(float) * size_t(rows));
    std::memcpy(partial->l, l, sizeof(float) * size_t(rows));
    return;
  }
  for (int r = 0; r < rows; ++r) {
    const int g = w.g0 + r / rg, i = (r % rg) / G, hh = r % G;
    float* dst = p.out + ((w.i0 + i) * p.n_heads + int64_t(g) * G + hh) * D;
    const float lr = l[r];
    for (int c = 0; c < D; ++c) dst[c] = lr > 0 ? o[int64_t(r) * D + c] / lr : 0.f;
  }
}

void attention_merge(const AttnParams& p, const AttnWork& w, const AttnPartial* parts, int n_parts) {
  const int G = p.n_heads / p.n_kv_heads, D = p.head_dim;
  const int rg = int(w.i1 - w.i0) * G, rows = attention_rows(p, w);
  for (int r = 0; r < rows; ++r) {
    float mx = kNegInf;
    for (int c = 0; c < n_parts; ++c) mx = std::max(mx, parts[c].m[r]);
    const int g = w.g0 + r / rg, i = (r % rg) / G, hh = r % G;
    float* dst = p.out + ((w.i0 + i) * p.n_heads + int64_t(g) * G + hh) * D;
    std::fill(dst, dst + D, 0.f);
    float sum = 0.f;
    for (int c = 0; c < n_parts; ++c) {
      if (parts[c].l[r] == 0.f) continue;  // this chunk saw no key of the row
      const float wgt = std::exp(parts[c].m[r] - mx);
      sum += parts[c].l[r] * wgt;
      const float* oc = parts[c].o + int64_t(r) * D;
      for (int d = 0; d < D; ++d) dst[d] += oc[d] * wgt;
    }
    for (int d = 0; d < D; ++d) dst[d] = sum > 0 ? dst[d] / sum : 0.f;
  }
}

}  // namespace tern::cpu
