// The MLA driver over the shared online-softmax primitives. Per key tile it decodes the latent rows
// once into [nk, dk] (or reads them in place: f32 blocks holding whole tiles), then every head of every
// query of the item uses that one tile for its scores (all dk values) and its weighted sum (the first
// dv values of the same rows: the value is the latent). Memory per item: O(rows · (dv + kKeyTile)).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/cpu/latent_attention_kernels.h"

namespace tern::cpu {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

size_t align64(size_t n) { return (n + 63) & ~size_t(63); }

// Decodes rows [tb + j0, tb + nk) of the latent pool into pack [nk, dk] (rows below j0 zeroed: masked,
// but the vector kernels may read them).
void gather_latent_tile(const LatentAttnParams& p, int64_t tb, int j0, int nk, float* pack) {
  const LatentKvLayer& L = *p.kv;
  const size_t row_bytes = size_t(L.dk) * L.codec.elem_bytes;
  if (j0 > 0) std::memset(pack, 0, sizeof(float) * size_t(j0) * size_t(L.dk));
  for (int j = j0; j < nk; ++j) {
    const int64_t t = tb + j;
    const uint8_t* block = L.data + size_t(p.block_table[t / L.block_size]) * L.block_stride;
    const size_t slot = size_t(t % L.block_size);
    float s = 1.f;
    if (L.codec.scaled) std::memcpy(&s, block + L.scale_offset + slot * sizeof(float), sizeof(float));
    L.codec.decode(block + slot * row_bytes, s, L.dk, pack + int64_t(j) * L.dk);
  }
}

}  // namespace

// Layout: S [rows, kKeyTile] | O [rows, dv] | m, l, alpha [rows] | lo, hi [rows] int | tile [kKeyTile, dk].
size_t latent_attention_scratch_bytes(int rows, int dk, int dv) {
  const size_t f = sizeof(float);
  return align64(size_t(rows) * kKeyTile * f) + align64(size_t(rows) * dv * f) + align64(size_t(rows) * f) * 3 +
         align64(size_t(rows) * sizeof(int)) * 2 + align64(size_t(kKeyTile) * dk * f);
}

void latent_attention_block(const AttentionKernels& kr, const LatentAttnParams& p, const LatentAttnWork& w,
                            void* scratch, const AttnPartial* partial) {
  const LatentKvLayer& L = *p.kv;
  const int H = p.n_heads, dk = L.dk, dv = L.dv;
  const int nq = int(w.i1 - w.i0), rows = nq * H;
  char* cur = static_cast<char*>(scratch);
  auto take = [&](size_t bytes) {
    char* at = cur;
    cur += align64(bytes);
    return at;
  };
  float* s = reinterpret_cast<float*>(take(size_t(rows) * kKeyTile * sizeof(float)));
  float* o = reinterpret_cast<float*>(take(size_t(rows) * dv * sizeof(float)));
  float* m = reinterpret_cast<float*>(take(size_t(rows) * sizeof(float)));
  float* l = reinterpret_cast<float*>(take(size_t(rows) * sizeof(float)));
  float* alpha = reinterpret_cast<float*>(take(size_t(rows) * sizeof(float)));
  int* lo = reinterpret_cast<int*>(take(size_t(rows) * sizeof(int)));
  int* hi = reinterpret_cast<int*>(take(size_t(rows) * sizeof(int)));
  float* pack = reinterpret_cast<float*>(take(size_t(kKeyTile) * dk * sizeof(float)));
  std::fill(o, o + int64_t(rows) * dv, 0.f);
  std::fill(m, m + rows, kNegInf);
  std::fill(l, l + rows, 0.f);

  // Row i·H + h is query i0 + i, head h: the queries' rows are already contiguous in q.
  const float* q = p.q + w.i0 * H * dk;
  const int64_t pos_last = p.q_pos0 + w.i1 - 1;
  const int64_t kv_begin = std::max<int64_t>(w.t_lo, 0);
  const int64_t kv_end = std::min(pos_last + 1, w.t_hi);
  const bool in_place = L.codec.dtype == KvDType::F32 && L.block_size % kKeyTile == 0;
  for (int64_t tb = kv_begin / kKeyTile * kKeyTile; tb < kv_end; tb += kKeyTile) {
    const int nk = int(std::min<int64_t>(kKeyTile, kv_end - tb));
    for (int i = 0; i < nq; ++i) {
      const int64_t pos = p.q_pos0 + w.i0 + i;
      int64_t a = std::max(kv_begin, tb) - tb, b = std::min<int64_t>(pos + 1, tb + nk) - tb;
      if (a >= b) a = b = 0;
      std::fill(lo + i * H, lo + (i + 1) * H, int(a));
      std::fill(hi + i * H, hi + (i + 1) * H, int(b));
    }
    const float* tile = pack;
    if (in_place) {
      const uint8_t* block = L.data + size_t(p.block_table[tb / L.block_size]) * L.block_stride;
      tile = reinterpret_cast<const float*>(block) + (tb % L.block_size) * dk;
    } else {
      gather_latent_tile(p, tb, int(std::max<int64_t>(0, kv_begin - tb)), nk, pack);
    }
    kr.scores(q, rows, dk, tile, dk, nk, lo, hi, p.scale, s, kKeyTile);
    kr.softmax(s, rows, kKeyTile, nk, lo, hi, 0.f, m, l, alpha);
    kr.pv(s, rows, kKeyTile, tile, dk, dv, lo, hi, alpha, o);  // value = the tile's first dv columns
  }

  if (partial) {
    std::memcpy(partial->o, o, sizeof(float) * size_t(rows) * dv);
    std::memcpy(partial->m, m, sizeof(float) * size_t(rows));
    std::memcpy(partial->l, l, sizeof(float) * size_t(rows));
    return;
  }
  float* dst = p.out + w.i0 * H * dv;
  for (int r = 0; r < rows; ++r) {
    const float lr = l[r];
    for (int c = 0; c < dv; ++c) dst[int64_t(r) * dv + c] = lr > 0 ? o[int64_t(r) * dv + c] / lr : 0.f;
  }
}

void latent_attention_merge(const LatentAttnParams& p, const LatentAttnWork& w, const AttnPartial* parts,
                            int n_parts) {
  const int dv = p.kv->dv;
  const int rows = int(w.i1 - w.i0) * p.n_heads;
  float* out = p.out + w.i0 * p.n_heads * dv;
  for (int r = 0; r < rows; ++r) {
    float mx = kNegInf;
    for (int c = 0; c < n_parts; ++c) mx = std::max(mx, parts[c].m[r]);
    float* dst = out + int64_t(r) * dv;
    std::fill(dst, dst + dv, 0.f);
    float sum = 0.f;
    for (int c = 0; c < n_parts; ++c) {
      if (parts[c].l[r] == 0.f) continue;  // this chunk saw no key of the row
      const float wgt = std::exp(parts[c].m[r] - mx);
      sum += parts[c].l[r] * wgt;
      const float* oc = parts[c].o + int64_t(r) * dv;
      for (int d = 0; d < dv; ++d) dst[d] += oc[d] * wgt;
    }
    for (int d = 0; d < dv; ++d) dst[d] = sum > 0 ? dst[d] / sum : 0.f;
  }
}

}  // namespace tern::cpu
