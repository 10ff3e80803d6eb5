// Scalar reference of the fused K/V tile primitives (attention_kernels.h, KvTileKernels): each row
// is widened by the pool codec's scalar decoder (scale 1: the caller's per-key factors carry the
// row scales) and then used in plain f32 arithmetic. The ISA variants must agree with this up to
// the order of f32 additions.
#include <algorithm>
#include <cstring>

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

}  // namespace

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
