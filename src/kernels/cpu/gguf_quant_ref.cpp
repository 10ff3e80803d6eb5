// Reference quantizers (f32 -> ggml blocks). Legacy formats: round-to-nearest against the block's
// extreme value(s). K-quants: each sub-block's scale (and min) is chosen by trying a few scales
// around the range-derived one, refitting scale/min by least squares for each candidate rounding and
// keeping the lowest squared error; the sub-block scales are then quantized under the f16 super-block
// scale(s), and the values are rounded again against the scales as stored, so that the decoder's
// arithmetic is exactly what the encoder minimized.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "kernels/cpu/gguf_blocks.h"

namespace tern {

namespace {

void put_half(uint8_t* p, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}
float rounded_half(float v) { return f16_to_f32(f32_to_f16(v)); }
int nearest(float v) { return int(std::lrintf(v)); }
int clampi(int v, int lo, int hi) { return std::min(hi, std::max(lo, v)); }

// x[i] ≈ scale*q[i] - minv, q in [0, nmax]; scale >= 0, minv >= 0 (mins are stored unsigned).
void fit_asym(const float* x, int n, int nmax, float* scale, float* minv) {
  float lo = 0.f, hi = x[0];
  for (int i = 0; i < n; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
  *scale = 0.f;
  *minv = -lo;
  if (!(hi - lo > 1e-30f)) return;
  double best = INFINITY;
  for (int s = -6; s <= 6; ++s) {
    const float iscale = (float(nmax) + 0.15f * float(s)) / (hi - lo);
    double sq = 0, sx = 0, sqq = 0, sqx = 0;
    for (int i = 0; i < n; ++i) {
      const int q = clampi(nearest((x[i] - lo) * iscale), 0, nmax);
      sq += q, sx += x[i], sqq += double(q) * q, sqx += double(q) * x[i];
    }
    const double det = n * sqq - sq * sq;
    if (!(det > 0)) continue;
    double a = (n * sqx - sq * sx) / det, b = (sx - a * sq) / n;
    if (b > 0) b = 0, a = sqx / sqq;  // the offset must be a non-positive shift
    if (!(a > 0)) continue;
    double err = 0;
    for (int i = 0; i < n; ++i) {
      const int q = clampi(nearest(float((x[i] - b) / a)), 0, nmax);
      const double e = a * q + b - x[i];
      err += e * e;
    }
    if (err < best) best = err, *scale = float(a), *minv = float(-b);
  }
}

// x[i] ≈ scale*q[i], q in [-nlo, nhi]; the scale is signed (the largest magnitude maps to -nlo).
float fit_sym(const float* x, int n, int nlo, int nhi) {
  float mx = 0.f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > std::fabs(mx)) mx = x[i];
  }
  if (!(std::fabs(mx) > 1e-30f)) return 0.f;
  float best_scale = -mx / float(nlo);
  double best = INFINITY;
  for (int s = -6; s <= 6; ++s) {
    const float iscale = -(float(nlo) + 0.15f * float(s)) / mx;
    double sqq = 0, sqx = 0;
    for (int i = 0; i < n; ++i) {
      const int q = clampi(nearest(x[i] * iscale), -nlo, nhi);
      sqq += double(q) * q, sqx += double(q) * x[i];
    }
    if (!(sqq > 0)) continue;
    const double a = sqx / sqq;
    double err = 0;
    for (int i = 0; i < n; ++i) {
      const int q = clampi(nearest(float(x[i] / a)), -nlo, nhi);
      const double e = a * q - x[i];
      err += e * e;
    }
    if (err < best) best = err, best_scale = float(a);
  }
  return best_scale;
}

// --- legacy (32 values) ----------------------------------------------------------------------------
void quant_q8_0(const float* x, uint8_t* b) {
  float amax = 0.f;
  for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float d = rounded_half(amax / 127.f), id = d > 0 ? 1.f / d : 0.f;
  put_half(b, d);
  auto* q = reinterpret_cast<int8_t*>(b + 2);
  for (int i = 0; i < 32; ++i) q[i] = int8_t(clampi(nearest(x[i] * id), -127, 127));
}

// Q4_0 / Q5_0: the value of largest magnitude maps to the most negative code.
void quant_sym_legacy(const float* x, int bits, uint8_t* d_out, uint8_t* codes) {
  float mx = 0.f;
  for (int i = 0; i < 32; ++i) {
    if (std::fabs(x[i]) > std::fabs(mx)) mx = x[i];
  }
  const int half_range = 1 << (bits - 1);
  const float d = rounded_half(mx / -float(half_range)), id = d != 0 ? 1.f / d : 0.f;
  put_half(d_out, d);
  for (int i = 0; i < 32; ++i) codes[i] = uint8_t(clampi(nearest(x[i] * id) + half_range, 0, 2 * half_range - 1));
}

void quant_asym_legacy(const float* x, int bits, uint8_t* dm_out, uint8_t* codes) {
  float lo = x[0], hi = x[0];
  for (int i = 0; i < 32; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
  const int nmax = (1 << bits) - 1;
  const float d = rounded_half((hi - lo) / float(nmax)), id = d > 0 ? 1.f / d : 0.f;
  const float m = rounded_half(lo);
  put_half(dm_out, d);
  put_half(dm_out + 2, m);
  for (int i = 0; i < 32; ++i) codes[i] = uint8_t(clampi(nearest((x[i] - m) * id), 0, nmax));
}

void pack_nibbles16(const uint8_t* codes, uint8_t* qs) {
  for (int i = 0; i < 16; ++i) qs[i] = uint8_t((codes[i] & 0xF) | ((codes[i + 16] & 0xF) << 4));
}
void pack_high_bits(const uint8_t* codes, uint8_t* qh4) {
  uint32_t qh = 0;
  for (int i = 0; i < 32; ++i) qh |= uint32_t((codes[i] >> 4) & 1) << i;
  std::memcpy(qh4, &qh, 4);
}

// --- K-quants (256 values) ---------------------------------------------------------------------------
// Sub-block scales/mins quantized to `levels` under one super-scale each; returns the stored
// super-scales and fills the integer sub-block scales.
void quantize_sub_scales(const float* v, int count, int levels, float* super, uint8_t* out) {
  float mx = 0.f;
  for (int j = 0; j < count; ++j) mx = std::max(mx, v[j]);
  *super = rounded_half(mx / float(levels));
  for (int j = 0; j < count; ++j) out[j] = uint8_t(*super > 0 ? clampi(nearest(v[j] / *super), 0, levels) : 0);
}

// Q2_K / Q4_K / Q5_K: x ≈ d*sc*q - dmin*m. Fills codes[256] and the integer scales/mins.
void quant_k_asym(const float* x, int sub, int nmax, int scale_levels, float* d, float* dmin, uint8_t* ls,
                  uint8_t* lm, uint8_t* codes) {
  const int nsub = 256 / sub;
  float sc[16], mn[16];
  for (int j = 0; j < nsub; ++j) fit_asym(x + j * sub, sub, nmax, &sc[j], &mn[j]);
  quantize_sub_scales(sc, nsub, scale_levels, d, ls);
  quantize_sub_scales(mn, nsub, scale_levels, dmin, lm);
  for (int j = 0; j < nsub; ++j) {
    const float ds = *d * float(ls[j]), dm = *dmin * float(lm[j]);
    for (int i = 0; i < sub; ++i) {
      codes[j * sub + i] = uint8_t(ds > 0 ? clampi(nearest((x[j * sub + i] + dm) / ds), 0, nmax) : 0);
    }
  }
}

// Q3_K / Q6_K: x ≈ d*sc*q with signed sub-block scales in [-smax, smax]; codes are q + nlo.
void quant_k_sym(const float* x, int nlo, int nhi, int smax, float* d, int8_t* ls, uint8_t* codes) {
  float sc[16], amax = 0.f;
  for (int j = 0; j < 16; ++j) sc[j] = fit_sym(x + j * 16, 16, nlo, nhi), amax = std::max(amax, std::fabs(sc[j]));
  *d = rounded_half(amax / float(smax));
  for (int j = 0; j < 16; ++j) {
    ls[j] = int8_t(*d > 0 ? clampi(nearest(sc[j] / *d), -smax, smax) : 0);
    const float ds = *d * float(ls[j]);
    for (int i = 0; i < 16; ++i) {
      const int q = ds != 0 ? clampi(nearest(x[j * 16 + i] / ds), -nlo, nhi) : 0;
      codes[j * 16 + i] = uint8_t(q + nlo);
    }
  }
}

// The 2-bit field of value e: qs[(e/128)*32 + e%32] bits 2*((e%128)/32).
void pack_2bit(const uint8_t* codes, uint8_t* qs) {
  std::memset(qs, 0, 64);
  for (int e = 0; e < 256; ++e) qs[(e / 128) * 32 + e % 32] |= uint8_t((codes[e] & 3) << (2 * ((e % 128) / 32)));
}

void pack_k4_scales(const uint8_t* ls, const uint8_t* lm, uint8_t* p) {
  std::memset(p, 0, 12);
  for (int j = 0; j < 4; ++j) {
    p[j] = ls[j] & 63;
    p[j + 4] = lm[j] & 63;
  }
  for (int j = 4; j < 8; ++j) {
    p[j + 4] = uint8_t((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
    p[j - 4] |= uint8_t((ls[j] >> 4) << 6);
    p[j] |= uint8_t((lm[j] >> 4) << 6);
  }
}

void quant_q2_k(const float* x, uint8_t* b) {
  float d, dmin;
  uint8_t ls[16], lm[16], codes[256];
  quant_k_asym(x, 16, 3, 15, &d, &dmin, ls, lm, codes);
  for (int j = 0; j < 16; ++j) b[j] = uint8_t(ls[j] | (lm[j] << 4));
  pack_2bit(codes, b + 16);
  put_half(b + 80, d);
  put_half(b + 82, dmin);
}

void quant_q3_k(const float* x, uint8_t* b) {
  float d;
  int8_t ls[16];
  uint8_t codes[256];
  quant_k_sym(x, 4, 3, 31, &d, ls, codes);
  std::memset(b, 0, 32);
  for (int e = 0; e < 256; ++e) b[e % 32] |= uint8_t(((codes[e] >> 2) & 1) << (e / 32));
  pack_2bit(codes, b + 32);
  uint8_t* p = b + 96;
  std::memset(p, 0, 12);
  for (int i = 0; i < 16; ++i) {
    const int v = ls[i] + 32;  // 1..63
    if (i < 8) p[i] |= uint8_t(v & 0xF);
    else p[i - 8] |= uint8_t((v & 0xF) << 4);
    p[8 + i % 4] |= uint8_t((v >> 4) << (2 * (i / 4)));
  }
  put_half(b + 108, d);
}

void quant_q45_k(const float* x, uint8_t* b, bool five) {
  float d, dmin;
  uint8_t ls[8], lm[8], codes[256];
  quant_k_asym(x, 32, five ? 31 : 15, 63, &d, &dmin, ls, lm, codes);
  put_half(b, d);
  put_half(b + 2, dmin);
  pack_k4_scales(ls, lm, b + 4);
  uint8_t* qs = b + (five ? 48 : 16);
  for (int p = 0; p < 4; ++p) {
    for (int l = 0; l < 32; ++l) qs[p * 32 + l] = uint8_t((codes[p * 64 + l] & 0xF) | ((codes[p * 64 + 32 + l] & 0xF) << 4));
  }
  if (five) {
    uint8_t* qh = b + 16;
    std::memset(qh, 0, 32);
    for (int p = 0; p < 4; ++p) {
      for (int l = 0; l < 32; ++l) {
        qh[l] |= uint8_t(((codes[p * 64 + l] >> 4) & 1) << (2 * p));
        qh[l] |= uint8_t(((codes[p * 64 + 32 + l] >> 4) & 1) << (2 * p + 1));
      }
    }
  }
}

void quant_q6_k(const float* x, uint8_t* b) {
  float d;
  int8_t ls[16];
  uint8_t codes[256];
  quant_k_sym(x, 32, 31, 127, &d, ls, codes);
  uint8_t* ql = b;
  uint8_t* qh = b + 128;
  std::memset(b, 0, 192);
  for (int h = 0; h < 2; ++h) {
    for (int l = 0; l < 32; ++l) {
      const uint8_t* c = codes + h * 128;
      ql[h * 64 + l] = uint8_t((c[l] & 0xF) | ((c[l + 64] & 0xF) << 4));
      ql[h * 64 + l + 32] = uint8_t((c[l + 32] & 0xF) | ((c[l + 96] & 0xF) << 4));
      qh[h * 32 + l] = uint8_t((c[l] >> 4) | ((c[l + 32] >> 4) << 2) | ((c[l + 64] >> 4) << 4) | ((c[l + 96] >> 4) << 6));
    }
  }
  std::memcpy(b + 192, ls, 16);
  put_half(b + 208, d);
}

void quant_q8_k(const float* x, uint8_t* b) {
  float amax = 0.f;
  for (int i = 0; i < 256; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float d = amax / 127.f, id = d > 0 ? 1.f / d : 0.f;
  std::memcpy(b, &d, 4);
  auto* q = reinterpret_cast<int8_t*>(b + 4);
  int16_t sums[16] = {};
  for (int i = 0; i < 256; ++i) {
    q[i] = int8_t(clampi(nearest(x[i] * id), -127, 127));
    sums[i / 16] = int16_t(sums[i / 16] + q[i]);
  }
  std::memcpy(b + 260, sums, 32);
}

void quant_block(GgufType t, const float* x, uint8_t* b) {
  uint8_t codes[32];
  switch (t) {
    case GgufType::Q8_0: return quant_q8_0(x, b);
    case GgufType::Q4_0: quant_sym_legacy(x, 4, b, codes); return pack_nibbles16(codes, b + 2);
    case GgufType::Q4_1: quant_asym_legacy(x, 4, b, codes); return pack_nibbles16(codes, b + 4);
    case GgufType::Q5_0:
      quant_sym_legacy(x, 5, b, codes);
      pack_high_bits(codes, b + 2);
      return pack_nibbles16(codes, b + 6);
    case GgufType::Q5_1:
      quant_asym_legacy(x, 5, b, codes);
      pack_high_bits(codes, b + 4);
      return pack_nibbles16(codes, b + 8);
    case GgufType::Q2_K: return quant_q2_k(x, b);
    case GgufType::Q3_K: return quant_q3_k(x, b);
    case GgufType::Q4_K: return quant_q45_k(x, b, false);
    case GgufType::Q5_K: return quant_q45_k(x, b, true);
    case GgufType::Q6_K: return quant_q6_k(x, b);
    case GgufType::Q8_K: return quant_q8_k(x, b);
    default: return;
  }
}

}  // namespace

void gguf_quantize_row(GgufType t, const float* src, void* dst, int64_t n) {
  auto* out = static_cast<uint8_t*>(dst);
  switch (t) {
    case GgufType::F32: std::memcpy(dst, src, size_t(n) * 4); return;
    case GgufType::F16:
    case GgufType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = t == GgufType::F16 ? f32_to_f16(src[i]) : f32_to_bf16(src[i]);
        std::memcpy(out + 2 * i, &h, 2);
      }
      return;
    default: break;
  }
  const GgufTypeTraits& tr = gguf_traits(t);
  for (int64_t b = 0; b < n / tr.block_elems; ++b) quant_block(t, src + b * tr.block_elems, out + b * tr.block_bytes);
}

}  // namespace tern
