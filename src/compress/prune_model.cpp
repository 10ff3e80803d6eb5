#include "compress/prune_model.h"

#include <fmt/format.h>

#include <memory>

#include "compress/linear_sites.h"
#include "compress/model_linears.h"

namespace tern {

namespace {

// Points the site's matrix (inside a private TransformerWeights copy) at f32 [rows, cols] data.
void bind_f32(const LinearSite& site, const float* data, int64_t rows, int64_t cols) {
  WeightMatrix& m = const_cast<WeightMatrix&>(*site.w);
  m = WeightMatrix{};
  m.data = data, m.dtype = DType::F32, m.rows = rows, m.cols = cols;
}

// One site's weights pruned by the method (stats: its layer's calibration, null for magnitude).
Status prune_site(ExecContext& ctx, const LinearSite& site, const CalibrationStats* stats, const PruneOptions& o,
                  const PruneSpec& spec, std::vector<float>& f, int64_t* uncalibrated) {
  const int64_t rows = site.w->rows, cols = site.w->cols;
  const SlotStats* st = stats ? &stats->at(site.input) : nullptr;
  if (st && st->rows == 0) {
    // Only an expert no calibration row was routed to has no statistics.
    if (site.input.expert < 0) return Status::error(fmt::format("{}: calibration saw no inputs", site.name));
    ++*uncalibrated;
    st = nullptr;
  }
  if (o.method == PruneMethod::kSparseGpt && st) {
    if (st->xtx.empty()) return Status::error(fmt::format("{}: calibration ran without the Hessian", site.name));
    Status s = sparsegpt_prune(ctx, f.data(), rows, cols, st->xtx, spec, o.sparsegpt);
    return s.is_ok() ? s : s.with_context(site.name);
  }
  if (o.method == PruneMethod::kRia && st) {
    const std::vector<float> s = ria_scores(f.data(), rows, cols, st->sq_sum);
    prune_by_scores(f.data(), s.data(), rows, cols, spec);
    return Status::ok();
  }
  const std::vector<double> none;
  prune_linear(f.data(), rows, cols, spec, o.method == PruneMethod::kWanda && st ? st->sq_sum : none);
  return Status::ok();
}

// OWL's layer sparsities: one calibration pass over every layer of the unpruned model, each layer's
// Wanda scores (all its linears together) give its outlier ratio.
Result<std::vector<double>> owl_sparsity(const Model& work, ExecContext& ctx, const ModelLinears& ml,
                                         const std::vector<std::vector<int32_t>>& windows, const PruneOptions& o) {
  CalibrationOptions copt;
  auto st = calibrate(work, ctx, windows, copt);
  if (!st.is_ok()) return st.status().with_context("calibration (OWL)");
  const CalibrationStats& stats = st.value();
  std::vector<double> ratio;
  for (const LayerLinears& ll : ml.layers) {
    std::vector<float> scores;
    for (const LinearSite& site : ll.sites) {
      const SlotStats& s = stats.at(site.input);
      if (s.rows == 0) continue;  // an expert nothing was routed to
      TERN_ASSIGN_OR_RETURN(std::vector<float> f, weight_to_f32(*site.w));
      const std::vector<float> sc = prune_scores(f.data(), site.w->rows, site.w->cols, s.sq_sum);
      scores.insert(scores.end(), sc.begin(), sc.end());
    }
    ratio.push_back(outlier_ratio(scores, o.owl_m));
  }
  return owl_layer_sparsity(ratio, o.spec.sparsity, o.owl_lambda);
}

// The LM head by magnitude (the spec's group) as module "lm_head".
Status prune_lm_head(const Model& model, const PruneOptions& o, PrunedModel& pm) {
  const WeightMatrix& head = model.weights().lm_head;
  if (!head.data || !head.dense()) return Status::error("--prune-lm-head: the model has no dense LM head to prune");
  TERN_ASSIGN_OR_RETURN(std::vector<float> f, weight_to_f32(head));
  TERN_RETURN_IF_ERROR(check_prune_cols(o.spec, head.cols, "lm_head"));
  prune_linear(f.data(), head.rows, head.cols, o.spec, {});
  PrunedModule& m = pm.modules["lm_head"];
  m.rows = head.rows, m.cols = head.cols;
  m.w = std::move(f);
  return Status::ok();
}

}  // namespace

Status check_prunable(const Model& model, const PruneSpec& spec) {
  TERN_RETURN_IF_ERROR(validate_prune_spec(spec));
  TERN_ASSIGN_OR_RETURN(ModelLinears ml, model_linears(model));
  for (const LayerLinears& ll : ml.layers) {
    for (const LinearSite& s : ll.sites) {
      if (!s.w->dense())
        return Status::error(fmt::format("{}: the checkpoint is quantized; prune a dense (f32/f16/bf16) one", s.name));
      TERN_RETURN_IF_ERROR(check_prune_cols(spec, s.w->cols, s.name));
    }
  }
  return Status::ok();
}

Result<PrunedModel> prune_model(const Model& model, ExecContext& ctx, const std::vector<std::vector<int32_t>>& windows,
                                const PruneOptions& o, const ProgressFn& progress) {
  TERN_RETURN_IF_ERROR(check_prunable(model, o.spec));
  const bool calibrated = o.method != PruneMethod::kMagnitude;
  if (calibrated && windows.empty())
    return Status::error(fmt::format("--method {} needs calibration text", prune_method_name(o.method)));
  TERN_ASSIGN_OR_RETURN(ModelLinears base, model_linears(model));
  PrunedModel pm;
  for (const auto& m : base.modules) {
    PrunedModule& pmod = pm.modules[m.name];
    pmod.rows = m.rows, pmod.cols = m.cols, pmod.conv1d = m.conv1d;
    pmod.w.assign(size_t(m.rows * m.cols), 0.0f);
  }
  // The calibration passes run a private model whose pruned layers are replaced as they are done.
  std::unique_ptr<Model> work;
  TransformerWeights w;
  ModelLinears ml;
  if (calibrated) {
    TERN_ASSIGN_OR_RETURN(work, Model::load(model.dir()));
    if (work->weights().layers.size() != base.layers.size()) return Status::error("prune: the model changed on disk");
    w = unshare_blocks(model.weights());
    TERN_ASSIGN_OR_RETURN(ml, model_linears(model, w));  // pointers into w
    work->replace_weights(w, nullptr);
  }
  if (o.owl) {
    if (o.method == PruneMethod::kMagnitude) return Status::error("--owl applies to --method wanda, ria and sparsegpt");
    if (o.spec.nm()) return Status::error("--owl sets a sparsity per layer: give --sparsity, not --pattern");
    TERN_ASSIGN_OR_RETURN(pm.layer_sparsity, owl_sparsity(*work, ctx, ml, windows, o));
  }
  CalibrationOptions copt;
  copt.hessian = o.method == PruneMethod::kSparseGpt;
  const int64_t n_layers = int64_t(base.layers.size());
  for (int64_t l = 0; l < n_layers; ++l) {
    const LayerLinears& ll = calibrated ? ml.layers[size_t(l)] : base.layers[size_t(l)];
    PruneSpec spec = o.spec;
    if (!pm.layer_sparsity.empty()) spec.sparsity = pm.layer_sparsity[size_t(l)];
    CalibrationStats stats;
    if (calibrated) {
      copt.only_layer = int(l);
      auto st = calibrate(*work, ctx, windows, copt);
      if (!st.is_ok()) return st.status().with_context("calibration");
      stats = std::move(st).value();
    }
    auto storage = std::make_shared<std::vector<std::vector<float>>>();
    storage->reserve(ll.sites.size());
    for (const LinearSite& site : ll.sites) {
      TERN_ASSIGN_OR_RETURN(std::vector<float> f, weight_to_f32(*site.w));
      TERN_RETURN_IF_ERROR(prune_site(ctx, site, calibrated ? &stats : nullptr, o, spec, f, &pm.uncalibrated));
      PrunedModule& pmod = pm.modules.at(site.module);
      std::copy(f.begin(), f.end(), pmod.w.begin() + site.row0 * pmod.cols);
      for (float v : f) pm.zeros += v == 0.0f;
      pm.params += int64_t(f.size());
      if (calibrated) {
        storage->push_back(std::move(f));
        bind_f32(site, storage->back().data(), site.w->rows, site.w->cols);
      }
    }
    if (calibrated) work->replace_weights(w, std::move(storage));
    if (progress) progress(l + 1, n_layers);
  }
  if (o.lm_head) TERN_RETURN_IF_ERROR(prune_lm_head(model, o, pm));
  return pm;
}

Status apply_pruned(Model& model, const PrunedModel& pm) {
  TransformerWeights w = unshare_blocks(model.weights());
  TERN_ASSIGN_OR_RETURN(ModelLinears ml, model_linears(model, w));
  auto storage = std::make_shared<std::map<std::string, PrunedModule>>(pm.modules);
  for (const LayerLinears& ll : ml.layers) {
    for (const LinearSite& site : ll.sites) {
      auto it = storage->find(site.module);
      if (it == storage->end()) continue;
      const PrunedModule& m = it->second;
      if (m.cols != site.w->cols || site.row0 + site.w->rows > m.rows)
        return Status::error(fmt::format("{}: pruned shape does not match the model", site.name));
      bind_f32(site, m.w.data() + site.row0 * m.cols, site.w->rows, m.cols);
    }
  }
  model.replace_weights(std::move(w), std::move(storage));
  return Status::ok();
}

}  // namespace tern
