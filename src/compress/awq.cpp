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
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) wq[size_t(r * cols + c)] = w[r * cols + c] * s[size_t(c)];
    fake_quantize_rows(wq.data(), rows, cols, spec);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) wq[size_t(r * cols + c)] /= s[size_t(c)];
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

namespace {

struct LayerWork {
  std::array<std::vector<float>, kLinearKinds> w;  // f32 weights, scaled in place
  std::array<std::vector<float>, 4> s;             // the scale chosen for each input slot (empty: none)
  std::vector<float>& at(LinearKind k) { return w[size_t(k)]; }
};

// Searches and applies (to the weights' columns) the scale of one input slot shared by `kinds`.
void scale_slot(ExecContext& ctx, LayerWork& lw, const SlotStats& st, const std::vector<LinearKind>& kinds,
                const std::vector<int64_t>& rows_of, std::vector<float> mean_abs, const AwqOptions& opt) {
  const int64_t cols = st.cols;
  int64_t rows = 0;
  for (int64_t r : rows_of) rows += r;
  std::vector<float> stacked;
  stacked.reserve(size_t(rows * cols));
  for (LinearKind k : kinds) stacked.insert(stacked.end(), lw.at(k).begin(), lw.at(k).end());
  AwqScale best = awq_search_scale(ctx, st.sample.data(), st.n_sample(), stacked.data(), rows, cols, mean_abs,
                                   opt.spec, opt.grid, opt.duo_scaling);
  for (LinearKind k : kinds) {
    std::vector<float>& w = lw.at(k);
    for (size_t i = 0; i < w.size(); ++i) w[i] *= best.scale[i % size_t(cols)];
  }
  lw.s[size_t(linear_input(kinds[0]))] = std::move(best.scale);
}

}  // namespace

Result<QuantizedModel> quantize_model_awq(const Model& model, ExecContext& ctx, const CalibrationStats& stats,
                                          const AwqOptions& opt) {
  TERN_RETURN_IF_ERROR(check_quantizable(model));
  const ModelConfig& cfg = model.config();
  const auto& layers = model.weights().layers;
  if (stats.layers.size() != layers.size()) return Status::error("awq: calibration does not match the model");
  QuantizedModel qm;
  for (size_t l = 0; l < layers.size(); ++l) {
    const DecoderLayerWeights& src = layers[l];
    LayerWork lw;
    for (LinearKind k : kAllLinears) {
      const WeightMatrix& w = linear_weight(src, k);
      TERN_RETURN_IF_ERROR(validate_quant_spec(opt.spec, w.cols));
      TERN_ASSIGN_OR_RETURN(lw.at(k), weight_to_f32(w));
    }
    for (int s = 0; s < 4; ++s) {
      if (stats.layers[l][size_t(s)].n_sample() == 0) return Status::error("awq: calibration kept no sample rows");
    }
    auto rows = [&](LinearKind k) { return linear_weight(src, k).rows; };
    const SlotStats& attn_in = stats.at(int(l), LinearInput::kAttnIn);
    const SlotStats& attn_out = stats.at(int(l), LinearInput::kAttnOut);
    const SlotStats& mlp_in = stats.at(int(l), LinearInput::kMlpIn);
    const SlotStats& mlp_down = stats.at(int(l), LinearInput::kMlpDown);

    scale_slot(ctx, lw, attn_in, {LinearKind::kQ, LinearKind::kK, LinearKind::kV},
               {rows(LinearKind::kQ), rows(LinearKind::kK), rows(LinearKind::kV)}, attn_in.mean_abs(), opt);
    // o_proj: s must be equal across the query heads sharing a kv head to fold into v_proj's rows;
    // a v bias would have to be scaled too, so such layers keep o_proj unscaled.
    if (src.attn.v_bias.empty()) {
      std::vector<float> m = attn_out.mean_abs();
      const int hd = cfg.head_dim, rep = cfg.n_heads / cfg.n_kv_heads;
      std::vector<float> tied(m.size());
      for (int kv = 0; kv < cfg.n_kv_heads; ++kv)
        for (int d = 0; d < hd; ++d) {
          float sum = 0;
          for (int r = 0; r < rep; ++r) sum += m[size_t((kv * rep + r) * hd + d)];
          for (int r = 0; r < rep; ++r) tied[size_t((kv * rep + r) * hd + d)] = sum / float(rep);
        }
      scale_slot(ctx, lw, attn_out, {LinearKind::kO}, {rows(LinearKind::kO)}, tied, opt);
      const std::vector<float>& so = lw.s[size_t(LinearInput::kAttnOut)];
      std::vector<float>& v = lw.at(LinearKind::kV);
      for (int kv = 0; kv < cfg.n_kv_heads; ++kv)
        for (int d = 0; d < hd; ++d) {
          const float sv = so[size_t(kv * rep * hd + d)];
          float* row = v.data() + size_t(kv * hd + d) * size_t(cfg.hidden_size);
          for (int64_t c = 0; c < cfg.hidden_size; ++c) row[c] /= sv;
        }
    }
    scale_slot(ctx, lw, mlp_in, {LinearKind::kGate, LinearKind::kUp}, {rows(LinearKind::kGate), rows(LinearKind::kUp)},
               mlp_in.mean_abs(), opt);
    scale_slot(ctx, lw, mlp_down, {LinearKind::kDown}, {rows(LinearKind::kDown)}, mlp_down.mean_abs(), opt);
    {
      const std::vector<float>& sd = lw.s[size_t(LinearInput::kMlpDown)];
      std::vector<float>& up = lw.at(LinearKind::kUp);
      for (int64_t j = 0; j < cfg.intermediate_size; ++j)
        for (int64_t c = 0; c < cfg.hidden_size; ++c) up[size_t(j * cfg.hidden_size + c)] /= sd[size_t(j)];
    }

    LayerResult ql;
    ql.input_norm = src.attn_norm.weight;
    ql.post_attn_norm = src.ffn_norm.weight;
    ql.norms_changed = true;
    const std::vector<float>& s_in = lw.s[size_t(LinearInput::kAttnIn)];
    const std::vector<float>& s_mlp = lw.s[size_t(LinearInput::kMlpIn)];
    for (int64_t c = 0; c < cfg.hidden_size; ++c) ql.input_norm[size_t(c)] /= s_in[size_t(c)];
    for (int64_t c = 0; c < cfg.hidden_size; ++c) ql.post_attn_norm[size_t(c)] /= s_mlp[size_t(c)];
    for (LinearKind k : kAllLinears) {
      const SlotStats& st = stats.at(int(l), linear_input(k));
      const std::vector<float>& s = lw.s[size_t(linear_input(k))];
      // The clipping search sees the inputs as the scaled model produces them: x / s.
      const int64_t n = std::min(st.n_sample(), opt.clip_rows);
      std::vector<float> xs(st.sample.begin(), st.sample.begin() + n * st.cols);
      if (!s.empty())
        for (size_t i = 0; i < xs.size(); ++i) xs[i] /= s[i % size_t(st.cols)];
      const bool clip = opt.clip && k != LinearKind::kQ && k != LinearKind::kK;  // as AutoAWQ
      const WeightMatrix& w = linear_weight(src, k);
      AwqOptions mopt = opt;
      if (opt.spec_for) mopt.spec = opt.spec_for(linear_module_name(int(l), k));
      if (opt.gptq) {
        // x / s has the Hessian diag(1/s) · XᵀX · diag(1/s).
        if (st.xtx.empty()) return Status::error("awq+gptq: calibration ran without the Hessian");
        std::vector<double> h = st.xtx;
        if (!s.empty())
          for (int64_t i = 0; i < st.cols; ++i)
            for (int64_t j = 0; j < st.cols; ++j) h[size_t(i * st.cols + j)] /= double(s[size_t(i)]) * double(s[size_t(j)]);
        GptqOptions go;
        go.spec = mopt.spec, go.percdamp = opt.percdamp, go.mse_clip = opt.mse_clip;
        TERN_ASSIGN_OR_RETURN(ql.at(k), gptq_quantize_linear(ctx, lw.at(k).data(), w.rows, w.cols, h, go));
      } else {
        TERN_ASSIGN_OR_RETURN(ql.at(k), awq_quantize_clipped(ctx, lw.at(k).data(), w.rows, w.cols, xs.data(), n, mopt, clip));
      }
    }
    store_layer(qm, int(l), std::move(ql));
    if (opt.on_layer) opt.on_layer(int64_t(l) + 1, int64_t(layers.size()));
  }
  return qm;
}

Result<QuantizedModel> awq_quantize(ExecContext& ctx, const Model& model, const CalibData& calib,
                                    const QuantSpec& spec, const MethodOptions& options, const ProgressFn& progress) {
  CalibrationOptions copt;
  copt.sample_rows = 512;
  copt.hessian = options.awq_gptq;
  TERN_ASSIGN_OR_RETURN(CalibrationStats stats, calibrate(model, ctx, calib, copt, progress));
  AwqOptions o;
  o.spec = spec;
  o.spec_for = options.spec_for;
  o.gptq = options.awq_gptq, o.percdamp = options.damp, o.mse_clip = options.mse_clip;
  o.on_layer = [&](int64_t done, int64_t total) {
    if (progress) progress(stats.windows + done, stats.windows + total);
  };
  return quantize_model_awq(model, ctx, stats, o);
}

}  // namespace tern
