// Scalar decoders of every ggml block format, written from the block layouts in gguf_blocks.h.
// They are the reference the SIMD kernels and the tests compare against.
#include <algorithm>
#include <cctype>
#include <cstring>
#include <string>

#include "core/dtype.h"
#include "kernels/cpu/gguf_blocks.h"

namespace tern {

namespace {

float half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

constexpr GgufTypeTraits kTypes[] = {
    {GgufType::F32, "F32", 1, 4, true},        {GgufType::F16, "F16", 1, 2, true},
    {GgufType::Q4_0, "Q4_0", 32, 18, true},    {GgufType::Q4_1, "Q4_1", 32, 20, true},
    {GgufType::Q5_0, "Q5_0", 32, 22, true},    {GgufType::Q5_1, "Q5_1", 32, 24, true},
    {GgufType::Q8_0, "Q8_0", 32, 34, true},    {GgufType::Q8_1, "Q8_1", 32, 36, false},
    {GgufType::Q2_K, "Q2_K", 256, 84, true},   {GgufType::Q3_K, "Q3_K", 256, 110, true},
    {GgufType::Q4_K, "Q4_K", 256, 144, true},  {GgufType::Q5_K, "Q5_K", 256, 176, true},
    {GgufType::Q6_K, "Q6_K", 256, 210, true},  {GgufType::Q8_K, "Q8_K", 256, 292, false},
    {GgufType::BF16, "BF16", 1, 2, true},
};

}  // namespace

const GgufTypeTraits* gguf_type_traits(uint32_t id) {
  for (const auto& t : kTypes) {
    if (uint32_t(t.type) == id) return &t;
  }
  return nullptr;
}

std::optional<GgufType> gguf_type_from_name(std::string_view name) {
  std::string up(name);
  for (char& c : up) c = char(std::toupper(static_cast<unsigned char>(c)));
  for (const auto& t : kTypes) {
    if (up == t.name && t.weights) return t.type;
  }
  return std::nullopt;
}

namespace gguf_ref {

void dequant_q8_0(const uint8_t* b, float* y) {
  const float d = half(b);
  const auto* q = reinterpret_cast<const int8_t*>(b + 2);
  for (int i = 0; i < 32; ++i) y[i] = d * float(q[i]);
}

void dequant_q4_0(const uint8_t* b, float* y) {
  const float d = half(b);
  const uint8_t* qs = b + 2;
  for (int i = 0; i < 16; ++i) {
    y[i] = d * float((qs[i] & 0xF) - 8);
    y[i + 16] = d * float((qs[i] >> 4) - 8);
  }
}

void dequant_q4_1(const uint8_t* b, float* y) {
  const float d = half(b), m = half(b + 2);
  const uint8_t* qs = b + 4;
  for (int i = 0; i < 16; ++i) {
    y[i] = d * float(qs[i] & 0xF) + m;
    y[i + 16] = d * float(qs[i] >> 4) + m;
  }
}

void dequant_q5_0(const uint8_t* b, float* y) {
  const float d = half(b);
  uint32_t qh;
  std::memcpy(&qh, b + 2, 4);
  const uint8_t* qs = b + 6;
  for (int i = 0; i < 16; ++i) {
    const int lo = (qs[i] & 0xF) | int(((qh >> i) & 1) << 4);
    const int hi = (qs[i] >> 4) | int(((qh >> (i + 16)) & 1) << 4);
    y[i] = d * float(lo - 16);
    y[i + 16] = d * float(hi - 16);
  }
}

void dequant_q5_1(const uint8_t* b, float* y) {
  const float d = half(b), m = half(b + 2);
  uint32_t qh;
  std::memcpy(&qh, b + 4, 4);
  const uint8_t* qs = b + 8;
  for (int i = 0; i < 16; ++i) {
    const int lo = (qs[i] & 0xF) | int(((qh >> i) & 1) << 4);
    const int hi = (qs[i] >> 4) | int(((qh >> (i + 16)) & 1) << 4);
    y[i] = d * float(lo) + m;
    y[i + 16] = d * float(hi) + m;
  }
}

// Q2_K: value e (0..255) = half h = e/128, shift pair j = (e%128)/32, l = e%32:
// 2 bits at 2j of qs[h*32 + l]; sub-block e/16 has scale (low nibble) and min (high nibble).
void dequant_q2_k(const uint8_t* b, float* y) {
  const uint8_t* scales = b;
  const uint8_t* qs = b + 16;
  const float d = half(b + 80), dmin = half(b + 82);
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, j = (e % 128) / 32, l = e % 32;
    const int q = (qs[h * 32 + l] >> (2 * j)) & 3;
    const uint8_t sc = scales[e / 16];
    y[e] = d * float(sc & 0xF) * float(q) - dmin * float(sc >> 4);
  }
}

void q3k_scales(const uint8_t* p, int8_t out[16]) {
  for (int i = 0; i < 16; ++i) {
    const int low = i < 8 ? (p[i] & 0xF) : (p[i - 8] >> 4);
    const int high = (p[8 + (i % 4)] >> (2 * (i / 4))) & 3;
    out[i] = int8_t((low | (high << 4)) - 32);
  }
}

// Q3_K: the low 2 bits as in Q2_K; the third bit of value e is bit (e/32) of hmask[e%32]; a clear
// bit means "minus 4".
void dequant_q3_k(const uint8_t* b, float* y) {
  const uint8_t* hmask = b;
  const uint8_t* qs = b + 32;
  int8_t sc[16];
  q3k_scales(b + 96, sc);
  const float d = half(b + 108);
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, j = (e % 128) / 32, l = e % 32;
    const int low = (qs[h * 32 + l] >> (2 * j)) & 3;
    const int q = low - ((hmask[l] >> (e / 32)) & 1 ? 0 : 4);
    y[e] = d * float(sc[e / 16]) * float(q);
  }
}

// Q4_K: 4 chunks of 64 values; chunk p: qs[p*32 + l] low nibble = value p*64 + l (sub-block 2p),
// high nibble = value p*64 + 32 + l (sub-block 2p+1).
void dequant_q4_k(const uint8_t* b, float* y) {
  const float d = half(b), dmin = half(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qs = b + 16;
  for (int p = 0; p < 4; ++p) {
    uint8_t s0, m0, s1, m1;
    k4_scale_min(2 * p, scales, &s0, &m0);
    k4_scale_min(2 * p + 1, scales, &s1, &m1);
    for (int l = 0; l < 32; ++l) {
      y[p * 64 + l] = d * float(s0) * float(qs[p * 32 + l] & 0xF) - dmin * float(m0);
      y[p * 64 + 32 + l] = d * float(s1) * float(qs[p * 32 + l] >> 4) - dmin * float(m1);
    }
  }
}

// Q5_K: Q4_K plus a fifth bit: bit 2p (first 32 of chunk p) / 2p+1 (second 32) of qh[l].
void dequant_q5_k(const uint8_t* b, float* y) {
  const float d = half(b), dmin = half(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* qs = b + 48;
  for (int p = 0; p < 4; ++p) {
    uint8_t s0, m0, s1, m1;
    k4_scale_min(2 * p, scales, &s0, &m0);
    k4_scale_min(2 * p + 1, scales, &s1, &m1);
    for (int l = 0; l < 32; ++l) {
      const int q0 = (qs[p * 32 + l] & 0xF) | (((qh[l] >> (2 * p)) & 1) << 4);
      const int q1 = (qs[p * 32 + l] >> 4) | (((qh[l] >> (2 * p + 1)) & 1) << 4);
      y[p * 64 + l] = d * float(s0) * float(q0) - dmin * float(m0);
      y[p * 64 + 32 + l] = d * float(s1) * float(q1) - dmin * float(m1);
    }
  }
}

// Q6_K: two halves of 128; in half h, for l < 32, the four values l, l+32, l+64, l+96 take their low
// nibble from ql[h*64 + l] / ql[h*64 + l + 32] (low, low, high, high) and 2 high bits from
// qh[h*32 + l] at shifts 0, 2, 4, 6; the scale is scales[h*8 + (value%128)/16].
void dequant_q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = half(b + 208);
  for (int h = 0; h < 2; ++h) {
    for (int l = 0; l < 32; ++l) {
      const uint8_t a = ql[h * 64 + l], c = ql[h * 64 + l + 32], hb = qh[h * 32 + l];
      const int q[4] = {(a & 0xF) | ((hb & 3) << 4), (c & 0xF) | (((hb >> 2) & 3) << 4),
                        (a >> 4) | (((hb >> 4) & 3) << 4), (c >> 4) | (((hb >> 6) & 3) << 4)};
      for (int r = 0; r < 4; ++r) {
        const int e = r * 32 + l;
        y[h * 128 + e] = d * float(sc[h * 8 + e / 16]) * float(q[r] - 32);
      }
    }
  }
}

void dequant_q8_k(const uint8_t* b, float* y) {
  float d;
  std::memcpy(&d, b, 4);
  const auto* q = reinterpret_cast<const int8_t*>(b + 4);
  for (int i = 0; i < 256; ++i) y[i] = d * float(q[i]);
}

}  // namespace gguf_ref

void gguf_dequantize_row(GgufType t, const void* src, float* dst, int64_t n) {
  const auto* p = static_cast<const uint8_t*>(src);
  switch (t) {
    case GgufType::F32: std::memcpy(dst, src, size_t(n) * 4); return;
    case GgufType::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = load_as_f32(src, DType::F16, size_t(i));
      return;
    case GgufType::BF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = load_as_f32(src, DType::BF16, size_t(i));
      return;
    default: break;
  }
  void (*fn)(const uint8_t*, float*) = nullptr;
  switch (t) {
    case GgufType::Q8_0: fn = gguf_ref::dequant_q8_0; break;
    case GgufType::Q4_0: fn = gguf_ref::dequant_q4_0; break;
    case GgufType::Q4_1: fn = gguf_ref::dequant_q4_1; break;
    case GgufType::Q5_0: fn = gguf_ref::dequant_q5_0; break;
    case GgufType::Q5_1: fn = gguf_ref::dequant_q5_1; break;
    case GgufType::Q2_K: fn = gguf_ref::dequant_q2_k; break;
    case GgufType::Q3_K: fn = gguf_ref::dequant_q3_k; break;
    case GgufType::Q4_K: fn = gguf_ref::dequant_q4_k; break;
    case GgufType::Q5_K: fn = gguf_ref::dequant_q5_k; break;
    case GgufType::Q6_K: fn = gguf_ref::dequant_q6_k; break;
    case GgufType::Q8_K: fn = gguf_ref::dequant_q8_k; break;
    default: std::fill(dst, dst + n, 0.f); return;  // Q8_1: never a weight; callers reject it earlier
  }
  const GgufTypeTraits& tr = gguf_traits(t);
  for (int64_t b = 0; b < n / tr.block_elems; ++b) fn(p + b * tr.block_bytes, dst + b * tr.block_elems);
}

}  // namespace tern
