// tern prune: a Hugging Face checkpoint -> a pruned one.
//   unstructured / N:M (--sparsity S or --pattern N:M; --method magnitude | wanda | sparsegpt): the same
//     tensors with zeros in place (compress/prune_model.h), a dense checkpoint tern and transformers load;
//   structured (--structured heads,channels | layers --ratio R): a smaller dense checkpoint with fewer
//     attention heads / KV groups, feed-forward channels or layers and a config.json to match
//     (compress/prune_structured.h).
// Calibration text (--calib) is never the evaluation text.
#include <fmt/format.h>

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
  std::string model, out, method = "wanda", pattern, calib, structured;
  double sparsity = 0.0, ratio = 0.0, damp = 0.01;
  int64_t calib_ctx = 512, calib_windows = 128;
  CLI::Option *sparsity_opt = nullptr, *pattern_opt = nullptr, *method_opt = nullptr, *ratio_opt = nullptr,
              *damp_opt = nullptr;
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

PruneSpec spec_from(const PruneCliOptions& o) {
  const bool s = o.sparsity_opt->count() > 0, p = o.pattern_opt->count() > 0;
  if (s && p) fail("give --sparsity S (unstructured) or --pattern N:M, not both");
  if (!s && !p) fail("give --sparsity S (unstructured), --pattern N:M, or --structured heads|channels|layers --ratio R");
  PruneSpec spec;
  if (p) spec = unwrap(parse_nm_pattern(o.pattern));
  else spec.sparsity = o.sparsity;
  check(validate_prune_spec(spec));
  return spec;
}

void run_unstructured(const PruneCliOptions& o) {
  PruneOptions po;
  po.method = unwrap(parse_prune_method(o.method));
  po.spec = spec_from(o);
  po.sparsegpt.percdamp = o.damp;
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
                                        : fmt::format("{:.1f}% unstructured", 100.0 * po.spec.sparsity);
  fmt::print(stderr, "[tern] prune: {} {}{}\n", o.method, what,
             windows.empty() ? "" : fmt::format(", {} calibration windows of {} tokens, layer by layer", windows.size(), windows.front().size()));
  ProgressBar bar("prune");
  PrunedModel pm = unwrap(prune_model(*model, rt.ctx, windows, po, [&](int64_t d, int64_t t) { bar.update(d, t); }));
  if (pm.uncalibrated > 0)
    fmt::print(stderr, "[tern] prune: {} expert matrices saw no calibration rows: pruned by magnitude\n", pm.uncalibrated);
  write_result(*model, pm, o);
  fmt::print(stderr, "[tern] wrote {} ({} {}: {} of {} linear weights zero, {:.2f}%)\n", o.out, o.method, what, pm.zeros,
             pm.params, 100.0 * pm.sparsity());
}

void run_structured(const PruneCliOptions& o) {
  if (o.sparsity_opt->count() > 0 || o.pattern_opt->count() > 0)
    fail("--structured removes whole heads, channels or layers: drop --sparsity / --pattern");
  if (o.method_opt->count() > 0) fail("--method applies to unstructured and N:M pruning, not --structured");
  if (o.damp_opt->count() > 0) fail("--damp applies to --method sparsegpt");
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
                                  "magnitude (|w|), wanda (|w|·‖x‖, the default) or sparsegpt (OBS with weight updates)");
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
