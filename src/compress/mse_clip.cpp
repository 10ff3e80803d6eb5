#include "compress/mse_clip.h"

namespace tern {

GroupParams mse_group_params(const float* w, int64_t n, const QuantSpec& spec) {
  GroupParams best = group_params(w, n, 1, spec);
  double best_err = -1;
  for (int step = 0; step <= 25; ++step) {
    const GroupParams p = step == 0 ? best : group_params(w, n, 1, spec, 1.0f - 0.01f * float(step));
    double err = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double d = double(w[i]) - double(fake_quantize(w[i], p, spec));
      err += d * d;
    }
    if (best_err < 0 || err < best_err) best_err = err, best = p;
  }
  return best;
}

Result<QuantizedLinear> quantize_rtn_mse(const float* w, int64_t rows, int64_t cols, const QuantSpec& spec,
                                         ThreadPool* pool) {
  TERN_RETURN_IF_ERROR(validate_quant_spec(spec, cols));
  QuantizedLinear ql = sized_quantized_linear(rows, cols, spec);
  const int64_t gs = spec.group > 0 ? spec.group : cols, ng = cols / gs;
  auto rows_fn = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t g = 0; g < ng; ++g) {
        const float* src = w + r * cols + g * gs;
        const GroupParams p = mse_group_params(src, gs, spec);
        ql.scales[size_t(r * ng + g)] = p.scale;
        if (!spec.symmetric) ql.zeros[size_t(r * ng + g)] = p.zero;
        for (int64_t i = 0; i < gs; ++i) ql.q[size_t(r * cols + g * gs + i)] = uint8_t(quantize_value(src[i], p, spec));
      }
    }
  };
  if (pool) pool->parallel_for(rows, 1, rows_fn);
  else rows_fn(0, rows);
  return ql;
}

}  // namespace tern
