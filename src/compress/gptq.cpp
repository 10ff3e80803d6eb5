#include "compress/gptq.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>

#include "compress/dense_math.h"
#include "compress/mse_clip.h"
#include "compress/model_linears.h"

namespace tern {

namespace {

// What every linear reading the same input shares: the column order and U (H⁻¹ = UᵀU) in that order.
struct PreparedHessian {
  int64_t n = 0;
  std::vector<int64_t> perm;  // position -> original column
  std::vector<char> dead;     // [n] by original column
  std::vector<double> u;      // [n, n] in permuted order
};

Result<PreparedHessian> prepare_hessian(const std::vector<double>& h_in, int64_t n, const GptqOptions& opt,
                                        ThreadPool* pool = nullptr) {
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
    auto u = inverse_cholesky_upper(hd, n, pool);
    if (u.is_ok()) {
      p.u = std::move(u).value();
      return p;
    }
  }
  return Status::error("gptq: the Hessian is not positive definite even after dampening");
}

// GPTQ on rows [r0, r1) of wp (permuted columns, f64, [rows, n]); codes and group params out. Rows
// are independent; they go in tiles of kTile so that each row of U (streamed once per column of the
// block) serves the whole tile from cache instead of being re-read from memory for every row. Each
// row sees the same operations in the same order as one row at a time would.
void gptq_rows(const PreparedHessian& ph, const GptqOptions& opt, std::vector<double>& wp, int64_t r0, int64_t r1,
               QuantizedLinear& ql) {
  constexpr int64_t kTile = 16;
  const int64_t n = ph.n, gs = opt.spec.group > 0 ? opt.spec.group : n, ng = n / gs;
  const int64_t bs = std::max(1, opt.block_size);
  const double* u = ph.u.data();
  std::vector<float> tmp(static_cast<size_t>(gs));
  std::vector<double> err(size_t(kTile * bs));
  std::vector<GroupParams> params(size_t(kTile * ng));
  // Static groups (act-order): every group's parameters from the original weights, in column order, so
  // the checkpoint needs no g_idx; the columns are still quantized in act-order.
  const bool static_groups = opt.act_order && opt.static_groups;
  std::vector<float> orig(static_groups ? size_t(n) : 0);
  for (int64_t t0 = r0; t0 < r1; t0 += kTile) {
    const int64_t nt = std::min(r1 - t0, kTile);
    if (static_groups) {
      for (int64_t t = 0; t < nt; ++t) {
        const double* w = wp.data() + (t0 + t) * n;
        for (int64_t i = 0; i < n; ++i) orig[size_t(ph.perm[size_t(i)])] = float(w[i]);
        for (int64_t g = 0; g < ng; ++g)
          params[size_t(t * ng + g)] = opt.mse_clip ? mse_group_params(orig.data() + g * gs, gs, opt.spec)
                                                    : group_params(orig.data() + g * gs, gs, 1, opt.spec);
      }
    }
    for (int64_t i1 = 0; i1 < n; i1 += bs) {
      const int64_t i2 = std::min(n, i1 + bs);
      for (int64_t i = i1; i < i2; ++i) {
        const double* ui = u + i * n;
        for (int64_t t = 0; t < nt; ++t) {
          double* w = wp.data() + (t0 + t) * n;
          if (!static_groups && i % gs == 0) {  // group parameters from the current (error-compensated) weights
            for (int64_t j = 0; j < gs; ++j) tmp[size_t(j)] = float(w[i + j]);
            params[size_t(t * ng + i / gs)] = opt.mse_clip ? mse_group_params(tmp.data(), gs, opt.spec)
                                                           : group_params(tmp.data(), gs, 1, opt.spec);
          }
          const GroupParams gp = params[size_t(t * ng + (static_groups ? ph.perm[size_t(i)] / gs : i / gs))];
          const int code = quantize_value(float(w[i]), gp, opt.spec);
          ql.q[size_t((t0 + t) * n + ph.perm[size_t(i)])] = uint8_t(code);
          const double e = (w[i] - double(dequantize_value(code, gp))) / ui[i];
          err[size_t(t * bs + i - i1)] = e;
          for (int64_t j = i + 1; j < i2; ++j) w[j] -= e * ui[j];
        }
      }
      obs_lazy_block_update(wp.data() + t0 * n, nt, n, u, err.data(), bs, i1, i2);
    }
    for (int64_t t = 0; t < nt; ++t)
      for (int64_t g = 0; g < ng; ++g) {
        ql.scales[size_t((t0 + t) * ng + g)] = params[size_t(t * ng + g)].scale;
        if (!opt.spec.symmetric) ql.zeros[size_t((t0 + t) * ng + g)] = params[size_t(t * ng + g)].zero;
      }
  }
}

Result<QuantizedLinear> gptq_with(ExecContext& ctx, const float* w, int64_t rows, int64_t cols,
                                  const PreparedHessian& ph, const GptqOptions& opt) {
  TERN_RETURN_IF_ERROR(validate_quant_spec(opt.spec, cols));
  if (ph.n != cols) return Status::error("gptq: Hessian size does not match the layer");
  const int64_t gs = opt.spec.group > 0 ? opt.spec.group : cols;
  QuantizedLinear ql = sized_quantized_linear(rows, cols, opt.spec);
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
  TERN_ASSIGN_OR_RETURN(PreparedHessian ph, prepare_hessian(h, cols, opt, &ctx.pool()));
  return gptq_with(ctx, w, rows, cols, ph, opt);
}

struct GptqHessian {
  PreparedHessian p;
};

Result<std::shared_ptr<const GptqHessian>> gptq_prepare(ExecContext& ctx, const std::vector<double>& h, int64_t cols,
                                                        const GptqOptions& opt) {
  auto out = std::make_shared<GptqHessian>();
  TERN_ASSIGN_OR_RETURN(out->p, prepare_hessian(h, cols, opt, &ctx.pool()));
  return std::shared_ptr<const GptqHessian>(std::move(out));
}

Result<QuantizedLinear> gptq_quantize_prepared(ExecContext& ctx, const float* w, int64_t rows, int64_t cols,
                                               const GptqHessian& h, const GptqOptions& opt) {
  return gptq_with(ctx, w, rows, cols, h.p, opt);
}

namespace {

bool in_mask(const InputRef& r, unsigned mask) { return mask >> unsigned(r.slot) & 1u; }

// Layer ll's linears whose input slot is in `mask` (bit LinearInput; an expert's input follows its
// slot), from stats' Hessians, into out[site]. An expert that no calibration row reached has no
// Hessian: it is rounded to nearest (MSE-clipped when asked), counted in *rtn_experts.
Status quantize_layer_sites(ExecContext& ctx, const CalibrationStats& stats, const GptqOptions& opt,
                            const LayerLinears& ll, unsigned mask, std::vector<QuantizedLinear>& out,
                            int64_t* rtn_experts) {
  // Linears reading one input share its factorization; sites of one input come in a run (q/k/v, an
  // expert's gate and up), so only the last one is kept (an expert's is 32 MiB at hidden 2048).
  std::optional<std::pair<InputRef, PreparedHessian>> last;
  for (size_t i = 0; i < ll.sites.size(); ++i) {
    const LinearSite& site = ll.sites[i];
    if (!in_mask(site.input, mask)) continue;
    const SlotStats& st = stats.at(site.input);
    const WeightMatrix& w = *site.w;
    GptqOptions mopt = opt;
    if (opt.spec_for) mopt.spec = opt.spec_for(site.module);
    TERN_ASSIGN_OR_RETURN(std::vector<float> f, weight_to_f32(w));
    if (st.rows == 0 && site.input.expert >= 0) {
      ++*rtn_experts;
      TERN_RETURN_IF_ERROR(validate_quant_spec(mopt.spec, w.cols));
      TERN_ASSIGN_OR_RETURN(out[i], opt.mse_clip ? quantize_rtn_mse(f.data(), w.rows, w.cols, mopt.spec, &ctx.pool())
                                                  : quantize_rtn(f.data(), w.rows, w.cols, mopt.spec));
      continue;
    }
    if (st.xtx.empty()) return Status::error(fmt::format("gptq: {}: calibration ran without the Hessian", site.name));
    if (!last || !(last->first == site.input)) {
      last.reset();
      auto p = prepare_hessian(st.xtx, st.cols, opt, &ctx.pool());
      if (!p.is_ok()) return p.status().with_context(site.name);
      last.emplace(site.input, std::move(p).value());
    }
    auto q = gptq_with(ctx, f.data(), w.rows, w.cols, last->second, mopt);
    if (!q.is_ok()) return q.status().with_context(site.name);
    out[i] = std::move(q).value();
  }
  return Status::ok();
}

void log_rtn_experts(int64_t n) {
  if (n > 0) {
    fmt::print(stderr, "[tern] gptq: {} expert matrices saw no calibration rows (no Hessian): rounded to nearest\n", n);
  }
}

}  // namespace

Result<QuantizedModel> quantize_model_gptq(const Model& model, ExecContext& ctx, const CalibrationStats& stats,
                                           const GptqOptions& opt) {
  TERN_ASSIGN_OR_RETURN(ModelLinears ml, model_linears(model));
  if (stats.layers.size() != ml.layers.size()) return Status::error("gptq: calibration does not match the model");
  QuantizedModel qm;
  int64_t rtn_experts = 0;
  for (size_t l = 0; l < ml.layers.size(); ++l) {
    TERN_RETURN_IF_ERROR(quantize_model_gptq_layer(model, ctx, stats, opt, int(l), qm, &rtn_experts));
    if (opt.on_layer) opt.on_layer(int64_t(l) + 1, int64_t(ml.layers.size()));
  }
  log_rtn_experts(rtn_experts);
  return qm;
}

Status quantize_model_gptq_layer(const Model& model, ExecContext& ctx, const CalibrationStats& stats,
                                 const GptqOptions& opt, int layer, QuantizedModel& qm, int64_t* rtn_experts) {
  TERN_ASSIGN_OR_RETURN(ModelLinears ml, model_linears(model));
  if (layer < 0 || size_t(layer) >= ml.layers.size() || stats.layers.size() != ml.layers.size())
    return Status::error("gptq: calibration does not match the model");
  const LayerLinears& ll = ml.layers[size_t(layer)];
  std::vector<QuantizedLinear> out(ll.sites.size());
  TERN_RETURN_IF_ERROR(quantize_layer_sites(ctx, stats, opt, ll, 0x1Fu, out, rtn_experts));
  return store_sites(qm, ll, std::move(out));
}

Result<QuantizedModel> quantize_model_gptq_sequential(const Model& model, ExecContext& ctx,
                                                      const std::vector<std::vector<int32_t>>& windows,
                                                      CalibrationOptions copt, const GptqOptions& opt,
                                                      GptqSequential mode) {
  if (mode == GptqSequential::kOff) return Status::error("gptq: sequential mode is off");
  if (windows.empty()) return Status::error("gptq: no calibration windows");
  TERN_ASSIGN_OR_RETURN(ModelLinears base_list, model_linears(model));
  // A private model over the same weights: the quantized linears replace its matrices stage by stage.
  TERN_ASSIGN_OR_RETURN(std::unique_ptr<Model> work, Model::load(model.dir()));
  if (work->weights().layers.size() != base_list.layers.size()) return Status::error("gptq: the model changed on disk");
  TransformerWeights w = unshare_blocks(model.weights());
  TERN_ASSIGN_OR_RETURN(ModelLinears ml, model_linears(model, w));  // pointers into w
  work->replace_weights(w, nullptr);
  copt.hessian = true;
  std::vector<unsigned> masks = {0x1Fu};
  if (mode == GptqSequential::kPerInput) {
    masks.clear();  // forward order; MLA's q_b input comes between q_a and o
    for (LinearInput s : {LinearInput::kAttnIn, LinearInput::kQLatent, LinearInput::kAttnOut, LinearInput::kMlpIn,
                          LinearInput::kMlpDown}) {
      if (s == LinearInput::kQLatent && model.config().mla.q_lora_rank <= 0) continue;  // MLA's q_b only
      masks.push_back(1u << unsigned(s));
    }
  }
  const int64_t total = int64_t(ml.layers.size() * masks.size());
  int64_t done = 0, rtn_experts = 0;
  QuantizedModel qm;
  for (size_t l = 0; l < ml.layers.size(); ++l) {
    const LayerLinears& ll = ml.layers[l];
    std::vector<QuantizedLinear> out(ll.sites.size());
    for (unsigned mask : masks) {
      bool any = false;
      for (const LinearSite& s : ll.sites) any |= in_mask(s.input, mask);
      if (!any) {  // e.g. kQLatent on a model without MLA
        if (opt.on_layer) opt.on_layer(++done, total);
        continue;
      }
      copt.only_layer = int(l), copt.slot_mask = mask;
      TERN_ASSIGN_OR_RETURN(CalibrationStats stats, calibrate(*work, ctx, windows, copt));
      TERN_RETURN_IF_ERROR(quantize_layer_sites(ctx, stats, opt, ll, mask, out, &rtn_experts));
      // The next stage sees these linears as the checkpoint will compute them (dequantized, f32).
      auto storage = std::make_shared<std::vector<std::vector<float>>>();
      for (size_t i = 0; i < ll.sites.size(); ++i) {
        if (!in_mask(ll.sites[i].input, mask)) continue;
        storage->push_back(dequantize(out[i]));
        WeightMatrix& m = const_cast<WeightMatrix&>(*ll.sites[i].w);
        m = WeightMatrix{};
        m.data = storage->back().data(), m.dtype = DType::F32, m.rows = out[i].rows, m.cols = out[i].cols;
      }
      work->replace_weights(w, std::move(storage));
      if (opt.on_layer) opt.on_layer(++done, total);
    }
    // The stored results are the quantized ones; `w` now points at their dequantized copies, so the
    // module names come from base_list (same order).
    TERN_RETURN_IF_ERROR(store_sites(qm, base_list.layers[l], std::move(out)));
  }
  log_rtn_experts(rtn_experts);
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
  if (model.config().moe.enabled()) {
    // One Hessian per expert input: a whole model's at once would not fit (Qwen3-30B-A3B: 128 experts ×
    // [2048, 2048] f64 per layer = 4 GiB), so each layer is calibrated and quantized in its own pass.
    QuantizedModel qm;
    int64_t rtn_experts = 0;
    TERN_RETURN_IF_ERROR(calibrate_by_layer(model, ctx, calib, copt, progress, [&](int l, const CalibrationStats& st) {
      return quantize_model_gptq_layer(model, ctx, st, o, l, qm, &rtn_experts);
    }));
    log_rtn_experts(rtn_experts);
    return qm;
  }
  TERN_ASSIGN_OR_RETURN(CalibrationStats stats, calibrate(model, ctx, calib, copt, progress));
  o.on_layer = [&](int64_t done, int64_t total) {
    if (progress) progress(stats.windows + done, stats.windows + total);
  };
  return quantize_model_gptq(model, ctx, stats, o);
}

}  // namespace tern
