// OCP FP8 E4M3 ("e4m3fn": 1 sign, 4 exponent bits with bias 7, 3 mantissa bits). There is no
// infinity; S.1111.111 is NaN, so the largest finite value is S.1111.110 = ±448. Subnormals are
// exponent 0: ±m/8 · 2^-6. Encoding rounds to nearest even and saturates: anything beyond ±448
// (including ±inf) becomes ±448; NaN stays NaN (0x7f / 0xff).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace tern {

inline constexpr float kFp8E4M3Max = 448.0f;

inline float fp8_e4m3_to_f32(uint8_t v) {
  const float sign = (v & 0x80) ? -1.0f : 1.0f;
  const int exp = (v >> 3) & 0xf, mant = v & 7;
  if (exp == 0xf && mant == 7) return std::nanf("");
  if (exp == 0) return sign * std::ldexp(float(mant), -9);  // m/8 · 2^-6
  return sign * std::ldexp(float(8 + mant), exp - 10);     // (1 + m/8) · 2^(e-7)
}

inline uint8_t f32_to_fp8_e4m3(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint8_t sign = uint8_t((u >> 24) & 0x80);
  const uint32_t absu = u & 0x7fffffffu;
  if (absu > 0x7f800000u) return uint8_t(sign | 0x7f);  // NaN
  float a;
  std::memcpy(&a, &absu, 4);
  if (a < 0.015625f) {  // below 2^-6: subnormal steps of 2^-9; rounding up to 8 gives the smallest normal
    return uint8_t(sign | uint8_t(std::nearbyint(a * 512.0f)));
  }
  if (a >= kFp8E4M3Max) return uint8_t(sign | 0x7e);
  // Normal: rebias the exponent (127 -> 7) and round the 23-bit mantissa to 3 bits, ties to even;
  // a mantissa carry rolls into the exponent, and a result past 0x7e saturates.
  const uint32_t e = (absu >> 23) - 127 + 7;
  const uint32_t bits = (e << 23) | (absu & 0x7fffffu);
  const uint32_t r = (bits + 0x7ffffu + ((bits >> 20) & 1u)) >> 20;
  return uint8_t(sign | (r > 0x7e ? 0x7e : r));
}

}  // namespace tern
