// tern run: generate a continuation of a prompt, streamed to stdout as it is produced.
// stdout carries only the generated text; timings go to stderr.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <iterator>

#include "cli_common.h"
#include "parallel_session.h"
#include "plan/memory_budget.h"
#include "runtime/generator.h"

namespace tern::cli {

namespace {

struct RunOptions {
  RuntimeOptions runtime;
  ParallelOptions parallel;
  std::string model;
  std::string prompt;
  bool prompt_from_stdin = false;
  int64_t n_predict = 128;
  SamplingParams sampling{.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f};
  int64_t seed = -1;
  std::vector<std::string> stop;
  bool ignore_eos = false;
  bool no_bos = false;
  bool echo = false;
  bool quiet = false;
  KvDType kv_dtype = KvDType::F32;  // exact: a bf16 cache can flip near-tied greedy tokens
};

void run(const RunOptions& o) {
  auto par = ParallelSession::start(o.parallel, o.runtime);
  if (par && par->worker()) return par->run_worker(o.model, o.runtime);
  Runtime rt(o.runtime);
  auto loaded = load_model_and_tokenizer(o.model, o.runtime, par.get());
  auto model = std::move(loaded.model);
  auto tokenizer = std::move(loaded.tokenizer);
  if (!tokenizer) fail(o.model + ": no tokenizer.json (tern run needs one to read the prompt)");
  std::string prompt = o.prompt;
  if (o.prompt_from_stdin) prompt.assign(std::istreambuf_iterator<char>(std::cin), {});

  GenerationRequest req;
  req.prompt = tokenizer->encode(prompt, /*add_special_tokens=*/!o.no_bos);
  // Refuse up front, with the planner's reason, what would run out of memory midway.
  if (auto host = plan::read_host_memory(); host.is_ok()) {
    int64_t tokens = int64_t(req.prompt.size()) + o.n_predict;
    if (model->config().max_position_embeddings > 0) tokens = std::min(tokens, model->config().max_position_embeddings);
    check(plan::check_fits_host(model->config(), *host, tokens, double(model->store().total_bytes()), o.kv_dtype));
  }
  req.max_new_tokens = o.n_predict;
  req.sampling = o.sampling;
  if (o.seed >= 0) req.sampling.seed = uint64_t(o.seed);
  req.stop = o.stop;
  req.eos_ids = eos_ids(*model, &*tokenizer);
  req.ignore_eos = o.ignore_eos;
  req.kv_dtype = o.kv_dtype;

  if (o.echo) {
    std::fwrite(prompt.data(), 1, prompt.size(), stdout);
    std::fflush(stdout);
  }
  Generator gen(*model, &*tokenizer, rt.ctx);
  auto result = unwrap(gen.generate(req, [](std::string_view piece) {
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
  }));
  std::fputc('\n', stdout);
  std::fflush(stdout);
  if (!o.quiet) {
    const double n_dec = double(result.tokens.size() > 0 ? result.tokens.size() - 1 : 0);
    std::fprintf(stderr,
                 "\n[tern] prompt %zu tokens in %.3f s (%.1f tok/s incl. first token) | generated %zu tokens, "
                 "decode %.2f tok/s | finish: %s | %d threads, cpu: %s\n",
                 req.prompt.size(), result.prefill_seconds, double(req.prompt.size()) / result.prefill_seconds,
                 result.tokens.size(), result.decode_seconds > 0 ? n_dec / result.decode_seconds : 0.0,
                 finish_reason_name(result.finish), rt.pool.size(), rt.cpu.describe().c_str());
  }
}

}  // namespace

void register_run(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand("run", "generate text from a prompt");
  add_model_option(*cmd, o->model);
  auto* p = cmd->add_option("-p,--prompt", o->prompt, "prompt text");
  cmd->add_flag("--stdin", o->prompt_from_stdin, "read the prompt from standard input")->excludes(p);
  cmd->add_option("-n,--n-predict", o->n_predict, "maximum tokens to generate")->check(CLI::Range(int64_t(0), int64_t(1) << 24));
  add_sampling_options(*cmd, o->sampling, o->seed);
  cmd->add_option("--stop", o->stop, "stop string (repeatable); never printed");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "keep generating past end-of-sequence tokens");
  cmd->add_flag("--no-bos", o->no_bos, "do not add the BOS token / special tokens to the prompt");
  cmd->add_flag("--echo", o->echo, "print the prompt before the continuation");
  cmd->add_flag("-q,--quiet", o->quiet, "no timings on stderr");
  add_kv_dtype_option(*cmd, o->kv_dtype);
  o->runtime.add_to(*cmd);
  o->parallel.add_to(*cmd);
  cmd->callback([o, p] {
    if (p->count() == 0 && !o->prompt_from_stdin) fail("give a prompt with -p TEXT or --stdin");
    run(*o);
  });
}

}  // namespace tern::cli
