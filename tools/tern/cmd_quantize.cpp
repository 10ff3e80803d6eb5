// tern quantize: a Hugging Face checkpoint -> a quantized one in the AutoAWQ, AutoGPTQ or
// compressed-tensors layout (round-to-nearest here; AWQ / GPTQ / SmoothQuant from compress/), or a GGUF
// file in one of llama.cpp's mixes (--format gguf --type Q4_K_M).
// A method and a bit width alone run that method's best measured recipe (compress/recipe.h); every part
// of it has a switch to turn it off, and the recipe run is printed on stderr.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <map>

#include "cli_common.h"
#include "gguf_export.h"
#include "compress/awq.h"
#include "compress/checkpoint_writer.h"
#include "compress/gptq.h"
#include "compress/mixed_precision.h"
#include "compress/model_linears.h"
#include "compress/mse_clip.h"
#include "compress/recipe.h"
#include "compress/smoothquant.h"
#include "core/mapped_file.h"
#include "formats/gguf/gguf_file.h"
#include "formats/gguf/gguf_mix.h"
#include "progress_bar.h"

namespace tern::cli {

namespace {

struct QuantizeOptions {
  RuntimeOptions runtime;
  std::string model, out, method = "rtn", format, calib, gguf_type;
  int bits = 4;
  int group = 128;
  bool sym = false, asym = false, fp8 = false, w8a8 = false, act_order = false;
  // Recipe parts: the values the user gave; given() says whether they did (else default_recipe's).
  bool mse_clip = false, awq_gptq = false, sq_alpha_search = false, no_mixed = false;
  std::string sequential = "off";  // GPTQ: off, layer, input (calibration pass per stage)
  double sq_alpha = 0.5;           // SmoothQuant migration strength
  int embed_bits = 16;             // 8: the token embedding (and tied LM head) as int8 per row
  std::string int8_modules;        // auto, none, or comma-separated targets kept at int8 per output channel
  int64_t calib_ctx = 512, calib_windows = 32;
  bool gguf_pure = false;  // --format gguf: every matrix in the mix's base type
  std::map<std::string, CLI::Option*> opts;  // by long name, to ask whether the user gave it
  bool given(const std::string& name) const { return opts.at(name)->count() > 0; }
};

// What this run does: the method's default recipe with the user's switches on top.
struct Plan {
  QuantRecipe r;
  std::vector<std::string> int8_targets;  // module names / targets kept at int8 (empty: none)
  std::vector<std::string> notes;         // default parts dropped, for stderr
};

Plan resolve_recipe(const QuantizeOptions& o, const Model& model) {
  Plan p;
  p.r = default_recipe(o.method, o.bits);
  QuantRecipe& r = p.r;
  auto only_for = [&](const char* flag, bool ok, const char* what) {
    if (o.given(flag) && !ok) fail(fmt::format("{} applies to {}", flag, what));
  };
  only_for("--awq-gptq", o.method == "awq", "--method awq");
  only_for("--sq-alpha-search", o.method == "smoothquant", "--method smoothquant");
  if (o.sequential != "off" && o.method != "gptq") fail("--sequential applies to --method gptq");
  only_for("--mse-clip", o.method != "smoothquant" && !o.fp8, "rtn, gptq and awq --awq-gptq integer weights");
  if (o.given("--asym")) r.asymmetric = true;  // int8 weight-only may have zero points too
  if (o.given("--sym")) r.asymmetric = false;
  if (o.given("--mse-clip")) r.mse_clip = o.mse_clip;
  if (o.given("--awq-gptq")) r.awq_gptq = o.awq_gptq;
  if (o.given("--sequential")) r.sequential = o.sequential == "layer" ? 1 : o.sequential == "input" ? 2 : 0;
  if (o.given("--sq-alpha-search")) r.sq_alpha_search = o.sq_alpha_search;
  else if (o.given("--sq-alpha")) r.sq_alpha_search = false;  // a fixed α asked for: no search
  if (o.given("--calib-windows")) r.calib_windows = o.calib_windows;
  if (o.method == "awq" && !r.awq_gptq) {
    if (o.given("--mse-clip") && o.mse_clip) fail("--mse-clip with --method awq needs --awq-gptq (AWQ searches its own clipping)");
    r.mse_clip = false;
  }
  if (o.given("--embed-bits")) r.embed_bits = o.embed_bits == 8 ? 8 : 16;
  if (o.given("--int8-modules")) r.int8_modules = !o.int8_modules.empty() && o.int8_modules != "none";
  if (o.no_mixed) r.embed_bits = 16, r.int8_modules = false;

  // Mixed precision needs 4-bit integer weights in compressed-tensors and, for the embedding, a tied head.
  const bool explicit_mixed = (o.given("--embed-bits") && r.embed_bits == 8) || (o.given("--int8-modules") && r.int8_modules);
  const bool format_ok = o.format.empty() || o.format == "compressed-tensors";
  const bool bits_ok = o.bits == 4 && !o.fp8 && !o.w8a8;
  if (explicit_mixed && !format_ok) fail("--embed-bits / --int8-modules (mixed precision) need --format compressed-tensors");
  if (explicit_mixed && !bits_ok) fail("--embed-bits / --int8-modules mix int8 into 4-bit checkpoints only");
  if ((r.embed_bits == 8 || r.int8_modules) && (!format_ok || !bits_ok)) {
    if (!format_ok) p.notes.push_back(fmt::format("--format {} holds one scheme: no int8 embedding or int8 linears", o.format));
    r.embed_bits = 16, r.int8_modules = false;
  }
  if (r.embed_bits == 8 && !model.config().tie_word_embeddings) {
    if (o.given("--embed-bits")) fail("--embed-bits: the model has a separate lm_head (tern quantizes tied embeddings only)");
    p.notes.push_back("separate lm_head: embedding kept as stored");
    r.embed_bits = 16;
  }
  if (r.embed_bits == 8 && !model.store().find(std::string(kEmbedModule) + ".weight")) {
    if (o.given("--embed-bits")) fail("--embed-bits: the model's embedding is not model.embed_tokens (tern quantizes that one only)");
    p.notes.push_back("embedding not named model.embed_tokens: kept as stored");
    r.embed_bits = 16;
  }
  if (r.int8_modules) {
    p.int8_targets = o.given("--int8-modules") && o.int8_modules != "auto" ? split_targets(o.int8_modules)
                                                                          : default_int8_modules(model.config().n_layers);
  }
  return p;
}

// The checkpoint layout for the options, with the defaults each method's own tool uses.
QuantConfig layout_for(const QuantizeOptions& o, const Plan& p, bool group_given) {
  QuantConfig c;
  std::string format = o.format;
  const bool mixed = p.r.embed_bits == 8 || !p.int8_targets.empty();
  if (format.empty()) {
    if (o.fp8 || o.w8a8 || o.method == "smoothquant" || o.bits == 8 || mixed) format = "compressed-tensors";
    else if (o.method == "awq") format = "awq";
    else format = "gptq";
  }
  c.method = format == "awq" ? QuantMethod::Awq : format == "gptq" ? QuantMethod::Gptq : QuantMethod::CompressedTensors;
  c.bits = o.fp8 ? 8 : o.bits;
  c.fp8 = o.fp8;
  c.int8_activations = o.w8a8 || o.method == "smoothquant";
  c.symmetric = !p.r.asymmetric;
  c.group = c.bits == 8 ? 0 : o.group;
  if (c.bits == 8 && group_given) fail("int8 and FP8 weights have one scale per output channel: drop --group");
  if (c.bits == 4 && (c.group % 32 != 0 || c.group <= 0)) fail(fmt::format("--group {}: use 32, 64 or 128", o.group));
  c.desc_act = o.act_order;
  if (c.method == QuantMethod::CompressedTensors) {
    c.ct_format = c.fp8 ? "float-quantized" : c.int8_activations ? "int-quantized" : "pack-quantized";
    c.ignore = {"lm_head"};
    if (!c.symmetric && c.ct_format != "pack-quantized") fail("--format compressed-tensors: asymmetric weights need 4-bit or int8 weight-only");
  }
  if (c.fp8 && c.method != QuantMethod::CompressedTensors) fail("--fp8 needs --format compressed-tensors");
  if (c.int8_activations && c.method != QuantMethod::CompressedTensors)
    fail("W8A8 (--w8a8, smoothquant) needs --format compressed-tensors");
  if (c.int8_activations && c.bits != 8) fail("W8A8 needs --bits 8");
  if (c.method == QuantMethod::Awq && c.bits != 4) fail("--format awq stores 4-bit weights only");
  return c;
}

// Mixed precision as compressed-tensors config groups with explicit module names: group_0 the 4-bit
// linears, group_1 the int8 per-channel ones and the embedding (embed_bits 8). Returns the int8 linears.
std::vector<std::string> add_mixed_schemes(const Model& model, const QuantizeOptions& o, const Plan& p, QuantConfig* layout) {
  std::vector<std::string> int8_linears;
  if (p.r.embed_bits != 8 && p.int8_targets.empty()) return int8_linears;
  QuantScheme base{{}, layout->bits, layout->group, layout->symmetric}, high{{}, 8, 0, true};
  for (const auto& m : unwrap(quantizable_modules(model, *layout)))
    (module_matches_any(m.name, p.int8_targets) ? high : base).targets.push_back(m.name);
  int8_linears = high.targets;
  if (o.given("--int8-modules") && o.int8_modules != "auto") {  // a list the user typed: every entry must match
    for (const auto& t : p.int8_targets) {
      bool used = false;
      for (const auto& m : high.targets) used |= module_matches(m, t);
      if (!used) fail("--int8-modules: '" + t + "' matches no linear layer of the model");
    }
  }
  if (p.r.embed_bits == 8) high.targets.push_back(kEmbedModule);
  if (!base.targets.empty()) layout->schemes.push_back(base);
  layout->schemes.push_back(high);
  return int8_linears;
}

// "[tern] recipe: ..." — what runs, and the switches that turn each default part off.
void print_recipe(const QuantizeOptions& o, const Plan& p, const QuantConfig& layout, size_t n_int8) {
  const QuantRecipe& r = p.r;
  std::vector<std::string> parts, off;
  parts.push_back(o.fp8 ? "fp8 e4m3 per channel"
                        : layout.bits == 8 ? std::string(layout.int8_activations ? "W8A8 int8" : "int8") + " per channel" +
                                                 (layout.symmetric ? "" : " asym")
                                           : fmt::format("int4 g{} {}", layout.group, layout.symmetric ? "sym" : "asym"));
  if (r.sequential) parts.push_back(r.sequential == 1 ? "GPTQ sequential per layer" : "GPTQ sequential per linear input");
  if (o.method == "awq") parts.push_back(r.awq_gptq ? "AWQ scales + GPTQ rounding" : "AWQ scales + clipping search");
  if (r.mse_clip) parts.push_back("MSE clip");
  if (o.method == "smoothquant") parts.push_back(r.sq_alpha_search ? "α searched per layer" : fmt::format("α {}", o.sq_alpha));
  if (r.embed_bits == 8) parts.push_back("int8 embedding");
  if (n_int8) parts.push_back(fmt::format("{} linears int8", n_int8));
  if (o.method != "rtn") parts.push_back(fmt::format("{} calibration windows", r.calib_windows));
  if (layout.bits == 4 && !o.given("--sym") && !layout.symmetric) off.push_back("--sym");
  if (r.sequential && !o.given("--sequential")) off.push_back("--sequential off");
  if (r.awq_gptq && !o.given("--awq-gptq")) off.push_back("--no-awq-gptq");
  if (r.mse_clip && !o.given("--mse-clip")) off.push_back("--no-mse-clip");
  if (r.sq_alpha_search && !o.given("--sq-alpha-search")) off.push_back("--no-sq-alpha-search");
  if ((r.embed_bits == 8 || n_int8) && !o.no_mixed) off.push_back("--no-mixed (or --embed-bits 16, --int8-modules none)");
  std::string line = fmt::format("[tern] recipe: {} {}", o.method, fmt::join(parts, ", "));
  if (!off.empty()) line += fmt::format("; off: {}", fmt::join(off, ", "));
  for (const auto& n : p.notes) line += "; " + n;
  fmt::print(stderr, "{}\n", line);
}

void run_quantize(const QuantizeOptions& o, bool group_given) {
  Runtime rt(o.runtime);
  auto model = unwrap(Model::load(o.model));
  if (o.method == "smoothquant") check(check_quantizable_architecture(*model));
  check(model_linears(*model).status());  // an architecture quantize has no list of linears for
  const Plan plan = resolve_recipe(o, *model);
  QuantConfig layout = layout_for(o, plan, group_given);
  const size_t n_int8 = add_mixed_schemes(*model, o, plan, &layout).size();
  print_recipe(o, plan, layout, n_int8);
  ProgressBar bar("quantize");
  auto progress = [&](int64_t done, int64_t total) { bar.update(done, total); };
  QuantSpec spec;
  spec.bits = layout.bits, spec.group = layout.group, spec.symmetric = layout.symmetric;
  // Round to nearest with the module's scheme (MSE-clipped ranges when the recipe says so).
  auto rtn = [&](const std::string& module, const float* w, int64_t rows, int64_t cols) -> Result<QuantizedLinear> {
    if (layout.fp8) return quantize_fp8(w, rows, cols);
    const QuantConfig mc = layout.for_module(module);
    const QuantSpec ms{mc.bits, mc.group, mc.symmetric};
    const bool mse = plan.r.mse_clip && module != kEmbedModule;  // the embedding: absmax per row, as before
    return mse ? quantize_rtn_mse(w, rows, cols, ms, &rt.ctx.pool()) : quantize_rtn(w, rows, cols, ms);
  };

  QuantizedModel qm;
  LinearQuantizer quantizer;
  if (o.method == "rtn") {
    quantizer = rtn;
  } else {
    if (o.calib.empty()) fail("--method " + o.method + " needs --calib FILE (calibration text, never the evaluation text)");
    auto tokenizer = load_tokenizer_if_present(o.model);
    if (!tokenizer) fail(o.model + ": no tokenizer.json to tokenize the calibration text");
    CalibData calib;
    calib.tokens = tokenizer->encode(unwrap(read_text_file(o.calib)), /*add_special_tokens=*/true);
    calib.seq_len = o.calib_ctx, calib.max_windows = plan.r.calib_windows;
    MethodOptions mo;
    mo.act_order = o.act_order, mo.int8_activations = layout.int8_activations;
    mo.mse_clip = plan.r.mse_clip, mo.awq_gptq = plan.r.awq_gptq, mo.alpha = o.sq_alpha;
    mo.alpha_search = plan.r.sq_alpha_search;
    mo.sequential = plan.r.sequential;
    // compressed-tensors has no g_idx here: act-order with static groups keeps the column-order groups.
    mo.static_groups = layout.method == QuantMethod::CompressedTensors;
    if (!layout.schemes.empty()) {
      mo.spec_for = [&layout](const std::string& module) {
        const QuantConfig mc = layout.for_module(module);
        return QuantSpec{mc.bits, mc.group, mc.symmetric};
      };
    }
    ProgressBar cbar("calibrate");
    auto cprogress = [&](int64_t done, int64_t total) { cbar.update(done, total); };
    if (o.method == "awq") qm = unwrap(awq_quantize(rt.ctx, *model, calib, spec, mo, cprogress));
    else if (o.method == "gptq") qm = unwrap(gptq_quantize(rt.ctx, *model, calib, spec, mo, cprogress));
    else qm = unwrap(smoothquant_quantize(rt.ctx, *model, calib, spec, mo, cprogress));
    quantizer = [&](const std::string& module, const float* w, int64_t rows, int64_t cols) -> Result<QuantizedLinear> {
      auto it = qm.linears.find(module);
      if (it != qm.linears.end()) return it->second;
      return rtn(module, w, rows, cols);  // a layer the method left alone (the embedding)
    };
  }
  CheckpointWriteOptions wo;
  wo.out_dir = o.out;
  wo.vectors = &qm.vectors;
  check(write_quantized_checkpoint(*model, layout, quantizer, wo, progress));
  fmt::print(stderr, "[tern] wrote {} ({} {}-bit{}, {})\n", o.out, o.method, layout.bits,
             layout.bits == 4 ? fmt::format(" g{}", layout.group) : "", quant_method_name(layout.method));
}

}  // namespace

void register_quantize(CLI::App& app) {
  auto o = std::make_shared<QuantizeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "quantize",
      "write a quantized checkpoint (AutoAWQ, AutoGPTQ, compressed-tensors) or GGUF file; a method and --bits alone run "
      "that method's best measured recipe (printed on stderr, each part with an off switch)");
  auto& opt = o->opts;
  add_model_option(*cmd, o->model);
  cmd->add_option("-o,--out", o->out, "output directory")->required();
  cmd->add_option("--method", o->method, "rtn, awq, gptq or smoothquant (--format gguf: rtn, the block types' own rounding)")
      ->check(CLI::IsMember({"rtn", "awq", "gptq", "smoothquant"}));
  CLI::Option* bits = cmd->add_option("--bits", o->bits, "4 or 8 (default 4; 8 for smoothquant, --w8a8, --fp8)")
                          ->check(CLI::IsMember({4, 8}));
  CLI::Option* group = cmd->add_option("--group", o->group, "columns per scale for 4-bit weights (32, 64, 128)");
  opt["--sym"] = cmd->add_flag("--sym", o->sym, "symmetric 4-bit weights (the recipe has zero points)");
  opt["--asym"] = cmd->add_flag("--asym", o->asym, "asymmetric weights (zero points; the 4-bit default)")->excludes("--sym");
  cmd->add_flag("--fp8", o->fp8, "FP8 e4m3 weights, one scale per output channel (compressed-tensors)");
  cmd->add_flag("--w8a8", o->w8a8, "int8 weights and dynamic per-token int8 activations (compressed-tensors)");
  cmd->add_flag("--act-order", o->act_order, "GPTQ: quantize columns by decreasing Hessian diagonal");
  opt["--mse-clip"] = cmd->add_flag("--mse-clip,!--no-mse-clip", o->mse_clip,
                                    "per group, the range (clip ratio 0.75..1) with the least rounding error (rtn, gptq, "
                                    "awq --awq-gptq; on in the 4-bit recipes)");
  opt["--sequential"] = cmd->add_option("--sequential", o->sequential,
                  "GPTQ: calibrate each stage on the outputs of the already-quantized layers before it: 'layer' "
                  "(one calibration pass per decoder layer; the 4-bit recipe), 'input' (one per linear input: q/k/v, o, "
                  "gate/up, down; AutoGPTQ's true-sequential) or 'off'")
      ->check(CLI::IsMember({"off", "layer", "input"}));
  opt["--awq-gptq"] = cmd->add_flag("--awq-gptq,!--no-awq-gptq", o->awq_gptq,
                                    "AWQ: round the AWQ-scaled weights with GPTQ instead of RTN + clipping (the 4-bit recipe)");
  opt["--sq-alpha"] = cmd->add_option("--sq-alpha", o->sq_alpha, "SmoothQuant migration strength for every layer (turns the α search off)")
      ->check(CLI::Range(0.0, 1.0));
  opt["--sq-alpha-search"] = cmd->add_flag("--sq-alpha-search,!--no-sq-alpha-search", o->sq_alpha_search,
                "SmoothQuant: choose α (0.30..0.90) per layer and per smoothed input, the one with the least W8A8 "
                "output error on 512 sampled calibration rows (the default; --sq-alpha then only seeds unsmoothed inputs)");
  opt["--embed-bits"] = cmd->add_option("--embed-bits", o->embed_bits,
                  "8: the token embedding (= the tied LM head) as int8 per row (the 4-bit recipe); 16: as stored")
      ->check(CLI::IsMember({0, 8, 16}));
  opt["--int8-modules"] = cmd->add_option("--int8-modules", o->int8_modules,
                  "mixed precision: linears kept at int8 per output channel: 'auto' (the 4-bit recipe: every v_proj, "
                  "down_proj where llama.cpp's Q4_K_M gives ffn_down 6 bits (first and last eighth of the layers, every "
                  "third layer), o_proj in the first eighth), 'none', or a comma-separated list, e.g. 'layers.0.self_attn.v_proj,down_proj' (a name, its tail, or re:REGEX)");
  opt["--no-mixed"] = cmd->add_flag("--no-mixed", o->no_mixed, "every linear at --bits and the embedding as stored "
                                    "(= --embed-bits 16 --int8-modules none)");
  cmd->add_option("--format", o->format, "awq, gptq, compressed-tensors or gguf (default: compressed-tensors for the "
                                         "mixed-precision recipe, else from the method)")
      ->check(CLI::IsMember({"awq", "gptq", "compressed-tensors", "gguf"}));
  CLI::Option* type = cmd->add_option("--type", o->gguf_type,
                                      std::string("--format gguf: llama.cpp's mix, per-tensor types as llama-quantize "
                                                  "chooses them (default Q4_K_M): ") + gguf_mix_names());
  CLI::Option* pure = cmd->add_flag("--pure", o->gguf_pure, "--format gguf: every matrix in the mix's base type");
  opt["--calib"] = cmd->add_option("--calib", o->calib, "calibration text file (awq, gptq, smoothquant); never the evaluation text");
  cmd->add_option("--calib-ctx", o->calib_ctx, "calibration window in tokens")->check(CLI::Range(int64_t(16), int64_t(1) << 16));
  opt["--calib-windows"] = cmd->add_option("--calib-windows", o->calib_windows,
                                           "calibration windows at most (recipes: 128 for gptq, awq and smoothquant, 32 otherwise)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  opt["--no-mixed"]->excludes(opt["--embed-bits"])->excludes(opt["--int8-modules"]);
  o->runtime.add_to(*cmd);
  cmd->callback([o, group, type, bits, pure] {
    if (is_gguf_file(o->model))
      fail(o->model + ": quantize reads a Hugging Face checkpoint (safetensors); re-quantizing a GGUF file is not "
                      "supported");
    if (o->format == "gguf") {
      bool recipe_given = false;
      for (const auto& [name, opt] : o->opts) recipe_given |= opt->count() > 0;
      if (o->method != "rtn" || recipe_given || group->count() > 0 || bits->count() > 0 || o->fp8 || o->w8a8 || o->act_order)
        fail("--format gguf writes ggml block types (their own scales per block): give only --type");
      return export_gguf(o->model, o->out, o->gguf_type.empty() ? "Q4_K_M" : o->gguf_type, o->gguf_pure, false);
    }
    if (type->count() > 0) fail("--type names a GGUF block type: add --format gguf");
    if (pure->count() > 0) fail("--pure applies to --format gguf");
    if (bits->count() == 0 && (o->method == "smoothquant" || o->w8a8 || o->fp8)) o->bits = 8;
    run_quantize(*o, group->count() > 0);
  });
}

}  // namespace tern::cli
