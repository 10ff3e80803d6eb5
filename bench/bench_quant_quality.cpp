// Quantization quality on a model (default docs-llama-28m): calibrate on the first half of a text
// (default docs-val.txt), evaluate on its second half under both perplexity protocols, and print one
// markdown row per method: bits per weight, ppl and ΔPPL (tern and llama.cpp protocols), KL divergence
// from the base model and top-1 agreement. Weights are dequantized into a dense f32 copy of the model
// in memory (W8A8 also rounds activations per token), so this measures the methods, not the kernels.
//
//   bench_quant_quality [--model DIR] [--text FILE] [--threads N] [--calib-windows 32]
//                       [--methods rtn,rtnmse,awq,awqduo,awqgptq,gptq,gptqact,gptqseq,gptqseql,rtn8,sq,sqsearch]
//                       [--groups 128,32] [--llamacpp-windows 0] [--topk 128]
//                       [--sym] [--embed-bits 8] [--high8 v_proj,layers.0.mlp.down_proj|auto] [--mse-clip]
//                       [--act-order] [--damp 0.01] (the sequential GPTQ variants; --damp all GPTQ)
//                       [--sensitivity N] [--sq-alpha 0.5,0.7]   (per-linear KL gain of int8 over int4, on N calibration windows)
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <sstream>

#include "bench_common.h"
#include "compress/awq.h"
#include "compress/calibration.h"
#include "compress/gptq.h"
#include "compress/mixed_precision.h"
#include "compress/mse_clip.h"
#include "compress/smoothquant.h"
#include "compress/smoothquant_search.h"
#include "core/mapped_file.h"
#include "eval/quality.h"

using namespace tern;

namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(item);
  return out;
}

template <typename T>
T must(Result<T> r, const char* what) {
  if (!r.is_ok()) {
    fmt::print(stderr, "{}: {}\n", what, r.status().message());
    std::exit(1);
  }
  return std::move(r).value();
}

// Bits per weight of the whole checkpoint as AutoAWQ/AutoGPTQ would store it: codes, an f16 scale per
// group (+ a zero point of `bits` bits when asymmetric), every other tensor at its stored width.
double bits_per_weight(const Model& m, const MixedPrecision& mp) {
  double bits = 0, params = 0;
  for (const auto& t : m.store().tensors()) {
    bits += double(t.numel()) * double(dtype_size(t.dtype)) * 8, params += double(t.numel());
  }
  auto replace = [&](const WeightMatrix& w, const QuantSpec& spec) {
    const double n = double(w.rows * w.cols), group = spec.group > 0 ? spec.group : double(w.cols);
    bits -= n * double(dtype_size(w.dtype)) * 8;
    bits += n * (spec.bits + (16.0 + (spec.symmetric ? 0 : spec.bits)) / group);
  };
  for (size_t l = 0; l < m.weights().layers.size(); ++l)
    for (LinearKind k : kAllLinears)
      replace(linear_weight(m.weights().layers[l], k), mp.module_spec(linear_module_name(int(l), k)));
  if (mp.embed_bits) replace(m.weights().embed, QuantSpec{mp.embed_bits, 0, true});
  return bits / params;
}

struct Eval {
  PerplexityOptions opt;
  BaseLogits base;
};

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = bench::arg_value(argc, argv, "--model", std::string(TERN_SHARED_DIR) + "/models/docs-llama-28m");
  const std::string text_path = bench::arg_value(argc, argv, "--text", std::string(TERN_SHARED_DIR) + "/data/docs-val.txt");
  const int threads = std::stoi(bench::arg_value(argc, argv, "--threads", "2"));
  const int64_t calib_windows = std::stoll(bench::arg_value(argc, argv, "--calib-windows", "32"));
  const int64_t llamacpp_windows = std::stoll(bench::arg_value(argc, argv, "--llamacpp-windows", "0"));
  const int topk = std::stoi(bench::arg_value(argc, argv, "--topk", "128"));
  const auto methods = split(bench::arg_value(argc, argv, "--methods", "rtn,awq,gptq,rtn8,sq"));
  const auto groups = split(bench::arg_value(argc, argv, "--groups", "128,32"));

  ThreadPool pool(threads);
  ExecContext ctx(pool, CpuFeatures::detect());
  auto tok = must(Tokenizer::load(dir), "tokenizer");
  const std::string text = must(read_text_file(text_path), "text");
  // Calibration text and evaluation text never overlap: first half / second half, cut at a line break.
  const size_t cut = text.find('\n', text.size() / 2);
  const auto calib_tokens = tok.encode(text.substr(0, cut), true);
  const auto eval_tokens = tok.encode(text.substr(cut + 1), true);
  fmt::print(stderr, "calibration text {} tokens, evaluation text {} tokens\n", calib_tokens.size(), eval_tokens.size());

  auto base_model = must(Model::load(dir), "model");
  std::vector<Eval> evals(2);
  evals[0].opt.ctx = 512, evals[0].opt.max_windows = std::stoll(bench::arg_value(argc, argv, "--windows", "40")), evals[0].opt.protocol = PplProtocol::kWindows;
  evals[1].opt.ctx = 512, evals[1].opt.max_windows = llamacpp_windows, evals[1].opt.protocol = PplProtocol::kLlamaCpp;
  for (auto& e : evals) {
    e.opt.bos_id = tok.bos_id().value_or(-1);
    const double t0 = bench::now_s();
    e.base = must(record_base_logits(*base_model, ctx, eval_tokens, e.opt, topk), "base logits");
    fmt::print(stderr, "base: ppl {:.4f} over {} positions ({:.1f} s)\n", e.base.base_ppl(), e.base.positions(),
               bench::now_s() - t0);
  }

  double t0 = bench::now_s();
  auto windows = must(calibration_windows(calib_tokens, 512, calib_windows), "windows");
  CalibrationOptions copt;
  copt.hessian = true;
  copt.sample_rows = 512;
  const CalibrationStats stats = must(calibrate(*base_model, ctx, windows, copt), "calibrate");
  fmt::print(stderr, "calibration: {} windows of 512 tokens in {:.1f} s\n", windows.size(), bench::now_s() - t0);

  fmt::print("| method | bits | group | bpw (file) | ppl (tern) | ΔPPL tern | ppl (llama.cpp) | ΔPPL llama.cpp | KL mean | KL median | KL p99 | top-1 | quantize s |\n");
  fmt::print("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  const bool sym = bench::has_flag(argc, argv, "--sym");
  MixedPrecision mixed;
  mixed.embed_bits = std::stoi(bench::arg_value(argc, argv, "--embed-bits", "0"));
  mixed.high_targets = split_targets(bench::arg_value(argc, argv, "--high8", ""));
  if (mixed.high_targets == std::vector<std::string>{"auto"})  // tern quantize's default set
    mixed.high_targets = default_int8_modules(base_model->config().n_layers);
  const bool mse_clip = bench::has_flag(argc, argv, "--mse-clip");
  const int64_t sens_windows = std::stoll(bench::arg_value(argc, argv, "--sensitivity", "0"));
  QuantizedLinear embed_q;
  if (mixed.embed_bits) embed_q = must(quantize_embedding(*base_model, mixed.embed_bits), "embedding");
  int64_t n_high = 0;  // linears the --high8 targets match (a regex target may match several)
  for (size_t l = 0; l < base_model->weights().layers.size(); ++l)
    for (LinearKind k : kAllLinears) n_high += module_matches_any(linear_module_name(int(l), k), mixed.high_targets);
  const std::string suffix = std::string(mixed.embed_bits ? fmt::format(", embedding int{}", mixed.embed_bits) : "") +
                             (mixed.high_targets.empty() ? "" : fmt::format(", {} linears int8", n_high)) +
                             (mse_clip ? ", MSE clip" : "");

  auto report = [&](QuantizedModel qm, const QuantSpec& spec, double seconds, const std::string& name) {
    auto m = must(Model::load(dir), "model");
    if (mixed.embed_bits && spec.bits == 4) qm.linears[kEmbedModule] = embed_q;
    Status s = apply_dequantized(*m, qm);
    if (!s.is_ok()) {
      fmt::print(stderr, "{}\n", s.message());
      std::exit(1);
    }
    auto fq = activation_fake_quant();
    std::vector<QualityResult> q;
    for (auto& e : evals) {
      PerplexityOptions opt = e.opt;
      if (qm.int8_activations) opt.observer = fq.get();
      q.push_back(must(compare_with_base(*m, ctx, eval_tokens, opt, e.base), "eval"));
    }
    MixedPrecision mp = mixed;
    mp.base = spec;
    if (spec.bits != 4) mp.high_targets.clear(), mp.embed_bits = 0;
    fmt::print("| {} | {} | {} | {:.2f} | {:.4f} | {:+.2f}% | {:.4f} | {:+.2f}% | {:.5f} | {:.5f} | {:.4f} | {:.2f}% | {:.1f} |\n",
               name, spec.bits, spec.group > 0 ? std::to_string(spec.group) : "channel",
               bits_per_weight(*base_model, mp), q[0].ppl.ppl, (q[0].ppl.ppl / q[0].base_ppl - 1) * 100, q[1].ppl.ppl,
               (q[1].ppl.ppl / q[1].base_ppl - 1) * 100, q[0].kl.kl_mean, q[0].kl.kl_median, q[0].kl.kl_p99,
               q[0].kl.top1 * 100, seconds);
    std::fflush(stdout);
  };
  fmt::print("| base (bf16) | 16 | - | 16.00 | {:.4f} | - | {:.4f} | - | 0 | 0 | 0 | 100% | - |\n", evals[0].base.base_ppl(),
             evals[1].base.base_ppl());

  // Sensitivity on CALIBRATION text (never the evaluation half): KL of the all-int4 model, and the KL
  // gained by moving each linear alone to int8, per extra MB.
  auto sensitivity = [&](const QuantizedModel& q4, const QuantSpec& spec) {
    Eval se;
    se.opt.ctx = 512, se.opt.max_windows = sens_windows, se.opt.protocol = PplProtocol::kWindows;
    se.opt.bos_id = tok.bos_id().value_or(-1);
    se.base = must(record_base_logits(*base_model, ctx, calib_tokens, se.opt, topk), "sens base");
    auto kl_of = [&](const QuantizedModel& qm) {
      auto m = must(Model::load(dir), "model");
      if (!apply_dequantized(*m, qm).is_ok()) std::exit(1);
      return must(compare_with_base(*m, ctx, calib_tokens, se.opt, se.base), "sens").kl.kl_mean;
    };
    const double kl4 = kl_of(q4);
    fmt::print(stderr, "sensitivity: all int4 KL {:.5f}\n", kl4);
    std::vector<std::pair<double, std::string>> gains;
    for (const auto& [name, ql] : q4.linears) {
      if (name == kEmbedModule) continue;
      QuantizedModel q = q4;
      std::vector<float> w = dequantize(ql);  // already-int4 weights would lose information: use the base
      const auto& layers = base_model->weights().layers;
      for (size_t l = 0; l < layers.size(); ++l)
        for (LinearKind k : kAllLinears)
          if (linear_module_name(int(l), k) == name) w = must(weight_to_f32(linear_weight(layers[l], k)), "w");
      q.linears[name] = must(quantize_rtn(w.data(), ql.rows, ql.cols, QuantSpec{8, 0, true}), "rtn8");
      const double mb = double(ql.rows * ql.cols) * (4.0 - double(spec.group > 0 ? 20.0 / spec.group : 0)) / 8e6;
      const double gain = kl4 - kl_of(q);
      gains.emplace_back(gain / mb, name);
      fmt::print(stderr, "sensitivity: {} KL gain {:.5f} ({:.4f} per MB)\n", name, gain, gain / mb);
    }
    std::sort(gains.rbegin(), gains.rend());
    for (const auto& [g, n] : gains) fmt::print("sens {:.5f} {}\n", g, n);
  };

  for (const auto& g : groups) {
    const QuantSpec spec{4, std::stoi(g), /*symmetric=*/!sym ? false : true};
    MixedPrecision mp = mixed;
    mp.base = spec;
    auto spec_for = [mp](const std::string& module) { return mp.module_spec(module); };
    for (const auto& method : methods) {
      t0 = bench::now_s();
      if (method == "rtn" || method == "rtnmse") {  // rtnmse: each group's range by MSE clipping
        const bool mse = method == "rtnmse";
        QuantizedModel qm;
        for (size_t l = 0; l < base_model->weights().layers.size(); ++l)  // the same mixed recipe
          for (LinearKind k : kAllLinears) {
            const std::string name = linear_module_name(int(l), k);
            const WeightMatrix& w = linear_weight(base_model->weights().layers[l], k);
            const std::vector<float> f = must(weight_to_f32(w), "w");
            const QuantSpec ms = mp.module_spec(name);
            qm.linears[name] = must(mse ? quantize_rtn_mse(f.data(), w.rows, w.cols, ms) : quantize_rtn(f.data(), w.rows, w.cols, ms), "rtn");
          }
        report(qm, spec, bench::now_s() - t0,
               (mse ? "RTN + MSE clip" : "RTN") + (mse_clip ? suffix.substr(0, suffix.size() - 10) : suffix));
      } else if (method == "awq" || method == "awqduo" || method == "awqgptq") {
        AwqOptions o;
        o.spec = spec;
        o.duo_scaling = method == "awqduo";
        o.gptq = method == "awqgptq";
        o.mse_clip = mse_clip;
        o.spec_for = spec_for;
        auto qm = must(quantize_model_awq(*base_model, ctx, stats, o), "awq");
        report(qm, spec, bench::now_s() - t0,
               (o.gptq ? "AWQ+GPTQ" : o.duo_scaling ? "AWQ (duo scaling)" : "AWQ") + suffix);
      } else if (method == "gptqseq" || method == "gptqseql") {  // sequential: per linear input / per layer
        GptqOptions o;
        o.spec = spec;
        o.spec_for = spec_for;
        o.mse_clip = mse_clip;
        o.act_order = bench::has_flag(argc, argv, "--act-order");  // static groups, as tern quantize writes
        o.static_groups = true;
        o.percdamp = std::stod(bench::arg_value(argc, argv, "--damp", "0.01"));
        CalibrationOptions sopt;
        sopt.hessian = true;
        const GptqSequential mode = method == "gptqseq" ? GptqSequential::kPerInput : GptqSequential::kPerLayer;
        auto qm = must(quantize_model_gptq_sequential(*base_model, ctx, windows, sopt, o, mode), "gptq sequential");
        report(qm, spec, bench::now_s() - t0,
               std::string(mode == GptqSequential::kPerInput ? "GPTQ sequential" : "GPTQ sequential per layer") +
                   (o.act_order ? " (act-order)" : "") + suffix);
      } else if (method == "gptq" || method == "gptqact") {
        GptqOptions o;
        o.spec = spec;
        o.spec_for = spec_for;
        o.mse_clip = mse_clip;
        o.act_order = method == "gptqact";
        o.percdamp = std::stod(bench::arg_value(argc, argv, "--damp", "0.01"));
        o.static_groups = true;
        auto qm = must(quantize_model_gptq(*base_model, ctx, stats, o), "gptq");
        report(qm, spec, bench::now_s() - t0, (o.act_order ? "GPTQ (act-order)" : "GPTQ") + suffix);
        if (sens_windows > 0) sensitivity(qm, spec);
      }
    }
  }
  for (const auto& method : methods) {
    t0 = bench::now_s();
    if (method == "rtn8") {
      report(must(quantize_model_rtn(*base_model, QuantSpec{8, 0, true}), "rtn8"), QuantSpec{8, 0, true}, bench::now_s() - t0,
             "RTN W8A16");
    }
    for (const auto& alpha : split(bench::arg_value(argc, argv, "--sq-alpha", "0.5"))) {
      if (method != "sq" && method != "sqnoo" && method != "sqsearch") break;
      SmoothQuantOptions so;
      so.alpha = std::stod(alpha);
      so.smooth_o = method != "sqnoo";
      if (method == "sqsearch") {  // α per layer and input, searched on the calibration sample rows
        so.layer_alpha = must(search_smoothquant_alpha(ctx, *base_model, stats, so, default_alpha_grid()), "alpha search");
        for (size_t l = 0; l < so.layer_alpha.size(); ++l)
          fmt::print(stderr, "layer {} alpha {}\n", l, fmt::join(so.layer_alpha[l], " "));
      }
      auto qm = must(quantize_model_smoothquant(*base_model, stats, so), "smoothquant");
      report(qm, QuantSpec{8, 0, true}, bench::now_s() - t0,
             fmt::format("SmoothQuant W8A8 (α {}{})", so.layer_alpha.empty() ? fmt::format("{}", so.alpha) : "searched per layer",
                         so.smooth_o ? ", o_proj via v_proj" : ", o_proj unsmoothed"));
      if (!so.layer_alpha.empty()) break;  // the search does not depend on --sq-alpha
    }
  }
  return 0;
}
