// tern eval ppl: perplexity of a model on a text file (DESIGN.md protocols).
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "core/mapped_file.h"
#include "eval/perplexity.h"

namespace tern::cli {

namespace {

struct PplOptions {
  RuntimeOptions runtime;
  std::string model, file, protocol = "tern";
  int64_t ctx = 512, windows = -1;  // -1: the protocol's default (40 for tern, all for llama.cpp)
  bool json = false;
  std::string kv_dtype = "f32";
};

void eval_ppl(const PplOptions& o) {
  Runtime rt(o.runtime);
  auto model = unwrap(Model::load(o.model));
  auto tokenizer = load_tokenizer_if_present(o.model);
  if (!tokenizer) fail(o.model + ": no tokenizer.json");
  const std::string text = unwrap(read_text_file(o.file));
  const std::vector<int32_t> tokens = tokenizer->encode(text, /*add_special_tokens=*/true);
  PerplexityOptions popt;
  popt.ctx = o.ctx;
  popt.max_windows = o.windows >= 0 ? o.windows : (o.protocol == "llama.cpp" ? 0 : 40);
  popt.protocol = o.protocol == "llama.cpp" ? PplProtocol::kLlamaCpp : PplProtocol::kWindows;
  popt.bos_id = tokenizer->bos_id().value_or(-1);
  popt.kv_dtype = unwrap(parse_kv_dtype(o.kv_dtype));
  auto progress = [&](int64_t done, int64_t total) {
    if (!o.json) fmt::print(stderr, "\r[tern] window {}/{}", done, total);
  };
  auto r = unwrap(perplexity(*model, rt.ctx, tokens, popt, progress));
  if (o.json) {
    nlohmann::ordered_json j;
    j["ppl"] = r.ppl;
    j["tokens"] = r.tokens_scored;
    j["mean_nll"] = r.mean_nll;
    j["windows"] = r.windows;
    j["ctx"] = o.ctx;
    j["protocol"] = o.protocol;
    j["kv_dtype"] = o.kv_dtype;
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
  CLI::App* ppl = eval->add_subcommand("ppl", "perplexity on a text file");
  ppl->add_option("-m,--model", o->model, "model directory or .gguf file")->required();
  ppl->add_option("-f,--file", o->file, "text file")->required();
  ppl->add_option("--ctx", o->ctx, "window length in tokens")->check(CLI::Range(int64_t(2), int64_t(1) << 20));
  ppl->add_option("--windows", o->windows, "number of windows (0 = all; default 40, all for llama.cpp protocol)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 30));
  ppl->add_option("--protocol", o->protocol, "tern (score every token) or llama.cpp (second half, BOS first)")
      ->check(CLI::IsMember({"tern", "llama.cpp"}));
  ppl->add_flag("--json", o->json, "print one JSON object");
  ppl->add_option("--kv-dtype", o->kv_dtype, "KV cache storage: f32 (default), bf16, int8 or fp8");
  o->runtime.add_to(*ppl);
  ppl->callback([o] { eval_ppl(*o); });
}

}  // namespace tern::cli
