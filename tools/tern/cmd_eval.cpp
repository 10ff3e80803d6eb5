// tern eval ppl: perplexity of a model on a text file (DESIGN.md protocols) and, against a base
// model (--base DIR, or its logits saved once with --save-logits and reused with --base-logits),
// KL divergence of the next-token distributions (mean, median, p99) and top-1 agreement.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "parallel_session.h"
#include "core/mapped_file.h"
#include "eval/perplexity.h"
#include "eval/quality.h"

namespace tern::cli {

namespace {

struct PplOptions {
  RuntimeOptions runtime;
  ParallelOptions parallel;
  std::string model, file, protocol = "tern";
  int64_t ctx = 512, windows = -1;  // -1: the protocol's default (40 for tern, all for llama.cpp)
  bool json = false;
  KvDType kv_dtype = KvDType::F32;
  std::string base, base_logits, save_logits;
  int kl_topk = 128;
};

void print_quality(const PplOptions& o, const QualityResult& q, size_t file_tokens) {
  const auto& r = q.ppl;
  const double delta = (r.ppl / q.base_ppl - 1.0) * 100.0;
  if (o.json) {
    nlohmann::ordered_json j;
    j["ppl"] = r.ppl;
    j["base_ppl"] = q.base_ppl;
    j["delta_ppl_pct"] = delta;
    j["kl_mean"] = q.kl.kl_mean;
    j["kl_median"] = q.kl.kl_median;
    j["kl_p99"] = q.kl.kl_p99;
    j["kl_max"] = q.kl.kl_max;
    j["top1"] = q.kl.top1;
    j["kl_topk"] = o.kl_topk;
    j["tokens"] = r.tokens_scored;
    j["mean_nll"] = r.mean_nll;
    j["windows"] = r.windows;
    j["ctx"] = o.ctx;
    j["protocol"] = o.protocol;
    j["file_tokens"] = file_tokens;
    j["seconds"] = r.seconds;
    fmt::print("{}\n", j.dump());
  } else {
    fmt::print(stderr, "\n");
    fmt::print("ppl {:.4f} over {} tokens ({} windows of {}, protocol {}) in {:.1f} s\n", r.ppl, r.tokens_scored,
               r.windows, o.ctx, o.protocol, r.seconds);
    fmt::print("base ppl {:.4f} (delta {:+.3f}%)\n", q.base_ppl, delta);
    fmt::print("KL divergence from base: mean {:.6f}  median {:.6f}  p99 {:.6f}  max {:.6f}\n", q.kl.kl_mean,
               q.kl.kl_median, q.kl.kl_p99, q.kl.kl_max);
    fmt::print("top-1 agreement {:.3f}% over {} positions\n", q.kl.top1 * 100.0, q.kl.positions);
  }
}

void eval_ppl(const PplOptions& o) {
  auto par = ParallelSession::start(o.parallel, o.runtime);
  if (par && par->worker()) return par->run_worker(o.model, o.runtime);
  if (par && !o.base.empty()) {
    fail("--tp: --base would load the whole base model on rank 0; save its logits once with --save-logits and "
         "pass --base-logits");
  }
  Runtime rt(o.runtime);
  auto loaded = load_model_and_tokenizer(o.model, o.runtime, par.get());
  auto model = std::move(loaded.model);
  auto tokenizer = std::move(loaded.tokenizer);
  if (!tokenizer) fail(o.model + ": no tokenizer.json");
  const std::string text = unwrap(read_text_file(o.file));
  const std::vector<int32_t> tokens = tokenizer->encode(text, /*add_special_tokens=*/true);
  PerplexityOptions popt;
  popt.ctx = o.ctx;
  popt.max_windows = o.windows >= 0 ? o.windows : (o.protocol == "llama.cpp" ? 0 : 40);
  popt.protocol = o.protocol == "llama.cpp" ? PplProtocol::kLlamaCpp : PplProtocol::kWindows;
  popt.bos_id = tokenizer->bos_id().value_or(-1);
  popt.kv_dtype = o.kv_dtype;
  auto progress = [&](int64_t done, int64_t total) {
    if (!o.json) fmt::print(stderr, "\r[tern] window {}/{}", done, total);
  };
  const int n_base_sources = int(!o.base.empty()) + int(!o.base_logits.empty());
  if (n_base_sources > 1) fail("give --base or --base-logits, not both");
  if (n_base_sources && !o.save_logits.empty()) fail("--save-logits saves the evaluated model as a base; drop --base/--base-logits");
  if (!o.save_logits.empty()) {
    BaseLogits b = unwrap(record_base_logits(*model, rt.ctx, tokens, popt, o.kl_topk, progress));
    check(save_base_logits(b, o.save_logits));
    if (!o.json) fmt::print(stderr, "\n[tern] saved the logits of {} positions (top {}) to {}\n", b.positions(), b.k,
                            o.save_logits);
    PerplexityResult r;
    r.ppl = b.base_ppl();
    if (o.json) {
      nlohmann::ordered_json j;
      j["ppl"] = r.ppl;
      j["tokens"] = b.positions();
      j["windows"] = b.windows;
      j["ctx"] = o.ctx;
      j["protocol"] = o.protocol;
      j["saved_logits"] = o.save_logits;
      fmt::print("{}\n", j.dump());
    } else {
      fmt::print("ppl {:.4f} over {} tokens ({} windows of {}, protocol {})\n", r.ppl, b.positions(), b.windows, o.ctx,
                 o.protocol);
    }
    return;
  }
  if (n_base_sources) {
    BaseLogits base;
    if (!o.base.empty()) {
      auto base_model = unwrap(Model::load(o.base));
      if (!o.json) fmt::print(stderr, "[tern] base model {}\n", o.base);
      base = unwrap(record_base_logits(*base_model, rt.ctx, tokens, popt, o.kl_topk, progress));
      if (!o.json) fmt::print(stderr, "\n");
    } else {
      base = unwrap(load_base_logits(o.base_logits));
    }
    print_quality(o, unwrap(compare_with_base(*model, rt.ctx, tokens, popt, base, progress)), tokens.size());
    return;
  }
  auto r = unwrap(perplexity(*model, rt.ctx, tokens, popt, progress));
  if (o.json) {
    nlohmann::ordered_json j;
    j["ppl"] = r.ppl;
    j["tokens"] = r.tokens_scored;
    j["mean_nll"] = r.mean_nll;
    j["windows"] = r.windows;
    j["ctx"] = o.ctx;
    j["protocol"] = o.protocol;
    j["kv_dtype"] = kv_dtype_name(o.kv_dtype);
    j["file_tokens"] = tokens.size();
    j["seconds"] = r.seconds;
    j["tokens_per_second"] = double(r.windows * o.ctx) / r.seconds;
    fmt::print("{}\n", j.dump());
  } else {
    fmt::print(stderr, "\n");
    fmt::print("ppl {:.4f} over {} tokens ({} windows of {}, protocol {}) in {:.1f} s\n", r.ppl, r.tokens_scored,
               r.windows, o.ctx, o.protocol, r.seconds);
  }
}

}  // namespace

void register_eval(CLI::App& app) {
  CLI::App* eval = app.add_subcommand("eval", "measure model quality");
  eval->require_subcommand(1);
  auto o = std::make_shared<PplOptions>();
  CLI::App* ppl = eval->add_subcommand("ppl", "perplexity on a text file; KL divergence and top-1 agreement vs a base model");
  add_model_option(*ppl, o->model);
  ppl->add_option("-f,--file", o->file, "text file")->required();
  ppl->add_option("--ctx", o->ctx, "window length in tokens")->check(CLI::Range(int64_t(2), int64_t(1) << 20));
  ppl->add_option("--windows", o->windows, "number of windows (0 = all; default 40, all for llama.cpp protocol)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 30));
  ppl->add_option("--protocol", o->protocol, "tern (score every token) or llama.cpp (second half, BOS first)")
      ->check(CLI::IsMember({"tern", "llama.cpp"}));
  ppl->add_flag("--json", o->json, "print one JSON object");
  add_kv_dtype_option(*ppl, o->kv_dtype);
  ppl->add_option("--base", o->base, "base model (directory, config.json or .gguf): also report KL divergence and "
                                     "top-1 agreement vs it")
      ->transform(model_path_check());
  ppl->add_option("--base-logits", o->base_logits, "base logits saved by --save-logits (same text, ctx, protocol)");
  ppl->add_option("--save-logits", o->save_logits, "save this model's top-k log-probabilities as a base for later runs");
  ppl->add_option("--kl-topk", o->kl_topk, "base log-probabilities kept per position (rest is one bucket)")
      ->check(CLI::Range(1, 1 << 24));
  o->runtime.add_to(*ppl);
  o->parallel.add_to(*ppl);
  ppl->callback([o] { eval_ppl(*o); });
}

}  // namespace tern::cli
