// Quantization quality on a model (default docs-llama-28m): calibrate on the first half of a text
// (default docs-val.txt), evaluate on its second half under both perplexity protocols, and print one
// markdown row per method: bits per weight, ppl and ΔPPL (tern and llama.cpp protocols), KL divergence
// from the base model and top-1 agreement. Weights are dequantized into a dense f32 copy of the model
// in memory (W8A8 also rounds activations per token), so this measures the methods, not the kernels.
//
//   bench_quant_quality [--model DIR] [--text FILE] [--threads N] [--calib-windows 32]
//                       [--methods rtn,awq,awqduo,gptq,gptqact,rtn8,sq]
//                       [--groups 128,32] [--llamacpp-windows 0] [--topk 128]
#include <fmt/format.h>

#include <sstream>

#include "bench_common.h"
#include "compress/awq.h"
#include "compress/calibration.h"
#include "compress/gptq.h"
#include "compress/smoothquant.h"
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
double bits_per_weight(const Model& m, const QuantSpec& spec) {
  double bits = 0, params = 0;
  for (const auto& t : m.store().tensors()) {
    bits += double(t.numel()) * double(dtype_size(t.dtype)) * 8, params += double(t.numel());
  }
  for (const auto& l : m.weights().layers)
    for (LinearKind k : kAllLinears) {
      const WeightMatrix& w = linear_weight(l, k);
      const double n = double(w.rows * w.cols), group = spec.group > 0 ? spec.group : double(w.cols);
      bits -= n * double(dtype_size(w.dtype)) * 8;
      bits += n * (spec.bits + (16.0 + (spec.symmetric ? 0 : spec.bits)) / group);
    }
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
  auto report = [&](const QuantizedModel& qm, const QuantSpec& spec, double seconds, const std::string& name) {
    auto m = must(Model::load(dir), "model");
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
    fmt::print("| {} | {} | {} | {:.2f} | {:.4f} | {:+.2f}% | {:.4f} | {:+.2f}% | {:.5f} | {:.5f} | {:.4f} | {:.2f}% | {:.1f} |\n",
               name, spec.bits, spec.group > 0 ? std::to_string(spec.group) : "channel",
               bits_per_weight(*base_model, spec), q[0].ppl.ppl, (q[0].ppl.ppl / q[0].base_ppl - 1) * 100, q[1].ppl.ppl,
               (q[1].ppl.ppl / q[1].base_ppl - 1) * 100, q[0].kl.kl_mean, q[0].kl.kl_median, q[0].kl.kl_p99,
               q[0].kl.top1 * 100, seconds);
    std::fflush(stdout);
  };
  fmt::print("| base (bf16) | 16 | - | 16.00 | {:.4f} | - | {:.4f} | - | 0 | 0 | 0 | 100% | - |\n", evals[0].base.base_ppl(),
             evals[1].base.base_ppl());
  // Methods: rtn, awq (mean|x|^a), awqduo (AutoAWQ's duo scaling), gptq, gptqact (act-order): 4-bit at each
  // --groups; rtn8 (W8A16 per channel) and sq (SmoothQuant W8A8) once.
  for (const auto& g : groups) {
    const QuantSpec spec{4, std::stoi(g), /*symmetric=*/false};
    for (const auto& method : methods) {
      t0 = bench::now_s();
      if (method == "rtn") {
        report(must(quantize_model_rtn(*base_model, spec), "rtn"), spec, bench::now_s() - t0, "RTN");
      } else if (method == "awq" || method == "awqduo") {
        AwqOptions o;
        o.spec = spec;
        o.duo_scaling = method == "awqduo";
        auto qm = must(quantize_model_awq(*base_model, ctx, stats, o), "awq");
        report(qm, spec, bench::now_s() - t0, o.duo_scaling ? "AWQ (duo scaling)" : "AWQ");
      } else if (method == "gptq" || method == "gptqact") {
        GptqOptions o;
        o.spec = spec;
        o.act_order = method == "gptqact";
        auto qm = must(quantize_model_gptq(*base_model, ctx, stats, o), "gptq");
        report(qm, spec, bench::now_s() - t0, o.act_order ? "GPTQ (act-order)" : "GPTQ");
      }
    }
  }
  for (const auto& method : methods) {
    t0 = bench::now_s();
    if (method == "rtn8") {
      report(must(quantize_model_rtn(*base_model, QuantSpec{8, 0, true}), "rtn8"), QuantSpec{8, 0, true}, bench::now_s() - t0,
             "RTN W8A16");
    }
    if (method == "sq") {
      auto qm = must(quantize_model_smoothquant(*base_model, stats, SmoothQuantOptions{}), "smoothquant");
      report(qm, QuantSpec{8, 0, true}, bench::now_s() - t0, "SmoothQuant W8A8");
    }
  }
  return 0;
}
