// tern chat: an interactive chat in the terminal (or through a pipe) with the model's own chat template.
// Each turn renders the whole conversation (add_generation_prompt = true), tokenizes it the way Hugging Face's
// apply_chat_template does (add_special_tokens = false: the template itself writes BOS when the model wants
// one), and streams the reply. The KV cache is NOT reused across turns: Generator owns a fresh cache per call,
// so every turn recomputes the prompt (cheap at chat lengths on the models this CLI targets).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "model/chat_template/chat_template.h"
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
  bool quiet = false;
};

nlohmann::json message(const std::string& role, const std::string& content) {
  return {{"role", role}, {"content", content}};
}

// The special tokens that end an assistant turn (<|im_end|>, <|eot_id|>, </s>, ...): render a conversation
// whose reply is a marker, and take the special tokens the template writes right after that marker.
std::vector<int32_t> end_of_turn_ids(const ModelChatTemplate& t, const Tokenizer& tok) {
  const std::string marker = "tern-reply-marker";
  nlohmann::json ctx = t.special_tokens;
  ctx["messages"] = nlohmann::json::array({message("user", "hi"), message("assistant", marker)});
  ctx["add_generation_prompt"] = false;
  auto text = t.chat_template.render(ctx);
  std::vector<int32_t> ids;
  if (!text.is_ok()) {
    // A template that needs more (a system turn, ...) or hits a limit: EOS alone then, said once.
    std::fprintf(stderr, "[tern] warning: end-of-turn tokens not detected, the chat template failed a probe "
                         "conversation: %s\n", text.status().message().c_str());
    return ids;
  }
  const size_t at = text.value().rfind(marker);
  if (at == std::string::npos) return ids;
  for (int32_t id : tok.encode(std::string_view(text.value()).substr(at + marker.size()), false)) {
    if (tok.is_special(id)) ids.push_back(id);
  }
  return ids;
}

void chat(const ChatOptions& o) {
  Runtime rt(o.runtime);
  auto model = unwrap(Model::load(o.model, o.runtime.load_options()));
  auto tok = load_tokenizer_if_present(o.model);
  if (!tok) fail(o.model + ": no tokenizer.json (tern chat needs one)");
  auto tmpl = load_model_chat_template(o.model);
  check(o.sampling.validate());

  std::vector<int32_t> stop_ids = eos_ids(*model, &*tok);
  for (int32_t id : end_of_turn_ids(tmpl, *tok)) {
    if (std::find(stop_ids.begin(), stop_ids.end(), id) == stop_ids.end()) stop_ids.push_back(id);
  }

  const bool interactive = isatty(STDIN_FILENO) != 0;
  if (interactive) std::fprintf(stderr, "[tern] chat: /reset clears the conversation, /exit (or Ctrl-D) quits\n");
  nlohmann::json history = nlohmann::json::array();
  if (!o.system.empty()) history.push_back(message("system", o.system));
  const size_t base = history.size();
  Generator gen(*model, &*tok, rt.ctx);

  std::string line;
  for (;;) {
    if (interactive) {
      std::fputs("> ", stdout);
      std::fflush(stdout);
    }
    if (!std::getline(std::cin, line)) break;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      history.erase(history.begin() + std::ptrdiff_t(base), history.end());
      if (interactive) std::fprintf(stderr, "[tern] conversation cleared\n");
      continue;
    }
    if (line.empty()) continue;

    history.push_back(message("user", line));
    nlohmann::json ctx = tmpl.special_tokens;
    ctx["messages"] = history;
    ctx["add_generation_prompt"] = true;
    auto rendered = tmpl.chat_template.render(ctx);
    GenerationRequest req;
    if (rendered.is_ok()) req.prompt = tok->encode(rendered.value(), /*add_special_tokens=*/false);
    req.max_new_tokens = o.n_predict;
    req.sampling = o.sampling;
    if (o.seed >= 0) req.sampling.seed = uint64_t(o.seed);
    req.eos_ids = stop_ids;
    auto result = rendered.is_ok() ? gen.generate(req, [](std::string_view piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    })
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
      std::fprintf(stderr, "[tern] prompt %zu tokens, reply %zu tokens in %.2f s, finish: %s\n", req.prompt.size(),
                   r.tokens.size(), r.prefill_seconds + r.decode_seconds, finish_reason_name(r.finish));
    }
  }
}

}  // namespace

void register_chat(CLI::App& app) {
  auto o = std::make_shared<ChatOptions>();
  CLI::App* cmd = app.add_subcommand("chat", "interactive chat with the model's chat template (/reset, /exit)");
  cmd->add_option("-m,--model", o->model, "model directory (Hugging Face layout) or .gguf file")->required();
  cmd->add_option("--system", o->system, "system prompt");
  cmd->add_option("-n,--n-predict", o->n_predict, "maximum tokens per reply")->check(CLI::Range(int64_t(1), int64_t(1) << 24));
  cmd->add_option("--temp,--temperature", o->sampling.temperature, "sampling temperature (0 = greedy)");
  cmd->add_option("--top-k", o->sampling.top_k, "keep the k most likely tokens (0 = off)");
  cmd->add_option("--top-p", o->sampling.top_p, "nucleus sampling mass (1 = off)");
  cmd->add_option("--min-p", o->sampling.min_p, "drop tokens below min_p * p_max (0 = off)");
  cmd->add_option("--repeat-penalty", o->sampling.repetition_penalty, "repetition penalty (1 = off)");
  cmd->add_option("--presence-penalty", o->sampling.presence_penalty, "presence penalty");
  cmd->add_option("--frequency-penalty", o->sampling.frequency_penalty, "frequency penalty");
  cmd->add_option("-s,--seed", o->seed, "random seed (-1 = random)");
  cmd->add_flag("-q,--quiet", o->quiet, "no per-turn timings on stderr");
  o->runtime.add_to(*cmd);
  cmd->callback([o] { chat(*o); });
}

}  // namespace tern::cli
