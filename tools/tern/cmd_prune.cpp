// tern prune: a Hugging Face checkpoint -> a pruned one.
//   unstructured / N:M (--sparsity S or --pattern N:M; --method magnitude | wanda | sparsegpt): the same
//     tensors with zeros in place (compress/prune_model.h), a dense checkpoint tern and transformers load;
//   structured (--structured heads,channels | layers --ratio R): a smaller dense checkpoint with fewer
//     attention heads / KV groups, feed-forward channels or layers and a config.json to match
//     (compress/prune_structured.h).
// Calibration text (--calib) is never the evaluation text.
#include <fmt/format.h>

#include <algorithm>
#include <sstream>

#include "cli_common.h"
#include "compress/calibration.h"
#include "compress/prune_model.h"
#include "compress/prune_structured.h"
#include "compress/prune_writer.h"
#include "core/mapped_file.h"
#include "formats/gguf/gguf_file.h"
#include "progress_bar.h"

namespace tern::cli {

namespace {

struct PruneCliOptions {
  RuntimeOptions runtime;
  std::string model, out, method = "wanda", pattern, calib, structured, group;
  double sparsity = 0.0, ratio = 0.0, damp = 0.01, owl_m = 5.0, owl_lambda = 0.08;
  bool owl = false, lm_head = false;
  int64_t calib_ctx = 512, calib_windows = 128;
  CLI::Option *sparsity_opt = nullptr, *pattern_opt = nullptr, *method_opt = nullptr, *ratio_opt = nullptr,
              *damp_opt = nullptr, *group_opt = nullptr, *owl_m_opt = nullptr, *owl_lambda_opt = nullptr;
};

// The calibration windows of --calib (first calib_windows windows of calib_ctx tokens).
std::vector<std::vector<int32_t>> calibration(const PruneCliOptions& o, const std::string& why) {
  if (o.calib.empty()) fail(why + " needs --calib FILE (calibration text, never the evaluation text)");
  auto tokenizer = load_tokenizer_if_present(o.model);
  if (!tokenizer) fail(o.model + ": no tokenizer.json to tokenize the calibration text");
  return unwrap(calibration_windows_from_file(*tokenizer, o.calib, o.calib_ctx, o.calib_windows));
}

// The one place an unstructured result goes to disk (a sparse storage format plugs in here).
void write_result(const Model& model, const PrunedModel& pm, const PruneCliOptions& o) {
  check(write_pruned_checkpoint(model, pm, o.out));
}

PruneSpec spec_from(const PruneCliOptions& o, PruneMethod method) {
  const bool s = o.sparsity_opt->count() > 0, p = o.pattern_opt->count() > 0;
  if (s && p) fail("give --sparsity S (unstructured) or --pattern N:M, not both");
  if (!s && !p) fail("give --sparsity S (unstructured), --pattern N:M, or --structured heads|channels|layers --ratio R");
  PruneSpec spec;
  if (p) spec = unwrap(parse_nm_pattern(o.pattern));
  else spec.sparsity = o.sparsity;
  check(validate_prune_spec(spec));
  // The comparison group, each method's as its paper has it: magnitude over the whole layer (the Wanda and
  // SparseGPT papers' magnitude baseline), sparsegpt over each block's [rows, 128] tile (its reference
  // mask; the layer's count is exact), wanda and ria per output row.
  spec.group = method == PruneMethod::kMagnitude || method == PruneMethod::kSparseGpt ? PruneGroup::kLayer
                                                                                       : PruneGroup::kRow;
  if (o.group_opt->count() > 0) {
    if (p) fail(fmt::format("--group applies to --sparsity: N:M compares within each group of {} inputs", spec.m));
    spec.group = unwrap(parse_prune_group(o.group));
  }
  return spec;
}

void run_unstructured(const PruneCliOptions& o) {
  PruneOptions po;
  po.method = unwrap(parse_prune_method(o.method));
  po.spec = spec_from(o, po.method);
  po.sparsegpt.percdamp = o.damp;
  po.owl = o.owl, po.owl_m = o.owl_m, po.owl_lambda = o.owl_lambda;
  if ((o.owl_m_opt->count() > 0 || o.owl_lambda_opt->count() > 0) && !o.owl) fail("--owl-m and --owl-lambda apply to --owl");
  if (o.owl && po.method == PruneMethod::kMagnitude) fail("--owl applies to --method wanda, ria and sparsegpt");
  if (o.owl && po.spec.nm()) fail("--owl sets a sparsity per layer: give --sparsity, not --pattern");
  if (o.owl && po.spec.group == PruneGroup::kLayer && po.method != PruneMethod::kSparseGpt)
    fail("--owl sets each layer's sparsity: use --group row");
  if (o.owl && !(o.owl_m > 0.0)) fail(fmt::format("--owl-m {}: must be positive", o.owl_m));
  // The layer sparsities span 2λ around S: within (0, 1) for λ < min(S, 1 − S) / 2.
  if (o.owl && !(o.owl_lambda >= 0.0 && o.owl_lambda < std::min(po.spec.sparsity, 1.0 - po.spec.sparsity) / 2))
    fail(fmt::format("--owl-lambda {}: must be in [0, min(S, 1 - S) / 2)", o.owl_lambda));
  po.lm_head = o.lm_head;
  if (o.lm_head && po.method != PruneMethod::kMagnitude)
    fail("--prune-lm-head prunes the LM head by magnitude: use it with --method magnitude");
  if (o.damp_opt->count() > 0 && po.method != PruneMethod::kSparseGpt) fail("--damp applies to --method sparsegpt");
  if (!(o.damp >= 0.0 && o.damp < 1.0)) fail(fmt::format("--damp {}: must be in [0, 1)", o.damp));
  Runtime rt(o.runtime);
  auto model = unwrap(Model::load(o.model));
  check(check_prunable(*model, po.spec));  // a pattern that does not fit fails before calibration
  std::vector<std::vector<int32_t>> windows;
  if (po.method == PruneMethod::kMagnitude) {
    if (!o.calib.empty()) fail("--calib applies to --method wanda and sparsegpt (magnitude uses no calibration)");
  } else {
    windows = calibration(o, fmt::format("--method {}", o.method));
  }
  const std::string what = po.spec.nm() ? fmt::format("{}:{}", po.spec.n, po.spec.m)
                                        : fmt::format("{:.1f}% unstructured per {}{}", 100.0 * po.spec.sparsity,
                                                      po.spec.group == PruneGroup::kLayer ? "layer" : "output row",
                                                      po.owl ? " (OWL layer sparsities)" : "");
  fmt::print(stderr, "[tern] prune: {} {}{}\n", o.method, what,
             windows.empty() ? "" : fmt::format(", {} calibration windows of {} tokens, layer by layer", windows.size(), windows.front().size()));
  ProgressBar bar("prune");
  PrunedModel pm = unwrap(prune_model(*model, rt.ctx, windows, po, [&](int64_t d, int64_t t) { bar.update(d, t); }));
  if (pm.uncalibrated > 0)
    fmt::print(stderr, "[tern] prune: {} expert matrices saw no calibration rows: pruned by magnitude\n", pm.uncalibrated);
  if (!pm.layer_sparsity.empty()) {
    std::string ls;
    for (double v : pm.layer_sparsity) ls += fmt::format(" {:.3f}", v);
    fmt::print(stderr, "[tern] prune: OWL layer sparsities:{}\n", ls);
  }
  write_result(*model, pm, o);
  fmt::print(stderr, "[tern] wrote {} ({} {}: {} of {} linear weights zero, {:.2f}%{})\n", o.out, o.method, what, pm.zeros,
             pm.params, 100.0 * pm.sparsity(), o.lm_head ? "; the LM head pruned too" : "");
}

void run_structured(const PruneCliOptions& o) {
  if (o.sparsity_opt->count() > 0 || o.pattern_opt->count() > 0)
    fail("--structured removes whole heads, channels or layers: drop --sparsity / --pattern");
  if (o.method_opt->count() > 0) fail("--method applies to unstructured and N:M pruning, not --structured");
  if (o.damp_opt->count() > 0) fail("--damp applies to --method sparsegpt");
  if (o.group_opt->count() > 0 || o.owl || o.lm_head) fail("--group, --owl and --prune-lm-head apply to unstructured and N:M pruning");
  if (o.ratio_opt->count() == 0) fail("--structured needs --ratio R (the fraction removed, between 0 and 1)");
  StructuredOptions so;
  so.targets = unwrap(parse_structured_targets(o.structured));
  so.ratio = o.ratio;
  check(validate_structured(so));
  Runtime rt(o.runtime);
  auto model = unwrap(Model::load(o.model));
  StructuredPlan plan = unwrap(plan_structured_shape(*model, so));  // shape errors before calibration
  auto windows = calibration(o, "--structured");
  ProgressBar bar("score");
  check(score_structured(*model, rt.ctx, windows, plan, [&](int64_t d, int64_t t) { bar.update(d, t); }));
  fmt::print(stderr, "[tern] prune: {}\n", describe_plan(*model, plan));
  check(write_structured_checkpoint(*model, plan, o.out));
  fmt::print(stderr, "[tern] wrote {}\n", o.out);
}

}  // namespace

void register_prune(CLI::App& app) {
  auto o = std::make_shared<PruneCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "prune",
      "write a pruned checkpoint: unstructured or N:M zeros in place (--sparsity / --pattern; magnitude, wanda, "
      "sparsegpt), or a smaller model without some heads, channels or layers (--structured)");
  add_model_option(*cmd, o->model);
  cmd->add_option("-o,--out", o->out, "output directory")->required();
  o->method_opt = cmd->add_option("--method", o->method,
                                  "magnitude (|w|), wanda (|w|·‖x‖, the default), sparsegpt (OBS with weight updates) "
                                  "or ria (Wanda's follow-up: relative importance · ‖x‖^0.5)");
  o->group_opt = cmd->add_option("--group", o->group,
                                 "--sparsity's comparison group: layer (the default for magnitude, as the papers' "
                                 "magnitude baseline, and for sparsegpt: each block's [rows, 128] tile, its reference mask) "
                                 "or row (each output row loses the same count; wanda's and ria's default)");
  cmd->add_flag("--owl", o->owl, "wanda / ria / sparsegpt: OWL's outlier-weighted sparsity per layer (mean = --sparsity)");
  o->owl_m_opt = cmd->add_option("--owl-m", o->owl_m, "--owl: a score is an outlier above M times its layer's mean (5)");
  o->owl_lambda_opt = cmd->add_option("--owl-lambda", o->owl_lambda, "--owl: the layer sparsities span 2λ around --sparsity (0.08)");
  cmd->add_flag("--prune-lm-head", o->lm_head,
                "magnitude: prune the LM head too (a tied head gets its own pruned copy), for tern sparsify --sparse-lm-head");
  o->sparsity_opt = cmd->add_option("--sparsity", o->sparsity, "fraction of each output row's weights set to zero, in (0, 1)");
  o->pattern_opt = cmd->add_option("--pattern", o->pattern, "N:M: at most N non-zeros in every M consecutive inputs (2:4, 4:8)");
  cmd->add_option("--structured", o->structured,
                  "remove whole structures: heads (KV groups with their query heads), channels (feed-forward), "
                  "heads,channels (both), or layers");
  o->ratio_opt = cmd->add_option("--ratio", o->ratio, "--structured: the fraction removed, in (0, 1)");
  cmd->add_option("--calib", o->calib, "calibration text file (wanda, sparsegpt, --structured); never the evaluation text");
  cmd->add_option("--calib-ctx", o->calib_ctx, "calibration window in tokens")->check(CLI::Range(int64_t(16), int64_t(1) << 16));
  cmd->add_option("--calib-windows", o->calib_windows, "calibration windows at most (default 128)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  o->damp_opt = cmd->add_option("--damp", o->damp, "sparsegpt: fraction of mean(diag H) added to the diagonal (0.01)");
  o->runtime.add_to(*cmd);
  cmd->callback([o] {
    if (is_gguf_file(o->model)) fail(o->model + ": prune reads a Hugging Face checkpoint (safetensors), not a GGUF file");
    if (!o->structured.empty() || o->ratio_opt->count() > 0) {
      if (o->structured.empty()) fail("--ratio applies to --structured");
      return run_structured(*o);
    }
    run_unstructured(*o);
  });
}

}  // namespace tern::cli
