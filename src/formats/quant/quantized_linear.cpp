#include "formats/quant/quantized_linear.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/fp8.h"

namespace tern {

int64_t QuantizedLinear::n_groups() const {
  if (group <= 0) return 1;
  if (!g_idx.empty()) return int64_t(*std::max_element(g_idx.begin(), g_idx.end())) + 1;
  return (cols + group - 1) / group;
}

Status validate_quant_spec(const QuantSpec& spec, int64_t cols) {
  if (spec.bits < 2 || spec.bits > 8) return Status::error(fmt::format("--bits {} is not supported (2..8)", spec.bits));
  if (spec.group < 0) return Status::error(fmt::format("--group {} must be >= 0", spec.group));
  if (spec.group > 0 && cols % spec.group != 0) {
    return Status::error(fmt::format("--group {} does not divide the {} input columns", spec.group, cols));
  }
  return Status::ok();
}

GroupParams group_params(const float* w, int64_t n, int64_t stride, const QuantSpec& spec, float clip) {
  GroupParams p;
  if (spec.symmetric) {
    float amax = 0;
    for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(w[i * stride]));
    amax *= clip;
    const float qmax = float((1 << (spec.bits - 1)) - 1);
    p.scale = amax > 0 ? amax / qmax : 1.0f;
    p.zero = float(1 << (spec.bits - 1));
    return p;
  }
  // Asymmetric: the range always contains 0 so that exact zeros stay exact.
  float lo = 0, hi = 0;
  for (int64_t i = 0; i < n; ++i) lo = std::min(lo, w[i * stride]), hi = std::max(hi, w[i * stride]);
  lo *= clip, hi *= clip;
  const float qmax = float((1 << spec.bits) - 1);
  if (hi - lo <= 0) return GroupParams{1.0f, 0.0f};
  p.scale = (hi - lo) / qmax;
  p.zero = std::clamp(std::nearbyint(-lo / p.scale), 0.0f, qmax);
  return p;
}

int quantize_value(float w, GroupParams p, const QuantSpec& spec) {
  const float qmax = float((1 << spec.bits) - 1);
  const float c = std::nearbyint(w / p.scale) + p.zero;
  return int(std::clamp(c, 0.0f, qmax));
}

QuantizedLinear sized_quantized_linear(int64_t rows, int64_t cols, const QuantSpec& spec) {
  QuantizedLinear ql;
  ql.bits = spec.bits, ql.group = spec.group, ql.symmetric = spec.symmetric, ql.rows = rows, ql.cols = cols;
  const int64_t ng = spec.group > 0 ? cols / spec.group : 1;
  ql.q.resize(size_t(rows * cols));
  ql.scales.resize(size_t(rows * ng));
  if (!spec.symmetric) ql.zeros.resize(size_t(rows * ng));
  return ql;
}

Result<QuantizedLinear> quantize_rtn(const float* w, int64_t rows, int64_t cols, const QuantSpec& spec) {
  TERN_RETURN_IF_ERROR(validate_quant_spec(spec, cols));
  QuantizedLinear ql = sized_quantized_linear(rows, cols, spec);
  const int64_t gs = spec.group > 0 ? spec.group : cols, ng = cols / gs;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < ng; ++g) {
      const float* src = w + r * cols + g * gs;
      const GroupParams p = group_params(src, gs, 1, spec);
      ql.scales[size_t(r * ng + g)] = p.scale;
      if (!spec.symmetric) ql.zeros[size_t(r * ng + g)] = p.zero;
      for (int64_t i = 0; i < gs; ++i) ql.q[size_t(r * cols + g * gs + i)] = uint8_t(quantize_value(src[i], p, spec));
    }
  }
  return ql;
}

Result<QuantizedLinear> quantize_rtn(const float* w, int64_t rows, int64_t cols, int bits, int group, bool symmetric) {
  QuantSpec spec;
  spec.bits = bits, spec.group = group >= cols ? 0 : std::max(group, 0), spec.symmetric = symmetric;
  return quantize_rtn(w, rows, cols, spec);
}

QuantizedLinear quantize_fp8(const float* w, int64_t rows, int64_t cols) {
  QuantizedLinear ql;
  ql.bits = 8, ql.group = 0, ql.symmetric = true, ql.fp8 = true, ql.rows = rows, ql.cols = cols;
  ql.q.resize(size_t(rows * cols));
  ql.scales.resize(size_t(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = w + r * cols;
    float amax = 0;
    for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(src[c]));
    const float scale = amax > 0 ? amax / kFp8E4M3Max : 1.0f;
    ql.scales[size_t(r)] = scale;
    for (int64_t c = 0; c < cols; ++c) ql.q[size_t(r * cols + c)] = f32_to_fp8_e4m3(src[c] / scale);
  }
  return ql;
}

void dequantize(const QuantizedLinear& ql, float* out) {
  const int64_t ng = ql.n_groups();
  const float sym_zero = float(1 << (ql.bits - 1));
  for (int64_t r = 0; r < ql.rows; ++r) {
    for (int64_t c = 0; c < ql.cols; ++c) {
      const uint8_t code = ql.q[size_t(r * ql.cols + c)];
      float v;
      if (ql.fp8) {
        v = fp8_e4m3_to_f32(code) * ql.scales[size_t(r)];
      } else {
        const int64_t g = r * ng + ql.group_of(c);
        const float zero = ql.symmetric ? sym_zero : ql.zeros[size_t(g)];
        v = (float(code) - zero) * ql.scales[size_t(g)];
      }
      if (!ql.smooth.empty()) v /= ql.smooth[size_t(c)];
      out[size_t(r * ql.cols + c)] = v;
    }
  }
}

std::vector<float> dequantize(const QuantizedLinear& ql) {
  std::vector<float> out(size_t(ql.rows * ql.cols));
  dequantize(ql, out.data());
  return out;
}

}  // namespace tern
