#include "compress/gptq.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>

#include "compress/dense_math.h"
#include "compress/mse_clip.h"

namespace tern {

namespace {

// What every linear reading the same input shares: the column order and U (H⁻¹ = UᵀU) in that order.
struct PreparedHessian {
  int64_t n = 0;
  std::vector<int64_t> perm;  // position -> original column
  std::vector<char> dead;     // [n] by original column
  std::vector<double> u;      // [n, n] in permuted order
};

Result<PreparedHessian> prepare_hessian(const std::vector<double>& h_in, int64_t n, const GptqOptions& opt) {
  if (int64_t(h_in.size()) != n * n) return Status::error("gptq: Hessian size does not match the layer");
  PreparedHessian p;
  p.n = n;
  std::vector<double> h = h_in;
  p.dead.assign(size_t(n), 0);
  double mean_diag = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (h[size_t(i * n + i)] == 0) p.dead[size_t(i)] = 1, h[size_t(i * n + i)] = 1;
    mean_diag += h[size_t(i * n + i)];
  }
  mean_diag /= double(n);
  p.perm.resize(size_t(n));
  std::iota(p.perm.begin(), p.perm.end(), 0);
  if (opt.act_order) {
    std::stable_sort(p.perm.begin(), p.perm.end(),
                     [&](int64_t a, int64_t b) { return h[size_t(a * n + a)] > h[size_t(b * n + b)]; });
  }
  std::vector<double> hp(size_t(n * n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) hp[size_t(i * n + j)] = h[size_t(p.perm[size_t(i)] * n + p.perm[size_t(j)])];
  // Dampening keeps the factorization stable; retry with more when H is numerically singular.
  double damp = opt.percdamp * mean_diag;
  for (int attempt = 0; attempt < 6; ++attempt, damp *= 10) {
    std::vector<double> hd = hp;
    for (int64_t i = 0; i < n; ++i) hd[size_t(i * n + i)] += damp;
    auto u = inverse_cholesky_upper(hd, n);
    if (u.is_ok()) {
      p.u = std::move(u).value();
      return p;
    }
  }
  return Status::error("gptq: the Hessian is not positive definite even after dampening");
}

// GPTQ on rows [r0, r1) of wp (permuted columns, f64, [rows, n]); codes and group params out.
void gptq_rows(const PreparedHessian& ph, const GptqOptions& opt, std::vector<double>& wp, int64_t r0, int64_t r1,
               QuantizedLinear& ql) {
  const int64_t n = ph.n, gs = opt.spec.group > 0 ? opt.spec.group : n, ng = n / gs;
  const int64_t bs = std::max(1, opt.block_size);
  const double* u = ph.u.data();
  std::vector<float> tmp(static_cast<size_t>(gs));
  std::vector<double> err(static_cast<size_t>(bs));
  std::vector<GroupParams> params(static_cast<size_t>(ng));
  // Static groups (act-order): every group's parameters from the original weights, in column order, so
  // the checkpoint needs no g_idx; the columns are still quantized in act-order.
  const bool static_groups = opt.act_order && opt.static_groups;
  std::vector<float> orig(static_groups ? size_t(n) : 0);
  for (int64_t r = r0; r < r1; ++r) {
    double* w = wp.data() + r * n;
    if (static_groups) {
      for (int64_t i = 0; i < n; ++i) orig[size_t(ph.perm[size_t(i)])] = float(w[i]);
      for (int64_t g = 0; g < ng; ++g)
        params[size_t(g)] = opt.mse_clip ? mse_group_params(orig.data() + g * gs, gs, opt.spec)
                                         : group_params(orig.data() + g * gs, gs, 1, opt.spec);
    }
    for (int64_t i1 = 0; i1 < n; i1 += bs) {
      const int64_t i2 = std::min(n, i1 + bs);
      for (int64_t i = i1; i < i2; ++i) {
        if (!static_groups && i % gs == 0) {  // group parameters from the current (error-compensated) weights
          for (int64_t j = 0; j < gs; ++j) tmp[size_t(j)] = float(w[i + j]);
          params[size_t(i / gs)] = opt.mse_clip ? mse_group_params(tmp.data(), gs, opt.spec)
                                                : group_params(tmp.data(), gs, 1, opt.spec);
        }
        const GroupParams gp = params[size_t(static_groups ? ph.perm[size_t(i)] / gs : i / gs)];
        const int code = quantize_value(float(w[i]), gp, opt.spec);
        ql.q[size_t(r * n + ph.perm[size_t(i)])] = uint8_t(code);
        const double e = (w[i] - double(dequantize_value(code, gp))) / u[i * n + i];
        err[size_t(i - i1)] = e;
        const double* ui = u + i * n;
        for (int64_t j = i + 1; j < i2; ++j) w[j] -= e * ui[j];
      }
      for (int64_t i = i1; i < i2; ++i) {  // lazy update of the columns after the block
        const double e = err[size_t(i - i1)];
        const double* ui = u + i * n;
        for (int64_t j = i2; j < n; ++j) w[j] -= e * ui[j];
      }
    }
    for (int64_t g = 0; g < ng; ++g) {
      ql.scales[size_t(r * ng + g)] = params[size_t(g)].scale;
      if (!opt.spec.symmetric) ql.zeros[size_t(r * ng + g)] = params[size_t(g)].zero;
    }
  }
}

Result<QuantizedLinear> gptq_with(ExecContext& ctx, const float* w, int64_t rows, int64_t cols,
                                  const PreparedHessian& ph, const GptqOptions& opt) {
  TERN_RETURN_IF_ERROR(validate_quant_spec(opt.spec, cols));
  if (ph.n != cols) return Status::error("gptq: Hessian size does not match the layer");
  const int64_t gs = opt.spec.group > 0 ? opt.spec.group : cols, ng = cols / gs;
  QuantizedLinear ql;
  ql.bits = opt.spec.bits, ql.group = opt.spec.group, ql.symmetric = opt.spec.symmetric;
  ql.rows = rows, ql.cols = cols;
  ql.q.resize(size_t(rows * cols));
  ql.scales.resize(size_t(rows * ng));
  if (!opt.spec.symmetric) ql.zeros.resize(size_t(rows * ng));
  std::vector<double> wp(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < cols; ++i) {
      const int64_t c = ph.perm[size_t(i)];
      wp[size_t(r * cols + i)] = ph.dead[size_t(c)] ? 0.0 : double(w[r * cols + c]);
    }
  ctx.pool().parallel_for(rows, 1, [&](int64_t r0, int64_t r1) { gptq_rows(ph, opt, wp, r0, r1, ql); });
  // With act-order the groups follow the permuted order; g_idx maps each original column to its group.
  if (opt.act_order && !opt.static_groups && opt.spec.group > 0) {
    ql.g_idx.resize(size_t(cols));
    for (int64_t i = 0; i < cols; ++i) ql.g_idx[size_t(ph.perm[size_t(i)])] = int32_t(i / gs);
  }
  return ql;
}

}  // namespace

Result<QuantizedLinear> gptq_quantize_linear(ExecContext& ctx, const float* w, int64_t rows, int64_t cols,
                                      const std::vector<double>& h, const GptqOptions& opt) {
  TERN_RETURN_IF_ERROR(validate_quant_spec(opt.spec, cols));
  TERN_ASSIGN_OR_RETURN(PreparedHessian ph, prepare_hessian(h, cols, opt));
  return gptq_with(ctx, w, rows, cols, ph, opt);
}

namespace {

// Layer l's linears whose input slot is in `mask` (bit LinearInput), from stats' Hessians, into ql.
Status quantize_layer_slots(const Model& model, ExecContext& ctx, const CalibrationStats& stats,
                            const GptqOptions& opt, int l, unsigned mask, LayerResult& ql) {
  const DecoderLayerWeights& lw = model.weights().layers[size_t(l)];
  std::array<std::optional<PreparedHessian>, 4> prepared;  // q/k/v and gate/up share theirs
  for (LinearKind k : kAllLinears) {
    if (!(mask >> unsigned(linear_input(k)) & 1u)) continue;
    const SlotStats& st = stats.at(l, linear_input(k));
    if (st.xtx.empty()) return Status::error("gptq: calibration ran without the Hessian");
    auto& ph = prepared[size_t(linear_input(k))];
    if (!ph) {
      auto p = prepare_hessian(st.xtx, st.cols, opt);
      if (!p.is_ok()) return p.status().with_context(fmt::format("layer {} {}", l, linear_name(k)));
      ph = std::move(p).value();
    }
    const WeightMatrix& w = linear_weight(lw, k);
    TERN_ASSIGN_OR_RETURN(std::vector<float> f, weight_to_f32(w));
    GptqOptions mopt = opt;
    if (opt.spec_for) mopt.spec = opt.spec_for(linear_module_name(l, k));
    TERN_ASSIGN_OR_RETURN(ql.at(k), gptq_with(ctx, f.data(), w.rows, w.cols, *ph, mopt));
  }
  return Status::ok();
}

LayerResult layer_result_for(const DecoderLayerWeights& lw) {
  LayerResult ql;
  ql.input_norm = lw.attn_norm.weight;
  ql.post_attn_norm = lw.ffn_norm.weight;
  return ql;
}

}  // namespace

Result<QuantizedModel> quantize_model_gptq(const Model& model, ExecContext& ctx, const CalibrationStats& stats,
                                           const GptqOptions& opt) {
  TERN_RETURN_IF_ERROR(check_quantizable(model));
  const auto& layers = model.weights().layers;
  if (stats.layers.size() != layers.size()) return Status::error("gptq: calibration does not match the model");
  QuantizedModel qm;
  for (size_t l = 0; l < layers.size(); ++l) {
    LayerResult ql = layer_result_for(layers[l]);
    TERN_RETURN_IF_ERROR(quantize_layer_slots(model, ctx, stats, opt, int(l), 0xFu, ql));
    store_layer(qm, int(l), std::move(ql));
    if (opt.on_layer) opt.on_layer(int64_t(l) + 1, int64_t(layers.size()));
  }
  return qm;
}

Result<QuantizedModel> quantize_model_gptq_sequential(const Model& model, ExecContext& ctx,
                                                      const std::vector<std::vector<int32_t>>& windows,
                                                      CalibrationOptions copt, const GptqOptions& opt,
                                                      GptqSequential mode) {
  if (mode == GptqSequential::kOff) return Status::error("gptq: sequential mode is off");
  TERN_RETURN_IF_ERROR(check_quantizable(model));
  if (windows.empty()) return Status::error("gptq: no calibration windows");
  // A private model over the same weights: the quantized linears replace its matrices stage by stage.
  TERN_ASSIGN_OR_RETURN(std::unique_ptr<Model> work, Model::load(model.dir()));
  const auto& layers = model.weights().layers;
  if (work->weights().layers.size() != layers.size()) return Status::error("gptq: the model changed on disk");
  TransformerWeights w = model.weights();
  work->replace_weights(w, nullptr);
  copt.hessian = true;
  std::vector<unsigned> masks = {0xFu};
  if (mode == GptqSequential::kPerInput) {
    masks.clear();
    for (LinearInput s : {LinearInput::kAttnIn, LinearInput::kAttnOut, LinearInput::kMlpIn, LinearInput::kMlpDown})
      masks.push_back(1u << unsigned(s));
  }
  const int64_t total = int64_t(layers.size() * masks.size());
  int64_t done = 0;
  QuantizedModel qm;
  for (size_t l = 0; l < layers.size(); ++l) {
    LayerResult ql = layer_result_for(layers[l]);
    for (unsigned mask : masks) {
      copt.only_layer = int(l), copt.slot_mask = mask;
      TERN_ASSIGN_OR_RETURN(CalibrationStats stats, calibrate(*work, ctx, windows, copt));
      TERN_RETURN_IF_ERROR(quantize_layer_slots(model, ctx, stats, opt, int(l), mask, ql));
      // The next stage sees these linears as the checkpoint will compute them (dequantized, f32).
      auto storage = std::make_shared<std::vector<std::vector<float>>>();
      for (LinearKind k : kAllLinears) {
        if (!(mask >> unsigned(linear_input(k)) & 1u)) continue;
        storage->push_back(dequantize(ql.at(k)));
        WeightMatrix& m = linear_weight(w.layers[l], k);
        m = WeightMatrix{};
        m.data = storage->back().data(), m.dtype = DType::F32, m.rows = ql.at(k).rows, m.cols = ql.at(k).cols;
      }
      work->replace_weights(w, std::move(storage));
      if (opt.on_layer) opt.on_layer(++done, total);
    }
    store_layer(qm, int(l), std::move(ql));
  }
  return qm;
}

Result<QuantizedModel> gptq_quantize(ExecContext& ctx, const Model& model, const CalibData& calib,
                                     const QuantSpec& spec, const MethodOptions& options, const ProgressFn& progress) {
  if (options.sequential < 0 || options.sequential > 2) return Status::error("gptq: sequential must be 0, 1 or 2");
  GptqOptions o;
  o.spec = spec;
  o.percdamp = options.damp;
  o.act_order = options.act_order;
  o.mse_clip = options.mse_clip;
  o.static_groups = options.static_groups;
  o.spec_for = options.spec_for;
  CalibrationOptions copt;
  copt.hessian = true;
  if (options.sequential > 0) {  // progress in stages (one calibration pass each)
    copt.window = calib.seq_len, copt.max_windows = calib.max_windows;
    auto windows = calibration_windows(calib.tokens, calib.seq_len, calib.max_windows);
    if (!windows.is_ok()) return windows.status().with_context("calibration");
    o.on_layer = progress;
    return quantize_model_gptq_sequential(model, ctx, *windows, copt, o,
                                          options.sequential == 1 ? GptqSequential::kPerLayer : GptqSequential::kPerInput);
  }
  TERN_ASSIGN_OR_RETURN(CalibrationStats stats, calibrate(model, ctx, calib, copt, progress));
  o.on_layer = [&](int64_t done, int64_t total) {
    if (progress) progress(stats.windows + done, stats.windows + total);
  };
  return quantize_model_gptq(model, ctx, stats, o);
}

}  // namespace tern
