// Activation preparation and the scalar reference kernels for quantized weights (see quant_kernels.h).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/fp8.h"
#include "kernels/cpu/quant_kernels.h"

namespace tern::cpu {

namespace {

size_t align64(size_t n) { return (n + 63) & ~size_t(63); }

// xq[0:n] = round(x / d) with d = max|x| / 127 (d = 0 for an all-zero x); returns d and writes Σ xq.
float quantize_row(const float* x, int64_t n, int8_t* xq, int32_t* sum) {
  float amax = 0;
  for (int64_t j = 0; j < n; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float inv = d > 0 ? 1.0f / d : 0.0f;
  int32_t s = 0;
  // Round to nearest even by adding and subtracting 1.5·2^23 (exact for |v| < 2^22, the same result
  // as nearbyint in the default rounding mode): nearbyint is a libm call per element without SSE4.1,
  // and this runs on every activation of every quantized matmul. Clamping first keeps |v| small.
  constexpr float kMagic = 12582912.0f;
  for (int64_t j = 0; j < n; ++j) {
    const float v = std::fmin(std::fmax(x[j] * inv, -127.0f), 127.0f);
    xq[j] = int8_t(int((v + kMagic) - kMagic));
    s += xq[j];
  }
  *sum = s;
  return d;
}

float fp8_value(uint8_t v) { return fp8_e4m3_to_f32(v); }

bool wants_x16(const WeightMatrix& w, int64_t m) {
  (void)m;  // every m: the decode GEMV and the GEMM (m > kX16MaxRows) both read the int16 x
  return w.format == WeightFormat::Int8Channel && !w.int8_activations;
}

// x16[0:n] = round(clamp(x / d, ±32767)), d = max|x| / 32767 (0 for an all-zero x); returns d.
float quantize_run16(const float* x, int64_t n, int16_t* x16) {
  float amax = 0;
  for (int64_t j = 0; j < n; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 32767.0f;
  const float inv = d > 0 ? 1.0f / d : 0.0f;
  constexpr float kMagic = 12582912.0f;  // round to nearest even, as quantize_row
  for (int64_t j = 0; j < n; ++j) {
    const float v = std::fmin(std::fmax(x[j] * inv, -32767.0f), 32767.0f);
    x16[j] = int16_t(int((v + kMagic) - kMagic));
  }
  return d;
}

}  // namespace

size_t quant_acts_bytes(const WeightMatrix& w, int64_t m) {
  if (wants_x16(w, m)) {
    const int64_t nb = (w.cols + kX16Block - 1) / kX16Block;
    return align64(size_t(m * w.cols) * sizeof(int16_t)) + align64(size_t(m * nb) * sizeof(float));
  }
  const bool int_x = (w.format == WeightFormat::Int8Channel && w.int8_activations) || w.format == WeightFormat::Int4Group;
  if (!int_x) return 0;
  const int64_t per_row = w.format == WeightFormat::Int4Group ? w.cols / w.group : 1;
  const size_t pairs = w.format == WeightFormat::Int4Group && w.group % 64 == 0 ? align64(size_t(m * w.cols)) : 0;
  return align64(size_t(m * w.cols)) + 2 * align64(size_t(m * per_row) * sizeof(float)) + pairs;
}

QuantActs quant_acts_prepare(const WeightMatrix& w, const float* x, int64_t m, void* scratch) {
  QuantActs a;
  a.x = x, a.m = m;
  if (quant_acts_bytes(w, m) == 0) return a;
  const int64_t k = w.cols;
  if (wants_x16(w, m)) {
    // Scratch: x16 [m, k], xd16 [m, nb].
    const int64_t nb = (k + kX16Block - 1) / kX16Block;
    auto* x16 = static_cast<int16_t*>(scratch);
    auto* xd16 = reinterpret_cast<float*>(static_cast<char*>(scratch) + align64(size_t(m * k) * sizeof(int16_t)));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t b = 0; b < nb; ++b) {
        const int64_t j0 = b * kX16Block, len = std::min(kX16Block, k - j0);
        xd16[i * nb + b] = quantize_run16(x + i * k + j0, len, x16 + i * k + j0);
      }
    a.x16 = x16, a.xd16 = xd16;
    return a;
  }
  const int64_t gs = w.format == WeightFormat::Int4Group ? w.group : k, ng = k / gs;
  char* p = static_cast<char*>(scratch);
  int8_t* xq = reinterpret_cast<int8_t*>(p);
  float* xd = reinterpret_cast<float*>(p + align64(size_t(m * k)));
  float* xs = reinterpret_cast<float*>(p + align64(size_t(m * k)) + align64(size_t(m * ng) * sizeof(float)));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t g = 0; g < ng; ++g) {
      int32_t sum = 0;
      const float d = quantize_row(x + i * k + g * gs, gs, xq + i * k + g * gs, &sum);
      xd[i * ng + g] = d;
      xs[i * ng + g] = d * float(sum);
    }
  }
  a.xq = xq, a.xd = xd, a.xs = xs;
  if (w.format == WeightFormat::Int4Group && gs % 64 == 0) {
    int8_t* xp = reinterpret_cast<int8_t*>(p + align64(size_t(m * k)) + 2 * align64(size_t(m * ng) * sizeof(float)));
    static constexpr int kFrom[4] = {0, 32, 16, 48};  // source of each 16-column quarter of a chunk
    for (int64_t c = 0; c < m * k; c += 64)
      for (int q = 0; q < 4; ++q) std::memcpy(xp + c + 16 * q, xq + c + kFrom[q], 16);
    a.xq_pairs = xp;
  }
  return a;
}

void quant_w8a16_scalar(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t m0, int64_t m1,
                        int64_t n0, int64_t n1) {
  const int64_t k = w.cols, n = w.rows;
  const int8_t* q = static_cast<const int8_t*>(w.data);
  for (int64_t r = n0; r < n1; ++r)
    for (int64_t i = m0; i < m1; ++i) {
      float s = 0;
      for (int64_t j = 0; j < k; ++j) s += a.x[i * k + j] * float(q[r * k + j]);
      y[i * n + r] = s * w.scales[r] + (bias ? bias[r] : 0.f);
    }
}

void quant_w8a16_x16_scalar(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t m0,
                            int64_t m1, int64_t n0, int64_t n1) {
  const int64_t k = w.cols, n = w.rows, nb = (k + kX16Block - 1) / kX16Block;
  const int8_t* q = static_cast<const int8_t*>(w.data);
  for (int64_t r = n0; r < n1; ++r)
    for (int64_t i = m0; i < m1; ++i) {
      float s = 0;
      for (int64_t b = 0; b < nb; ++b) {
        int32_t dot = 0;
        for (int64_t j = b * kX16Block; j < std::min(k, (b + 1) * kX16Block); ++j)
          dot += int32_t(a.x16[i * k + j]) * int32_t(q[r * k + j]);
        s += a.xd16[i * nb + b] * float(dot);
      }
      y[i * n + r] = s * w.scales[r] + (bias ? bias[r] : 0.f);
    }
}

void quant_w8a8_scalar(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t m0, int64_t m1,
                       int64_t n0, int64_t n1) {
  const int64_t k = w.cols, n = w.rows;
  const int8_t* q = static_cast<const int8_t*>(w.data);
  for (int64_t r = n0; r < n1; ++r)
    for (int64_t i = m0; i < m1; ++i) {
      int32_t s = 0;
      for (int64_t j = 0; j < k; ++j) s += int32_t(a.xq[i * k + j]) * int32_t(q[r * k + j]);
      y[i * n + r] = float(s) * (w.scales[r] * a.xd[i]) + (bias ? bias[r] : 0.f);
    }
}

void quant_int4_scalar(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t m0, int64_t m1,
                       int64_t n0, int64_t n1) {
  const int64_t k = w.cols, n = w.rows, gs = w.group, ng = k / gs;
  const uint8_t* packed = static_cast<const uint8_t*>(w.data);
  for (int64_t r = n0; r < n1; ++r) {
    const uint8_t* row = packed + r * (k / 2);
    for (int64_t i = m0; i < m1; ++i) {
      float acc = 0;
      for (int64_t g = 0; g < ng; ++g) {
        int32_t dot = 0;
        for (int64_t j = g * gs; j < (g + 1) * gs; ++j) {
          const uint8_t byte = row[(j / 32) * 16 + (j % 16)];
          const int code = (j % 32) < 16 ? (byte & 0xf) : (byte >> 4);
          dot += code * int32_t(a.xq[i * k + j]);
        }
        const float s = w.scales[r * ng + g], z = w.zeros ? w.zeros[r * ng + g] : 8.0f;
        acc += s * (a.xd[i * ng + g] * float(dot) - z * a.xs[i * ng + g]);
      }
      y[i * n + r] = acc + (bias ? bias[r] : 0.f);
    }
  }
}

void quant_fp8_scalar(const QuantActs& a, const WeightMatrix& w, float* y, const float* bias, int64_t m0, int64_t m1,
                      int64_t n0, int64_t n1) {
  const int64_t k = w.cols, n = w.rows;
  const uint8_t* q = static_cast<const uint8_t*>(w.data);
  for (int64_t r = n0; r < n1; ++r)
    for (int64_t i = m0; i < m1; ++i) {
      float s = 0;
      for (int64_t j = 0; j < k; ++j) s += a.x[i * k + j] * fp8_value(q[r * k + j]);
      y[i * n + r] = s * w.scales[r] + (bias ? bias[r] : 0.f);
    }
}

}  // namespace tern::cpu
