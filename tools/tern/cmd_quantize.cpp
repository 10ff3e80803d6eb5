// tern quantize: a Hugging Face checkpoint -> a quantized one in the AutoAWQ, AutoGPTQ or
// compressed-tensors layout (round-to-nearest here; AWQ / GPTQ / SmoothQuant from compress/), or a GGUF
// file in one ggml block type (--format gguf --type T).
#include <fmt/format.h>

#include "cli_common.h"
#include "gguf_export.h"
#include "compress/awq.h"
#include "compress/checkpoint_writer.h"
#include "compress/gptq.h"
#include "compress/mixed_precision.h"
#include "compress/smoothquant.h"
#include "core/mapped_file.h"
#include "progress_bar.h"

namespace tern::cli {

namespace {

struct QuantizeOptions {
  RuntimeOptions runtime;
  std::string model, out, method = "rtn", format, calib, gguf_type;
  int bits = 4;
  int group = 128;
  bool sym = false, asym = false, fp8 = false, w8a8 = false, act_order = false, mse_clip = false, awq_gptq = false;
  std::string sequential = "off"; // GPTQ: off, layer, input (calibration pass per stage)
  double sq_alpha = 0.5;          // SmoothQuant migration strength
  bool sq_alpha_search = false;   // SmoothQuant: α per layer and input from the calibration text
  int embed_bits = 0;             // 8: the token embedding (and tied LM head) as int8 per row
  std::string int8_modules;       // comma-separated targets kept at int8 per output channel
  int64_t calib_ctx = 512, calib_windows = 32;
};

// The checkpoint layout for the options, with the defaults each method's own tool uses.
QuantConfig layout_for(const QuantizeOptions& o, bool group_given) {
  QuantConfig c;
  std::string format = o.format;
  if (format.empty()) {
    if (o.fp8 || o.w8a8 || o.method == "smoothquant" || o.bits == 8 || o.embed_bits || !o.int8_modules.empty())
      format = "compressed-tensors";
    else if (o.method == "awq") format = "awq";
    else format = "gptq";
  }
  c.method = format == "awq" ? QuantMethod::Awq : format == "gptq" ? QuantMethod::Gptq : QuantMethod::CompressedTensors;
  c.bits = o.fp8 ? 8 : o.bits;
  c.fp8 = o.fp8;
  c.int8_activations = o.w8a8 || o.method == "smoothquant";
  // AWQ checkpoints carry zero points by default, GPTQ and compressed-tensors are symmetric.
  c.symmetric = o.asym ? false : o.sym ? true : c.method != QuantMethod::Awq;
  c.group = c.bits == 8 ? 0 : o.group;
  if (c.bits == 8 && group_given) fail("int8 and FP8 weights have one scale per output channel: drop --group");
  if (c.bits == 4 && (c.group % 32 != 0 || c.group <= 0)) fail(fmt::format("--group {}: use 32, 64 or 128", o.group));
  c.desc_act = o.act_order;
  if (c.method == QuantMethod::CompressedTensors) {
    c.ct_format = c.fp8 ? "float-quantized" : c.int8_activations ? "int-quantized" : "pack-quantized";
    c.ignore = {"lm_head"};
    if (!c.symmetric && c.ct_format != "pack-quantized") fail("--format compressed-tensors: asymmetric weights need 4-bit or int8 weight-only");
  }
  if ((o.embed_bits || !o.int8_modules.empty()) && c.method != QuantMethod::CompressedTensors)
    fail("--embed-bits / --int8-modules (mixed precision) need --format compressed-tensors");
  if ((o.embed_bits || !o.int8_modules.empty()) && (c.fp8 || c.int8_activations || c.bits != 4))
    fail("--embed-bits / --int8-modules mix int8 into 4-bit checkpoints only");
  if (c.fp8 && c.method != QuantMethod::CompressedTensors) fail("--fp8 needs --format compressed-tensors");
  if (c.int8_activations && c.method != QuantMethod::CompressedTensors)
    fail("W8A8 (--w8a8, smoothquant) needs --format compressed-tensors");
  if (c.int8_activations && c.bits != 8) fail("W8A8 needs --bits 8");
  if (c.method == QuantMethod::Awq && c.bits != 4) fail("--format awq stores 4-bit weights only");
  return c;
}

// Mixed precision as compressed-tensors config groups with explicit module names: group_0 the 4-bit
// linears, group_1 the int8 per-channel ones (--int8-modules) and the embedding (--embed-bits 8).
void add_mixed_schemes(const Model& model, const QuantizeOptions& o, QuantConfig* layout) {
  if (!o.embed_bits && o.int8_modules.empty()) return;
  const std::vector<std::string> targets = split_targets(o.int8_modules);
  QuantScheme base{{}, layout->bits, layout->group, layout->symmetric}, high{{}, 8, 0, true};
  for (const auto& m : quantizable_modules(model, *layout))
    (module_matches_any(m, targets) ? high : base).targets.push_back(m);
  for (const auto& t : targets) {
    bool used = false;
    for (const auto& m : high.targets) used |= module_matches(m, t);
    if (!used) fail("--int8-modules: '" + t + "' matches no linear layer of the model");
  }
  if (o.embed_bits) high.targets.push_back(kEmbedModule);
  if (!base.targets.empty()) layout->schemes.push_back(base);
  layout->schemes.push_back(high);
}

void run_quantize(const QuantizeOptions& o, bool group_given) {
  if (o.sequential != "off" && o.method != "gptq") fail("--sequential applies to --method gptq");
  if (o.sq_alpha_search && o.method != "smoothquant") fail("--sq-alpha-search applies to --method smoothquant");
  QuantConfig layout = layout_for(o, group_given);
  Runtime rt(o.runtime);
  auto model = unwrap(Model::load(o.model));
  add_mixed_schemes(*model, o, &layout);
  if (o.embed_bits && !model->config().tie_word_embeddings)
    fail("--embed-bits: the model has a separate lm_head (tern quantizes tied embeddings only)");
  ProgressBar bar("quantize");
  auto progress = [&](int64_t done, int64_t total) { bar.update(done, total); };
  QuantSpec spec;
  spec.bits = layout.bits, spec.group = layout.group, spec.symmetric = layout.symmetric;

  QuantizedModel qm;
  LinearQuantizer quantizer;
  if (o.method == "rtn") {
    quantizer = [&](const std::string& module, const float* w, int64_t rows, int64_t cols) -> Result<QuantizedLinear> {
      if (layout.fp8) return quantize_fp8(w, rows, cols);
      const QuantConfig mc = layout.for_module(module);
      return quantize_rtn(w, rows, cols, QuantSpec{mc.bits, mc.group, mc.symmetric});
    };
  } else {
    if (o.calib.empty()) fail("--method " + o.method + " needs --calib FILE (calibration text)");
    auto tokenizer = load_tokenizer_if_present(o.model);
    if (!tokenizer) fail(o.model + ": no tokenizer.json to tokenize the calibration text");
    CalibData calib;
    calib.tokens = tokenizer->encode(unwrap(read_text_file(o.calib)), /*add_special_tokens=*/true);
    calib.seq_len = o.calib_ctx, calib.max_windows = o.calib_windows;
    MethodOptions mo;
    mo.act_order = o.act_order, mo.int8_activations = layout.int8_activations;
    mo.mse_clip = o.mse_clip, mo.awq_gptq = o.awq_gptq, mo.alpha = o.sq_alpha;
    mo.alpha_search = o.sq_alpha_search;
    mo.sequential = o.sequential == "layer" ? 1 : o.sequential == "input" ? 2 : 0;
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
      // A layer the method left alone (the embedding): round to nearest with its group's scheme.
      const QuantConfig mc = layout.for_module(module);
      return quantize_rtn(w, rows, cols, QuantSpec{mc.bits, mc.group, mc.symmetric});
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
  CLI::App* cmd = app.add_subcommand("quantize", "write a quantized checkpoint (AutoAWQ, AutoGPTQ, compressed-tensors) or GGUF file");
  cmd->add_option("-m,--model", o->model, "input model directory")->required();
  cmd->add_option("-o,--out", o->out, "output directory")->required();
  cmd->add_option("--method", o->method, "rtn, awq, gptq or smoothquant (--format gguf: rtn, the block types' own rounding)")
      ->check(CLI::IsMember({"rtn", "awq", "gptq", "smoothquant"}));
  CLI::Option* bits = cmd->add_option("--bits", o->bits, "4 or 8")->check(CLI::IsMember({4, 8}));
  CLI::Option* group = cmd->add_option("--group", o->group, "columns per scale for 4-bit weights (32, 64, 128)");
  cmd->add_flag("--sym", o->sym, "symmetric weights (no zero points)");
  cmd->add_flag("--asym", o->asym, "asymmetric weights (zero points)")->excludes("--sym");
  cmd->add_flag("--fp8", o->fp8, "FP8 e4m3 weights, one scale per output channel (compressed-tensors)");
  cmd->add_flag("--w8a8", o->w8a8, "int8 weights and dynamic per-token int8 activations (compressed-tensors)");
  cmd->add_flag("--act-order", o->act_order, "GPTQ: quantize columns by decreasing Hessian diagonal");
  cmd->add_flag("--mse-clip", o->mse_clip, "GPTQ: per group, the range (clip ratio 0.75..1) with the least rounding error");
  cmd->add_option("--sequential", o->sequential,
                  "GPTQ: calibrate each stage on the outputs of the already-quantized layers before it: 'layer' "
                  "(one calibration pass per decoder layer) or 'input' (one per linear input: q/k/v, o, gate/up, "
                  "down; AutoGPTQ's true-sequential); default off")
      ->check(CLI::IsMember({"off", "layer", "input"}));
  cmd->add_flag("--awq-gptq", o->awq_gptq, "AWQ: round the AWQ-scaled weights with GPTQ instead of RTN + clipping");
  cmd->add_option("--sq-alpha", o->sq_alpha, "SmoothQuant migration strength (0.5 as the paper; 0.65 is best on docs-llama-28m)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_flag("--sq-alpha-search", o->sq_alpha_search,
                "SmoothQuant: choose α (0.30..0.90) per layer and per smoothed input, the one with the least W8A8 "
                "output error on 512 sampled calibration rows (--sq-alpha then only seeds unsmoothed inputs)");
  cmd->add_option("--embed-bits", o->embed_bits,
                  "8: store the token embedding (= the tied LM head) as int8 per row instead of bf16 (compressed-tensors)")
      ->check(CLI::IsMember({0, 8}));
  cmd->add_option("--int8-modules", o->int8_modules,
                  "mixed precision: comma-separated linears kept at int8 per output channel, e.g. "
                  "'layers.0.self_attn.v_proj,down_proj' (a name, its tail, or re:REGEX; compressed-tensors)");
  cmd->add_option("--format", o->format, "awq, gptq or compressed-tensors (default: from the method)")
      ->check(CLI::IsMember({"awq", "gptq", "compressed-tensors", "gguf"}));
  CLI::Option* type = cmd->add_option("--type", o->gguf_type,
                                      "--format gguf: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K Q4_K Q5_K Q6_K");
  cmd->add_option("--calib", o->calib, "calibration text file (awq, gptq, smoothquant)");
  cmd->add_option("--calib-ctx", o->calib_ctx, "calibration window in tokens")->check(CLI::Range(int64_t(16), int64_t(1) << 16));
  cmd->add_option("--calib-windows", o->calib_windows, "calibration windows")->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  o->runtime.add_to(*cmd);
  cmd->callback([o, group, type, bits] {
    if (o->format == "gguf") {
      if (o->method != "rtn" || !o->calib.empty() || group->count() > 0 || bits->count() > 0 || o->fp8 || o->w8a8 || o->act_order)
        fail("--format gguf writes ggml block types (their own scales per block): give only --type");
      return export_gguf(o->model, o->out, o->gguf_type.empty() ? "Q4_K" : o->gguf_type, false);
    }
    if (type->count() > 0) fail("--type names a GGUF block type: add --format gguf");
    run_quantize(*o, group->count() > 0);
  });
}

}  // namespace tern::cli
