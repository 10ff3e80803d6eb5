// A linear layer's weights after quantization, in the simplest layout every method agrees on:
// one code per weight (uint8 storage) plus f32 group scales and zero points. Every method
// (round-to-nearest here; AWQ / GPTQ / SmoothQuant in awq.h, gptq.h, smoothquant.h) produces it; the
// packers turn it into kernel formats (formats/quant/pack_weights.h) and checkpoint layouts (AutoAWQ,
// AutoGPTQ, compressed-tensors: formats/quant/checkpoint_layouts.h).
//
// Dequantized weight:  w[r, c] = (q[r, c] - zero[r, g]) * scale[r, g],  g = g_idx.empty() ? c / group : g_idx[c].
// Codes are unsigned, q in [0, 2^bits - 1]; symmetric layers have the implicit zero 2^(bits-1) (AutoGPTQ's
// convention; int4 symmetric codes 0..15 mean -8..7) and an empty `zeros`. When `smooth` is not empty the
// kernel divides x[:, c] by smooth[c] first (an AWQ/SmoothQuant scale no previous op could absorb),
// so y = (x / smooth) · dequant(W)ᵀ.
// FP8 (fp8 == true): q holds OCP e4m3 bit patterns (core/fp8.h), one scale per row, w = scale[r] * e4m3(q).
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace tern {

struct QuantSpec {
  int bits = 4;            // 2..8 (tern's kernels and checkpoint layouts take 4 and 8)
  int group = 128;         // columns per scale; 0 = one scale per row (per output channel)
  bool symmetric = true;   // symmetric: zero point fixed at 2^(bits-1), scale = absmax / (2^(bits-1) - 1)
};

struct QuantizedLinear {
  int bits = 4;
  int group = 128;          // 0 = per row
  bool symmetric = true;
  int64_t rows = 0, cols = 0;    // nn.Linear weight [rows = out features, cols = in features]
  std::vector<uint8_t> q;        // [rows, cols] codes
  std::vector<float> scales;     // [rows, n_groups]
  std::vector<float> zeros;      // [rows, n_groups], asymmetric only (integer-valued, in code units)
  std::vector<int32_t> g_idx;    // [cols], act-order only: group of each column
  std::vector<float> smooth;     // [cols] or empty
  bool fp8 = false;              // q holds e4m3 bytes; bits 8, group 0, symmetric, zero point unused

  int64_t n_groups() const;
  int64_t group_of(int64_t col) const { return g_idx.empty() ? (group > 0 ? col / group : 0) : g_idx[size_t(col)]; }
  // The zero point of (row, group) in code units.
  float zero_at(int64_t r, int64_t g) const {
    return symmetric ? float(1 << (bits - 1)) : zeros[size_t(r * n_groups() + g)];
  }
};

Status validate_quant_spec(const QuantSpec& spec, int64_t cols);

// An empty [rows, cols] layer under `spec` (validated by the caller): codes, scales and, for an
// asymmetric spec, zero points sized, values zero; what every quantizer fills.
QuantizedLinear sized_quantized_linear(int64_t rows, int64_t cols, const QuantSpec& spec);

// Scale and zero point of one group of values under `spec`; `clip` (0, 1] shrinks the range
// (AWQ's clipping search). Degenerate (all-zero) groups get scale 1 so codes stay finite.
struct GroupParams {
  float scale = 1, zero = 0;
};
GroupParams group_params(const float* w, int64_t n, int64_t stride, const QuantSpec& spec, float clip = 1.0f);
int quantize_value(float w, GroupParams p, const QuantSpec& spec);       // the code, clamped to range
inline float dequantize_value(int code, GroupParams p) { return (float(code) - p.zero) * p.scale; }
// Fake quantization: round-trip one value.
inline float fake_quantize(float w, GroupParams p, const QuantSpec& spec) {
  return dequantize_value(quantize_value(w, p, spec), p);
}

// Round to nearest: w: [rows, cols] f32 row-major.
Result<QuantizedLinear> quantize_rtn(const float* w, int64_t rows, int64_t cols, const QuantSpec& spec);
// The same with the spec spelled out (group <= 0 or == cols: per output channel).
Result<QuantizedLinear> quantize_rtn(const float* w, int64_t rows, int64_t cols, int bits, int group, bool symmetric);

// FP8 e4m3 per output channel: scale = absmax / 448, q = e4m3(w / scale) rounded to nearest even.
QuantizedLinear quantize_fp8(const float* w, int64_t rows, int64_t cols);

// Dense f32 [rows, cols] of what the quantized layer computes, `smooth` folded in (w[:, c] / smooth[c]),
// so y = x · outᵀ equals the kernel's result (evaluation and tests only).
std::vector<float> dequantize(const QuantizedLinear& ql);
void dequantize(const QuantizedLinear& ql, float* w_out);  // w_out: [rows, cols]

}  // namespace tern
