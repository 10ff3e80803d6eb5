// Scalar row codecs and the per-ISA choice (AVX2 decoders live in kv_codec_avx2.cpp).
#include "kernels/cpu/kv_codec.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/dtype.h"

namespace tern::cpu {


constexpr float kFp8Max = 448.f;

uint8_t f32_to_fp8_e4m3(float x) {
  if (std::isnan(x)) return 0;  // a NaN activation is a bug upstream; keep the cache finite
  const uint8_t sign = std::signbit(x) ? 0x80 : 0;
  const float a = std::fabs(x);
  if (a >= kFp8Max) return sign | 0x7e;
  if (a < 0.015625f) {  // below the smallest normal 2^-6: subnormal steps of 2^-9
    const int q = int(std::nearbyint(a * 512.f));  // q == 8 is exactly the smallest normal (code 0x08)
    return sign | uint8_t(q);
  }
  int ex = 0;
  const float f = std::frexp(a, &ex);  // a = f · 2^ex, f in [0.5, 1)
  int e = ex - 1;                        // a = (2f) · 2^e, e in [-6, 8]
  int m = int(std::nearbyint((2.f * f - 1.f) * 8.f));
  if (m == 8) {
    m = 0;
    ++e;
  }
  if (e > 8 || (e == 8 && m == 7)) return sign | 0x7e;  // 0x7f is NaN in e4m3fn
  return sign | uint8_t(((e + 7) << 3) | m);
}

float fp8_e4m3_to_f32(uint8_t v) {
  const float sign = (v & 0x80) ? -1.f : 1.f;
  const int e = (v >> 3) & 15, m = v & 7;
  if (e == 15 && m == 7) return std::numeric_limits<float>::quiet_NaN();
  if (e == 0) return sign * std::ldexp(float(m), -9);
  return sign * std::ldexp(1.f + float(m) / 8.f, e - 7);
}

namespace {

float row_amax(const float* x, int d) {
  float a = 0.f;
  for (int i = 0; i < d; ++i) a = std::max(a, std::fabs(x[i]));
  return a;
}

void encode_f32(const float* x, int d, void* dst, float*) { std::memcpy(dst, x, sizeof(float) * size_t(d)); }
void decode_f32(const void* src, float, int d, float* out) { std::memcpy(out, src, sizeof(float) * size_t(d)); }

void encode_bf16(const float* x, int d, void* dst, float*) {
  auto* o = static_cast<uint16_t*>(dst);
  for (int i = 0; i < d; ++i) o[i] = f32_to_bf16(x[i]);
}
void decode_bf16(const void* src, float, int d, float* out) {
  const auto* s = static_cast<const uint16_t*>(src);
  for (int i = 0; i < d; ++i) out[i] = bf16_to_f32(s[i]);
}

void encode_int8(const float* x, int d, void* dst, float* scale) {
  const float amax = row_amax(x, d);
  const float s = amax > 0 ? amax / 127.f : 1.f;
  const float inv = 1.f / s;
  auto* o = static_cast<int8_t*>(dst);
  for (int i = 0; i < d; ++i) o[i] = int8_t(std::clamp(std::nearbyint(x[i] * inv), -127.f, 127.f));
  *scale = s;
}
void decode_int8(const void* src, float scale, int d, float* out) {
  const auto* s = static_cast<const int8_t*>(src);
  for (int i = 0; i < d; ++i) out[i] = float(s[i]) * scale;
}

void encode_fp8(const float* x, int d, void* dst, float* scale) {
  const float amax = row_amax(x, d);
  const float s = amax > 0 ? amax / kFp8Max : 1.f;
  const float inv = 1.f / s;
  auto* o = static_cast<uint8_t*>(dst);
  for (int i = 0; i < d; ++i) o[i] = f32_to_fp8_e4m3(x[i] * inv);
  *scale = s;
}
void decode_fp8(const void* src, float scale, int d, float* out) {
  const auto* s = static_cast<const uint8_t*>(src);
  for (int i = 0; i < d; ++i) out[i] = fp8_e4m3_to_f32(s[i]) * scale;
}

}  // namespace

KvRowCodec kv_row_codec(KvDType dtype, const CpuFeatures& cpu) {
  const bool avx2 = cpu.avx2;
  const KvAvx2Rows v = avx2 ? kv_avx2_rows() : KvAvx2Rows{decode_bf16, decode_int8, decode_fp8, encode_int8};
  switch (dtype) {
    case KvDType::F32: return {dtype, 4, false, encode_f32, decode_f32};
    case KvDType::BF16: return {dtype, 2, false, encode_bf16, v.decode_bf16};
    case KvDType::INT8: return {dtype, 1, true, v.encode_int8, v.decode_int8};
    case KvDType::FP8: return {dtype, 1, true, encode_fp8, v.decode_fp8};
  }
  return {KvDType::F32, 4, false, encode_f32, decode_f32};
}

}  // namespace tern::cpu
