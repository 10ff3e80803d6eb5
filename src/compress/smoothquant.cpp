#include "compress/smoothquant.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "compress/smoothquant_search.h"

namespace tern {

std::vector<float> smoothquant_scales(const std::vector<float>& act_max, const std::vector<float>& w_max,
                                      double alpha) {
  std::vector<float> s(act_max.size(), 1.0f);
  for (size_t j = 0; j < s.size(); ++j) {
    const double a = act_max[j], w = w_max[j];
    if (a <= 0 || w <= 0) continue;
    s[j] = float(std::clamp(std::pow(a, alpha) / std::pow(w, 1.0 - alpha), 1e-5, 1e5));
  }
  return s;
}

double activation_outlier_ratio(const std::vector<float>& act_max, const std::vector<float>& s) {
  std::vector<float> m(act_max.size());
  for (size_t j = 0; j < m.size(); ++j) m[j] = s.empty() ? act_max[j] : act_max[j] / s[j];
  if (m.empty()) return 0;
  const float mx = *std::max_element(m.begin(), m.end());
  std::nth_element(m.begin(), m.begin() + m.size() / 2, m.end());
  const float med = m[m.size() / 2];
  return med > 0 ? double(mx) / double(med) : INFINITY;
}

namespace {

// Column maxima of |w| over the stacked linears: [cols].
std::vector<float> weight_col_max(const std::vector<const std::vector<float>*>& ws, int64_t cols) {
  std::vector<float> m(size_t(cols), 0.0f);
  for (const auto* w : ws)
    for (size_t i = 0; i < w->size(); ++i) m[i % size_t(cols)] = std::max(m[i % size_t(cols)], std::fabs((*w)[i]));
  return m;
}

void scale_cols(std::vector<float>& w, const std::vector<float>& s) {
  for (size_t i = 0; i < w.size(); ++i) w[i] *= s[i % s.size()];
}

}  // namespace

Result<SmoothedLayer> smooth_layer(const Model& model, const CalibrationStats& stats, int l,
                                   const SmoothQuantOptions& opt) {
  const ModelConfig& cfg = model.config();
  const auto& layers = model.weights().layers;
  if (stats.layers.size() != layers.size() || l < 0 || size_t(l) >= layers.size())
    return Status::error("smoothquant: calibration does not match the model");
  if (!opt.layer_alpha.empty() && opt.layer_alpha.size() != layers.size())
    return Status::error("smoothquant: per-layer alpha does not match the model");
  std::array<double, 4> alpha;
  alpha.fill(opt.alpha);
  if (!opt.layer_alpha.empty()) alpha = opt.layer_alpha[size_t(l)];
  for (double a : alpha)
    if (!(a >= 0 && a <= 1)) return Status::error(fmt::format("smoothquant alpha {} is outside [0, 1]", a));
  auto alpha_of = [&](LinearInput slot) { return alpha[size_t(slot)]; };
  const DecoderLayerWeights& src = layers[size_t(l)];
  SmoothedLayer out;
  auto& w = out.w;
  for (LinearKind k : kAllLinears) {
    TERN_RETURN_IF_ERROR(validate_quant_spec(opt.spec, linear_weight(src, k).cols));
    TERN_ASSIGN_OR_RETURN(w[size_t(k)], weight_to_f32(linear_weight(src, k)));
  }
  auto W = [&](LinearKind k) -> std::vector<float>& { return w[size_t(k)]; };
  out.input_norm = src.attn_norm.weight;
  out.post_attn_norm = src.ffn_norm.weight;

  const int64_t H = cfg.hidden_size, I = cfg.intermediate_size;
  const auto s_attn = smoothquant_scales(stats.at(l, LinearInput::kAttnIn).abs_max,
                                         weight_col_max({&W(LinearKind::kQ), &W(LinearKind::kK), &W(LinearKind::kV)}, H),
                                         alpha_of(LinearInput::kAttnIn));
  out.s[size_t(LinearInput::kAttnIn)] = s_attn;
  for (LinearKind k : {LinearKind::kQ, LinearKind::kK, LinearKind::kV}) scale_cols(W(k), s_attn);
  for (int64_t c = 0; c < H; ++c) out.input_norm[size_t(c)] /= s_attn[size_t(c)];
  const auto s_mlp = smoothquant_scales(stats.at(l, LinearInput::kMlpIn).abs_max,
                                        weight_col_max({&W(LinearKind::kGate), &W(LinearKind::kUp)}, H),
                                        alpha_of(LinearInput::kMlpIn));
  out.s[size_t(LinearInput::kMlpIn)] = s_mlp;
  for (LinearKind k : {LinearKind::kGate, LinearKind::kUp}) scale_cols(W(k), s_mlp);
  for (int64_t c = 0; c < H; ++c) out.post_attn_norm[size_t(c)] /= s_mlp[size_t(c)];

  // o_proj reads the attention output, which is linear in v_proj's output: scaling v_proj's rows by 1/s
  // scales o_proj's input exactly. Query heads sharing a kv head share its v rows, so s is tied across
  // them (the max of their activation and weight maxima). A v bias would need the same scale: skipped.
  if (opt.smooth_o && src.attn.v_bias.empty()) {
    const int64_t hd = cfg.head_dim, rep = cfg.n_heads / cfg.n_kv_heads, O = cfg.n_heads * hd;
    const std::vector<float>& am = stats.at(l, LinearInput::kAttnOut).abs_max;
    const std::vector<float> wm = weight_col_max({&W(LinearKind::kO)}, O);
    std::vector<float> a_kv(size_t(cfg.n_kv_heads * hd), 0.0f), w_kv(a_kv.size(), 0.0f);
    for (int64_t h = 0; h < cfg.n_heads; ++h)
      for (int64_t d = 0; d < hd; ++d) {
        const size_t kv = size_t((h / rep) * hd + d), c = size_t(h * hd + d);
        a_kv[kv] = std::max(a_kv[kv], am[c]), w_kv[kv] = std::max(w_kv[kv], wm[c]);
      }
    const auto s_kv = smoothquant_scales(a_kv, w_kv, alpha_of(LinearInput::kAttnOut));
    std::vector<float> s_o(static_cast<size_t>(O));
    for (int64_t h = 0; h < cfg.n_heads; ++h)
      for (int64_t d = 0; d < hd; ++d) s_o[size_t(h * hd + d)] = s_kv[size_t((h / rep) * hd + d)];
    scale_cols(W(LinearKind::kO), s_o);
    out.s[size_t(LinearInput::kAttnOut)] = s_o;
    for (int64_t r = 0; r < cfg.n_kv_heads * hd; ++r)
      for (int64_t c = 0; c < H; ++c) W(LinearKind::kV)[size_t(r * H + c)] /= s_kv[size_t(r)];
  }
  if (opt.smooth_down) {  // silu(gate) * up is linear in up, so up's rows absorb 1/s exactly
    const auto s_down = smoothquant_scales(stats.at(l, LinearInput::kMlpDown).abs_max,
                                           weight_col_max({&W(LinearKind::kDown)}, I), alpha_of(LinearInput::kMlpDown));
    scale_cols(W(LinearKind::kDown), s_down);
    out.s[size_t(LinearInput::kMlpDown)] = s_down;
    for (int64_t j = 0; j < I; ++j)
      for (int64_t c = 0; c < H; ++c) W(LinearKind::kUp)[size_t(j * H + c)] /= s_down[size_t(j)];
  }
  return out;
}

Result<QuantizedModel> quantize_model_smoothquant(const Model& model, const CalibrationStats& stats,
                                                  const SmoothQuantOptions& opt) {
  TERN_RETURN_IF_ERROR(check_quantizable(model));
  const auto& layers = model.weights().layers;
  if (stats.layers.size() != layers.size()) return Status::error("smoothquant: calibration does not match the model");
  QuantizedModel qm;
  qm.int8_activations = true;
  for (size_t l = 0; l < layers.size(); ++l) {
    TERN_ASSIGN_OR_RETURN(SmoothedLayer sl, smooth_layer(model, stats, int(l), opt));
    LayerResult ql;
    ql.input_norm = std::move(sl.input_norm);
    ql.post_attn_norm = std::move(sl.post_attn_norm);
    ql.norms_changed = true;
    for (LinearKind k : kAllLinears) {
      const WeightMatrix& m = linear_weight(layers[l], k);
      TERN_ASSIGN_OR_RETURN(ql.at(k), quantize_rtn(sl.w[size_t(k)].data(), m.rows, m.cols, opt.spec));
    }
    store_layer(qm, int(l), std::move(ql));
  }
  return qm;
}

Result<QuantizedModel> smoothquant_quantize(ExecContext& ctx, const Model& model, const CalibData& calib,
                                            const QuantSpec& spec, const MethodOptions& options,
                                            const ProgressFn& progress) {
  CalibrationOptions copt;
  if (options.alpha_search) copt.sample_rows = 512;  // the rows the α search measures the output error on
  TERN_ASSIGN_OR_RETURN(CalibrationStats stats, calibrate(model, ctx, calib, copt, progress));
  SmoothQuantOptions o;
  o.alpha = options.alpha;
  o.spec = spec;
  if (options.alpha_search) {
    TERN_ASSIGN_OR_RETURN(o.layer_alpha, search_smoothquant_alpha(ctx, model, stats, o, default_alpha_grid()));
  }
  auto qm = quantize_model_smoothquant(model, stats, o);
  if (progress) progress(stats.windows + model.config().n_layers, stats.windows + model.config().n_layers);
  return qm;
}

}  // namespace tern
