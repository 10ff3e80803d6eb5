// Scalar reference of the fused K/V tile primitives (attention_kernels.h, KvTileKernels): each row
// is widened by the pool codec's scalar decoder (scale 1: the caller's per-key factors carry the
// row scales) and then used in plain f32 arithmetic. The ISA variants must agree with this up to
// the order of f32 additions. kv_decode_scalar is the reference of the whole-item decode kernels.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/attention_kernels.h"

namespace tern::cpu {

namespace {

// Widest head_dim a stack row buffer holds; wider heads widen in pieces of this many values.
constexpr int kRowChunk = 256;

template <KvDType T>
void widen(const uint8_t* row, int c0, int n, float* out) {
  const KvRowCodec codec = kv_row_codec(T, CpuFeatures{});  // the scalar decoders
  codec.decode(row + size_t(c0) * codec.elem_bytes, 1.f, n, out);
}

template <KvDType T>
void scores_ref(const float* q, int rows, int d, const uint8_t* const* k, const float* kscale, int nk, const int* lo,
                const int* hi, float* s, int ld_s) {
  (void)nk;
  float buf[kRowChunk];
  for (int r = 0; r < rows; ++r) {
    const float* qr = q + int64_t(r) * d;
    for (int j = lo[r]; j < hi[r]; ++j) {
      float acc = 0.f;
      for (int c0 = 0; c0 < d; c0 += kRowChunk) {
        const int n = std::min(kRowChunk, d - c0);
        widen<T>(k[j], c0, n, buf);
        for (int c = 0; c < n; ++c) acc += qr[c0 + c] * buf[c];
      }
      s[int64_t(r) * ld_s + j] = acc * kscale[j];
    }
  }
}

template <KvDType T>
void pv_ref(const float* p, int rows, int ld_p, const uint8_t* const* v, const float* vscale, int d, const int* lo,
            const int* hi, const float* alpha, float* o) {
  float buf[kRowChunk];
  for (int r = 0; r < rows; ++r) {
    float* orow = o + int64_t(r) * d;
    const float* pr = p + int64_t(r) * ld_p;
    if (alpha[r] != 1.f)
      for (int c = 0; c < d; ++c) orow[c] *= alpha[r];
    for (int j = lo[r]; j < hi[r]; ++j) {
      const float w = pr[j] * vscale[j];
      for (int c0 = 0; c0 < d; c0 += kRowChunk) {
        const int n = std::min(kRowChunk, d - c0);
        widen<T>(v[j], c0, n, buf);
        for (int c = 0; c < n; ++c) orow[c0 + c] += w * buf[c];
      }
    }
  }
}

template <KvDType T>
KvTileKernels make(const char* name) {
  return {name, scores_ref<T>, pv_ref<T>};
}

// Where key t of kv head g sits: its row and its row scale (1 for unscaled dtypes).
struct KeyAt {
  const uint8_t* k;
  const uint8_t* v;
  float ks = 1.f, vs = 1.f;
};
KeyAt key_at(const KvDecodeJob& j, int64_t t, int g) {
  const PagedKvLayer& L = *j.kv;
  const size_t off = size_t(j.block_table[t / L.block_size]) * L.block_stride;
  const size_t slot_head = size_t(t % L.block_size) * size_t(j.n_kv_heads) + size_t(g);
  const size_t row_bytes = size_t(j.head_dim) * L.codec.elem_bytes;
  KeyAt a{L.k + off + slot_head * row_bytes, L.v + off + slot_head * row_bytes};
  if (L.codec.scaled) {
    std::memcpy(&a.ks, L.k + off + L.scale_offset + slot_head * sizeof(float), sizeof(float));
    std::memcpy(&a.vs, L.v + off + L.scale_offset + slot_head * sizeof(float), sizeof(float));
  }
  return a;
}

// The reference decode: per row, one pass for the scores' max, a second for Σ p and Σ p·v.
template <KvDType T>
void decode_ref(const KvDecodeJob& j) {
  const int D = j.head_dim;
  std::vector<float> row(static_cast<size_t>(D));
  auto score = [&](const float* q, const KeyAt& a) {
    widen<T>(a.k, 0, D, row.data());
    float acc = 0.f;
    for (int c = 0; c < D; ++c) acc += q[c] * row[size_t(c)];
    float s = acc * (j.scale * a.ks);
    if (j.softcap > 0) s = j.softcap * std::tanh(s / j.softcap);
    return s;
  };
  for (int g = j.g0; g < j.g1; ++g)
    for (int r = 0; r < j.rg; ++r) {
      const int64_t R = int64_t(g - j.g0) * j.rg + r;
      const float* q = j.q + R * D;
      float* o = j.o + R * D;
      std::fill(o, o + D, 0.f);
      const int64_t t0 = std::max(j.lo[r], j.t_lo), t1 = std::min(j.hi[r], j.t_hi);
      float m = -std::numeric_limits<float>::infinity(), l = 0.f;
      for (int64_t t = t0; t < t1; ++t) m = std::max(m, score(q, key_at(j, t, g)));
      for (int64_t t = t0; t < t1; ++t) {
        const KeyAt a = key_at(j, t, g);
        const float p = std::exp(score(q, a) - m);
        l += p;
        widen<T>(a.v, 0, D, row.data());
        for (int c = 0; c < D; ++c) o[c] += p * a.vs * row[size_t(c)];
      }
      j.m[R] = m;
      j.l[R] = l;
    }
}

}  // namespace

KvDecodeFn kv_decode_scalar(KvDType dtype, int) {
  switch (dtype) {
    case KvDType::F32: return decode_ref<KvDType::F32>;
    case KvDType::BF16: return decode_ref<KvDType::BF16>;
    case KvDType::INT8: return decode_ref<KvDType::INT8>;
    case KvDType::FP8: return decode_ref<KvDType::FP8>;
  }
  return nullptr;
}

KvTileKernels kv_tile_kernels_scalar(KvDType dtype) {
  switch (dtype) {
    case KvDType::F32: return make<KvDType::F32>("kv_tile_scalar_f32");
    case KvDType::BF16: return make<KvDType::BF16>("kv_tile_scalar_bf16");
    case KvDType::INT8: return make<KvDType::INT8>("kv_tile_scalar_int8");
    case KvDType::FP8: return make<KvDType::FP8>("kv_tile_scalar_fp8");
  }
  return make<KvDType::F32>("kv_tile_scalar_f32");
}

}  // namespace tern::cpu
