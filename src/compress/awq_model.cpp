// AWQ over a whole model: each layer's linears (compress/linear_sites.h), one scale per input group,
// folded where the group says, then each linear rounded (clipping search, or GPTQ with the Hessian
// of x / s).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "compress/awq.h"
#include "compress/gptq.h"
#include "compress/linear_sites.h"
#include "compress/mse_clip.h"

namespace tern {

void AwqLog::print() const {
  for (const auto& [why, n] : unscaled) fmt::print(stderr, "[tern] awq: {} input(s) not scaled: {}\n", n, why);
  if (rtn_experts > 0) {
    fmt::print(stderr, "[tern] awq: {} expert matrices saw no calibration rows: rounded to nearest (gate/up with the layer's "
               "shared scale, down unscaled)\n",
               rtn_experts);
  }
}

namespace {

// s for one alpha from mean |x| (AWQ's s = mean|x|^alpha, normalised around 1 as AutoAWQ does).
std::vector<float> scales_for(const std::vector<float>& mean_abs, float alpha) {
  std::vector<float> s(mean_abs.size());
  float smax = 0, smin = INFINITY;
  for (size_t c = 0; c < s.size(); ++c) {
    s[c] = std::pow(std::max(mean_abs[c], 1e-4f), alpha);
    smax = std::max(smax, s[c]), smin = std::min(smin, s[c]);
  }
  const float norm = std::sqrt(smax * smin);
  for (float& v : s) v /= norm;
  return s;
}

// w [rows, cols] -> dequant(quant(w · diag(s))) / s, the weights the scaled model computes with.
void fake_quantize_scaled(const float* w, int64_t rows, int64_t cols, const std::vector<float>& s,
                          const QuantSpec& spec, float* out) {
  const int64_t gs = spec.group > 0 ? spec.group : cols;
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) row[size_t(c)] = w[r * cols + c] * s[size_t(c)];
    for (int64_t g = 0; g < cols; g += gs) {
      const GroupParams gp = group_params(row.data() + g, gs, 1, spec);
      for (int64_t i = 0; i < gs; ++i) row[size_t(g + i)] = fake_quantize(row[size_t(g + i)], gp, spec);
    }
    for (int64_t c = 0; c < cols; ++c) out[r * cols + c] = row[size_t(c)] / s[size_t(c)];
  }
}

// The MoE block's input scale: the loss of each alpha is the block's output error on the sample rows
// x [n, hidden] with every expert's (and the shared expert's) gate and up rounded at that scale; the
// router and the down projections stay exact (AutoAWQ's Mixtral / Qwen-MoE recipe inspects the block).
std::vector<float> search_moe_scale(ExecContext& ctx, const ModelConfig& cfg, const MoeWeights& moe,
                                    const std::vector<const std::vector<float>*>& gate_up, const float* x, int64_t n,
                                    const std::vector<float>& mean_abs, const AwqOptions& opt) {
  const int64_t H = cfg.hidden_size;
  MoeBlock block(cfg, n);
  std::vector<float> y_ref(size_t(n * H)), y(size_t(n * H));
  block.forward(ctx, moe, x, n, y_ref.data());
  // Experts in order, then the shared one: gate_up[2i], gate_up[2i + 1] are expert i's gate and up.
  MoeWeights trial = moe;
  std::vector<ExpertMlp*> mlps;
  for (ExpertMlp& e : trial.experts) mlps.push_back(&e);
  if (trial.shared.present()) mlps.push_back(&trial.shared);
  std::vector<std::vector<float>> buf(gate_up.size());
  for (size_t i = 0; i < gate_up.size(); ++i) {
    buf[i].resize(gate_up[i]->size());
    WeightMatrix& m = i % 2 == 0 ? mlps[i / 2]->gate : mlps[i / 2]->up;
    const int64_t rows = m.rows, cols = m.cols;
    m = WeightMatrix{};
    m.data = buf[i].data(), m.dtype = DType::F32, m.rows = rows, m.cols = cols;
  }
  std::vector<float> best;
  double best_loss = 0;
  const int grid = std::max(1, opt.grid);
  for (int k = -1; k < grid; ++k) {  // k = -1: s = 1 (plain RTN), the reference every alpha must beat
    const std::vector<float> s = k < 0 ? std::vector<float>(size_t(H), 1.0f) : scales_for(mean_abs, float(k) / float(grid));
    ctx.pool().parallel_for(int64_t(gate_up.size()), 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const WeightMatrix& m = i % 2 == 0 ? mlps[size_t(i / 2)]->gate : mlps[size_t(i / 2)]->up;
        fake_quantize_scaled(gate_up[size_t(i)]->data(), m.rows, m.cols, s, opt.spec, buf[size_t(i)].data());
      }
    });
    block.forward(ctx, trial, x, n, y.data());
    double loss = 0;
    for (size_t i = 0; i < y.size(); ++i) loss += double(y[i] - y_ref[i]) * double(y[i] - y_ref[i]);
    if (k < 0 || loss < best_loss) best_loss = loss, best = s;
  }
  return best;
}

// Mean |x| with channels tied across the query heads sharing a kv head (o_proj folding into v's rows).
std::vector<float> tie_heads(const std::vector<float>& m, int rep, int hd) {
  if (rep <= 1) return m;
  std::vector<float> tied(m.size());
  const int n_kv = int(m.size()) / (rep * hd);
  for (int kv = 0; kv < n_kv; ++kv)
    for (int d = 0; d < hd; ++d) {
      float sum = 0;
      for (int r = 0; r < rep; ++r) sum += m[size_t((kv * rep + r) * hd + d)];
      for (int r = 0; r < rep; ++r) tied[size_t((kv * rep + r) * hd + d)] = sum / float(rep);
    }
  return tied;
}

Result<std::vector<float>> scaled_columns(const WeightMatrix& m, const std::vector<float>& s) {
  TERN_ASSIGN_OR_RETURN(std::vector<float> f, weight_to_f32(m));
  for (size_t i = 0; i < f.size(); ++i) f[i] *= s[i % s.size()];
  return f;
}

}  // namespace

Status quantize_model_awq_layer(const Model& model, ExecContext& ctx, const CalibrationStats& stats,
                                const AwqOptions& opt, int layer, QuantizedModel& qm, AwqLog* log) {
  TERN_ASSIGN_OR_RETURN(ModelLinears ml, model_linears(model));
  if (layer < 0 || size_t(layer) >= ml.layers.size() || stats.layers.size() != ml.layers.size())
    return Status::error("awq: calibration does not match the model");
  const LayerLinears& ll = ml.layers[size_t(layer)];
  const size_t n_sites = ll.sites.size();
  std::vector<std::vector<float>> wf(n_sites);  // f32 weights, scaled in place
  std::vector<std::vector<float>> s_in(n_sites);  // the scale each site's input is divided by (empty: none)
  for (size_t i = 0; i < n_sites; ++i) {
    const WeightMatrix& w = *ll.sites[i].w;
    TERN_RETURN_IF_ERROR(validate_quant_spec(opt.spec, w.cols));
    TERN_ASSIGN_OR_RETURN(wf[i], weight_to_f32(w));
  }
  for (const InputGroup& g : ll.groups) {
    const SlotStats& st = stats.at(g.input);
    if (g.fold == InputGroup::Fold::kNone) {
      if (log) ++log->unscaled[g.why_not];
      continue;
    }
    if (st.n_sample() == 0) {
      if (g.input.expert < 0) return Status::error(fmt::format("awq: layer {}: calibration kept no sample rows", layer));
      continue;  // an expert nothing was routed to: no scale
    }
    const std::vector<float> mean_abs = tie_heads(st.mean_abs(), g.gqa_rep, g.head_dim);
    std::vector<float> s;
    if (opt.fixed_alpha >= 0) {
      s = scales_for(mean_abs, opt.fixed_alpha);
    } else if (g.moe) {
      std::vector<const std::vector<float>*> gate_up;
      for (int i : g.sites) gate_up.push_back(&wf[size_t(i)]);
      const int64_t n = std::min<int64_t>(st.n_sample(), 256);
      s = search_moe_scale(ctx, model.config(), *g.moe, gate_up, st.sample.data(), n, mean_abs, opt);
    } else {
      int64_t rows = 0;
      std::vector<float> stacked;
      for (int i : g.sites) {
        stacked.insert(stacked.end(), wf[size_t(i)].begin(), wf[size_t(i)].end());
        rows += ll.sites[size_t(i)].w->rows;
      }
      s = awq_search_scale(ctx, st.sample.data(), st.n_sample(), stacked.data(), rows, st.cols, mean_abs, opt.spec,
                           opt.grid, opt.duo_scaling)
              .scale;
    }
    const size_t cols = s.size();
    for (int i : g.sites) {
      for (size_t j = 0; j < wf[size_t(i)].size(); ++j) wf[size_t(i)][j] *= s[j % cols];
      s_in[size_t(i)] = s;
    }
    if (g.fold == InputGroup::Fold::kNorm) {
      std::vector<float> nw(*g.norm_weight);
      for (size_t c = 0; c < cols; ++c) nw[c] = nw[c] / s[c] - g.norm_offset;  // stored form
      qm.vectors[g.norm_weight_name] = std::move(nw);
      if (g.norm_bias) {
        std::vector<float> nb(*g.norm_bias);
        for (size_t c = 0; c < cols; ++c) nb[c] /= s[c];
        qm.vectors[g.norm_bias_name] = std::move(nb);
      }
    } else {  // kPrevRows: row r of the previous linear produces input channel r (tied across heads)
      std::vector<float>& prev = wf[size_t(g.prev_site)];
      const int64_t pcols = ll.sites[size_t(g.prev_site)].w->cols, prows = ll.sites[size_t(g.prev_site)].w->rows;
      for (int64_t r = 0; r < prows; ++r) {
        const float sr = g.gqa_rep > 1 ? s[size_t((r / g.head_dim) * g.gqa_rep * g.head_dim + r % g.head_dim)] : s[size_t(r)];
        for (int64_t c = 0; c < pcols; ++c) prev[size_t(r * pcols + c)] /= sr;
      }
    }
    for (size_t i = 0; i < g.dense_scaled.size(); ++i) {
      TERN_ASSIGN_OR_RETURN(qm.vectors[g.dense_scaled_names[i]], scaled_columns(*g.dense_scaled[i], s));
    }
  }

  std::vector<QuantizedLinear> out(n_sites);
  // Linears reading one input share its scale, so x / s has one Hessian, factorized once for the run of
  // sites reading it (q/k/v, an expert's gate and up); only the last is kept (an expert's is 32 MiB).
  std::pair<InputRef, std::shared_ptr<const GptqHessian>> last_h{InputRef{-1}, nullptr};
  for (size_t i = 0; i < n_sites; ++i) {
    const LinearSite& site = ll.sites[i];
    const SlotStats& st = stats.at(site.input);
    const WeightMatrix& w = *site.w;
    const std::vector<float>& s = s_in[i];
    AwqOptions mopt = opt;
    if (opt.spec_for) mopt.spec = opt.spec_for(site.module);
    if (st.rows == 0) {  // an expert nothing was routed to
      if (log) ++log->rtn_experts;
      TERN_ASSIGN_OR_RETURN(out[i], opt.gptq && opt.mse_clip ? quantize_rtn_mse(wf[i].data(), w.rows, w.cols, mopt.spec, &ctx.pool())
                                                             : quantize_rtn(wf[i].data(), w.rows, w.cols, mopt.spec));
      continue;
    }
    Result<QuantizedLinear> q = Status::error("unset");
    if (opt.gptq) {
      // x / s has the Hessian diag(1/s) · XᵀX · diag(1/s).
      if (st.xtx.empty()) return Status::error("awq+gptq: calibration ran without the Hessian");
      GptqOptions go;
      go.spec = mopt.spec, go.percdamp = opt.percdamp, go.mse_clip = opt.mse_clip;
      if (!last_h.second || !(last_h.first == site.input)) {
        std::vector<double> h = st.xtx;
        if (!s.empty())
          for (int64_t a = 0; a < st.cols; ++a)
            for (int64_t b = 0; b < st.cols; ++b) h[size_t(a * st.cols + b)] /= double(s[size_t(a)]) * double(s[size_t(b)]);
        auto p = gptq_prepare(ctx, h, st.cols, go);
        if (!p.is_ok()) return p.status().with_context(site.name);
        last_h = {site.input, *p};
      }
      q = gptq_quantize_prepared(ctx, wf[i].data(), w.rows, w.cols, *last_h.second, go);
    } else {
      // The clipping search sees the inputs as the scaled model produces them: x / s.
      const int64_t n = std::min(st.n_sample(), opt.clip_rows);
      std::vector<float> xs(st.sample.begin(), st.sample.begin() + n * st.cols);
      if (!s.empty())
        for (size_t j = 0; j < xs.size(); ++j) xs[j] /= s[j % size_t(st.cols)];
      q = awq_quantize_clipped(ctx, wf[i].data(), w.rows, w.cols, xs.data(), n, mopt, opt.clip && site.clip);
    }
    if (!q.is_ok()) return q.status().with_context(site.name);
    out[i] = std::move(q).value();
  }
  return store_sites(qm, ll, std::move(out));
}

Result<QuantizedModel> quantize_model_awq(const Model& model, ExecContext& ctx, const CalibrationStats& stats,
                                          const AwqOptions& opt) {
  const int n = model.config().n_layers;
  if (int64_t(stats.layers.size()) != n) return Status::error("awq: calibration does not match the model");
  QuantizedModel qm;
  AwqLog log;
  for (int l = 0; l < n; ++l) {
    TERN_RETURN_IF_ERROR(quantize_model_awq_layer(model, ctx, stats, opt, l, qm, &log));
    if (opt.on_layer) opt.on_layer(l + 1, n);
  }
  log.print();
  return qm;
}

}  // namespace tern
