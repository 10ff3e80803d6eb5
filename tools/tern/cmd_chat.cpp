// tern chat: an interactive chat in the terminal (or through a pipe) with the model's own chat template.
// Each turn renders the whole conversation (add_generation_prompt = true), tokenizes it the way Hugging Face's
// apply_chat_template does (add_special_tokens = false: the template itself writes BOS when the model wants
// one), and streams the reply. The conversation's KV cache is kept between turns (GenerationSession): a
// turn reuses the K/V of everything the earlier turns computed that its prompt repeats, so it computes only
// the tokens it adds. In a terminal, lines are edited and recalled with libedit (line_reader.h).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "parallel_session.h"
#include "line_reader.h"
#include "text/chat_template/chat_template.h"
#include "runtime/generator.h"

namespace tern::cli {

namespace {

struct ChatOptions {
  RuntimeOptions runtime;
  std::string model;
  std::string system;
  int64_t n_predict = 512;
  SamplingParams sampling{.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f, .seed = {}};
  int64_t seed = -1;
  KvDType kv_dtype = KvDType::F32;  // exact: a bf16 cache can flip near-tied greedy tokens
  bool quiet = false;
};

nlohmann::json message(const std::string& role, const std::string& content) {
  return {{"role", role}, {"content", content}};
}

void chat(const ChatOptions& o) {
  Runtime rt(o.runtime);
  auto loaded = load_model_and_tokenizer(o.model, o.runtime, nullptr);
  auto model = std::move(loaded.model);
  auto tok = std::move(loaded.tokenizer);
  if (!tok) fail(o.model + ": no tokenizer.json (tern chat needs one)");
  auto tmpl = load_model_chat_template(o.model);
  check(o.sampling.validate());

  std::vector<int32_t> stop_ids = eos_ids(*model, &*tok);
  for (int32_t id : end_of_turn_ids(tmpl, *tok)) {
    if (std::find(stop_ids.begin(), stop_ids.end(), id) == stop_ids.end()) stop_ids.push_back(id);
  }

  LineReader reader(isatty(STDIN_FILENO) != 0);
  if (reader.interactive()) {
    std::fprintf(stderr, "[tern] chat: /reset clears the conversation, /exit (or Ctrl-D) quits; arrow keys recall "
                         "earlier lines\n");
  }
  nlohmann::json history = nlohmann::json::array();
  if (!o.system.empty()) history.push_back(message("system", o.system));
  const size_t base = history.size();
  Generator gen(*model, &*tok, rt.ctx);
  GenerationSession session(model->config(), o.kv_dtype);

  for (;;) {
    const std::optional<std::string> input = reader.read();
    if (!input) break;
    const std::string& line = *input;
    reader.remember(line);
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      history.erase(history.begin() + std::ptrdiff_t(base), history.end());
      if (reader.interactive()) std::fprintf(stderr, "[tern] conversation cleared\n");
      continue;  // the session keeps the system prompt's K/V: the next turn starts with it
    }
    if (line.empty()) continue;

    history.push_back(message("user", line));
    nlohmann::ordered_json ctx = tmpl.special_tokens;
    ctx["messages"] = history;
    ctx["add_generation_prompt"] = true;
    auto rendered = tmpl.chat_template.render(ctx);
    GenerationRequest req;
    if (rendered.is_ok()) req.prompt = tok->encode(rendered.value(), /*add_special_tokens=*/false);
    req.max_new_tokens = o.n_predict;
    req.sampling = o.sampling;
    if (o.seed >= 0) req.sampling.seed = uint64_t(o.seed);
    req.eos_ids = stop_ids;
    req.kv_dtype = o.kv_dtype;
    auto result = rendered.is_ok() ? gen.generate(
                                         req,
                                         [](std::string_view piece) {
                                           std::fwrite(piece.data(), 1, piece.size(), stdout);
                                           std::fflush(stdout);
                                         },
                                         &session)
                                   : Result<GenerationResult>(rendered.status());
    if (!result.is_ok()) {
      // A turn that cannot run (context full, template error) is reported; the chat goes on without it.
      history.erase(history.end() - 1);
      std::fprintf(stderr, "tern: error: %s\n", result.status().message().c_str());
      continue;
    }
    std::fputc('\n', stdout);
    std::fflush(stdout);
    history.push_back(message("assistant", result.value().text));
    if (!o.quiet) {
      const auto& r = result.value();
      std::fprintf(stderr, "[tern] prompt %zu tokens (%lld reused from earlier turns), reply %zu tokens in %.2f s, "
                   "finish: %s\n", req.prompt.size(), (long long)r.reused_prompt_tokens, r.tokens.size(),
                   r.prefill_seconds + r.decode_seconds, finish_reason_name(r.finish));
    }
  }
}

}  // namespace

void register_chat(CLI::App& app) {
  auto o = std::make_shared<ChatOptions>();
  CLI::App* cmd = app.add_subcommand("chat", "interactive chat with the model's chat template (/reset, /exit)");
  add_model_option(*cmd, o->model);
  cmd->add_option("--system", o->system, "system prompt");
  cmd->add_option("-n,--n-predict", o->n_predict, "maximum tokens per reply")->check(CLI::Range(int64_t(1), int64_t(1) << 24));
  add_sampling_options(*cmd, o->sampling, o->seed);
  add_kv_dtype_option(*cmd, o->kv_dtype);
  cmd->add_flag("-q,--quiet", o->quiet, "no per-turn timings on stderr");
  o->runtime.add_to(*cmd);
  cmd->callback([o] { chat(*o); });
}

}  // namespace tern::cli
