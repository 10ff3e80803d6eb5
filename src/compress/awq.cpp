#include "compress/awq.h"

#include "compress/gptq.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "compress/dense_math.h"

namespace tern {

namespace {

// In place: w [rows, cols] -> dequant(quant(w)), group-wise.
void fake_quantize_rows(float* w, int64_t rows, int64_t cols, const QuantSpec& spec) {
  const int64_t gs = spec.group > 0 ? spec.group : cols;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < cols; g += gs) {
      float* p = w + r * cols + g;
      const GroupParams gp = group_params(p, gs, 1, spec);
      for (int64_t i = 0; i < gs; ++i) p[i] = fake_quantize(p[i], gp, spec);
    }
}

double mse(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i] - b[i]) * double(a[i] - b[i]);
  return a.empty() ? 0 : s / double(a.size());
}

}  // namespace

AwqScale awq_search_scale(ExecContext& ctx, const float* x, int64_t n, const float* w, int64_t rows, int64_t cols,
                          const std::vector<float>& mean_abs, const QuantSpec& spec, int grid, bool duo_scaling) {
  std::vector<float> y_ref(size_t(n * rows)), y(size_t(n * rows)), wq(size_t(rows * cols));
  matmul_f32(ctx, x, n, w, rows, cols, y_ref.data());
  // w_mean [cols]: mean over rows of |w| relative to the max of its quantization group.
  std::vector<float> w_mean(static_cast<size_t>(cols), 1.0f);
  if (duo_scaling) {
    std::fill(w_mean.begin(), w_mean.end(), 0.0f);
    const int64_t gs = spec.group > 0 ? spec.group : cols;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g = 0; g < cols; g += gs) {
        const float* p = w + r * cols + g;
        float mx = 0;
        for (int64_t i = 0; i < gs; ++i) mx = std::max(mx, std::fabs(p[i]));
        for (int64_t i = 0; i < gs; ++i) w_mean[size_t(g + i)] += std::fabs(p[i]) / (mx + 1e-6f) / float(rows);
      }
  }
  AwqScale best;
  std::vector<float> s(static_cast<size_t>(cols));
  // k = -1 is plain RTN (s = 1), the reference every alpha must beat.
  for (int k = -1; k < std::max(1, grid); ++k) {
    const float alpha = k < 0 ? 0.0f : float(k) / float(std::max(1, grid));
    float smax = 0, smin = INFINITY;
    for (int64_t c = 0; c < cols; ++c) {
      if (k < 0) {
        s[size_t(c)] = 1.0f;
        continue;
      }
      s[size_t(c)] = duo_scaling ? std::max(std::pow(mean_abs[size_t(c)], alpha) /
                                                 (std::pow(w_mean[size_t(c)], 1.0f - alpha) + 1e-4f), 1e-4f)
                                 : std::pow(std::max(mean_abs[size_t(c)], 1e-4f), alpha);
    }
    for (float v : s) smax = std::max(smax, v), smin = std::min(smin, v);
    // Normalise around 1 (as AutoAWQ does) so the scaled weights keep their magnitude.
    const float norm = std::sqrt(smax * smin);
    for (float& v : s) v /= norm;
    // wq = dequant(quant(w · diag(s))) / s, rows in parallel (experts: 128 searches per layer).
    ctx.pool().parallel_for(rows, 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = 0; c < cols; ++c) wq[size_t(r * cols + c)] = w[r * cols + c] * s[size_t(c)];
      fake_quantize_rows(wq.data() + r0 * cols, r1 - r0, cols, spec);
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = 0; c < cols; ++c) wq[size_t(r * cols + c)] /= s[size_t(c)];
    });
    matmul_f32(ctx, x, n, wq.data(), rows, cols, y.data());
    const double loss = mse(y, y_ref);
    if (k < 0) best.loss_rtn = loss;
    if (k < 0 || loss < best.loss) best.loss = loss, best.alpha = alpha, best.scale = s;
  }
  return best;
}

Result<QuantizedLinear> awq_quantize_clipped(ExecContext& ctx, const float* w, int64_t rows, int64_t cols,
                                             const float* x, int64_t n, const AwqOptions& opt, bool clip) {
  const QuantSpec& spec = opt.spec;
  TERN_ASSIGN_OR_RETURN(QuantizedLinear ql, quantize_rtn(w, rows, cols, spec));
  n = std::min(n, opt.clip_rows);
  if (!clip || n <= 0 || opt.clip_grid <= 1) return ql;
  const int64_t gs = spec.group > 0 ? spec.group : cols, ng = cols / gs;
  std::vector<float> xg(size_t(n * gs)), d(size_t(rows * gs)), e(size_t(n * rows));
  std::vector<double> best_err(static_cast<size_t>(rows));
  std::vector<float> best_clip(static_cast<size_t>(rows));
  for (int64_t g = 0; g < ng; ++g) {
    for (int64_t i = 0; i < n; ++i) std::copy_n(x + i * cols + g * gs, gs, xg.begin() + i * gs);
    for (int k = 0; k < opt.clip_grid; ++k) {
      const float ratio = 1.0f - opt.max_shrink * float(k) / float(opt.clip_grid);
      for (int64_t r = 0; r < rows; ++r) {
        const float* wr = w + r * cols + g * gs;
        const GroupParams gp = group_params(wr, gs, 1, spec, ratio);
        for (int64_t j = 0; j < gs; ++j) d[size_t(r * gs + j)] = wr[j] - fake_quantize(wr[j], gp, spec);
      }
      // e [n, rows]: this group's contribution to the output error of every row.
      matmul_f32(ctx, xg.data(), n, d.data(), rows, gs, e.data());
      for (int64_t r = 0; r < rows; ++r) {
        double s = 0;
        for (int64_t i = 0; i < n; ++i) s += double(e[size_t(i * rows + r)]) * double(e[size_t(i * rows + r)]);
        if (k == 0 || s < best_err[size_t(r)]) best_err[size_t(r)] = s, best_clip[size_t(r)] = ratio;
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      const float* wr = w + r * cols + g * gs;
      const GroupParams gp = group_params(wr, gs, 1, spec, best_clip[size_t(r)]);
      ql.scales[size_t(r * ng + g)] = gp.scale;
      if (!spec.symmetric) ql.zeros[size_t(r * ng + g)] = gp.zero;
      for (int64_t j = 0; j < gs; ++j) ql.q[size_t(r * cols + g * gs + j)] = uint8_t(quantize_value(wr[j], gp, spec));
    }
  }
  return ql;
}

Result<QuantizedModel> awq_quantize(ExecContext& ctx, const Model& model, const CalibData& calib,
                                    const QuantSpec& spec, const MethodOptions& options, const ProgressFn& progress) {
  CalibrationOptions copt;
  copt.sample_rows = 512;
  copt.hessian = options.awq_gptq;
  AwqOptions o;
  o.spec = spec;
  o.spec_for = options.spec_for;
  o.gptq = options.awq_gptq, o.percdamp = options.damp, o.mse_clip = options.mse_clip;
  if (model.config().moe.enabled()) {
    // Per expert: its own sample (searches cost rows × experts) and, with GPTQ rounding, its own
    // Hessian; one layer at a time so memory holds one layer's (calibrate_by_layer).
    copt.expert_sample_rows = 64;
    QuantizedModel qm;
    AwqLog log;
    TERN_RETURN_IF_ERROR(calibrate_by_layer(model, ctx, calib, copt, progress, [&](int l, const CalibrationStats& st) {
      return quantize_model_awq_layer(model, ctx, st, o, l, qm, &log);
    }));
    log.print();
    return qm;
  }
  TERN_ASSIGN_OR_RETURN(CalibrationStats stats, calibrate(model, ctx, calib, copt, progress));
  o.on_layer = [&](int64_t done, int64_t total) {
    if (progress) progress(stats.windows + done, stats.windows + total);
  };
  return quantize_model_awq(model, ctx, stats, o);
}

}  // namespace tern
