// Pieces every tern subcommand shares: the options for model, threads and CPU level, and the
// one-line error path (a message on stderr, exit code 1, never a crash).
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <optional>
#include <string>

#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "engine/engine.h"
#include "engine/model_runner.h"
#include "text/chat_template/chat_template.h"
#include "model/model.h"
#include "runtime/sampling_params.h"
#include "text/tokenizer/tokenizer.h"
#include "core/exec_context.h"

namespace tern::cli {

struct RuntimeOptions {
  int threads = 0;               // 0 = every core we may run on
  std::string cpu_level = "auto";  // auto, scalar, avx2, avx512, avx512bf16, amx
  std::string device = "cpu";      // cpu or cuda (--device)
  // Set, before add_to, by commands whose compute goes through make_engine_runner (and so can run on
  // the GPU): only they list --device; the others compute on the CPU and do not offer it.
  bool cuda_capable = false;
  std::string lm_head = "auto";  // --lm-head: auto, dense, int8, int4 (model/model.h LmHeadFormat)
  std::string activations = "f32";  // --activations: f32, or bf16 (core/exec_context.h ActivationPrecision)
  std::string weight_cache = "auto";  // --weight-cache: auto, off (model/model.h WeightCacheMode)

  void add_to(CLI::App& app);
  // How Model::load stores what these options describe (the LM head).
  ModelLoadOptions load_options() const;
};

// The pool and context a command runs on, built from RuntimeOptions.
struct Runtime {
  explicit Runtime(const RuntimeOptions& opt);
  CpuFeatures cpu;
  ThreadPool pool;
  ExecContext ctx;
  bool cuda = false;  // --device cuda and a usable GPU was found (else the constructor failed)
};

// The serving engine's model runner for this runtime: CudaModelRunner with --device cuda, else a
// CpuModelRunner sized for the engine's step (max_step_tokens rows, max_running sequences).
std::unique_ptr<ModelRunner> make_engine_runner(Runtime& rt, const Model& model, const EngineOptions& options);

// -m / --model as every command takes it. resolve_model_path: a model directory (holding config.json)
// as is, its config.json as the directory, a GGUF file (by its magic) as is; with any_json_config (tern
// plan) any .json file as is. Anything else is an error naming the path and what it is (a .gguf
// without the magic: "not a GGUF file"; a .safetensors file: give its directory).
Result<std::string> resolve_model_path(const std::string& arg, bool any_json_config = false);
// The same as a CLI11 transform, for options that name a model besides -m (eval --base).
CLI::Validator model_path_check(bool any_json_config = false);
enum class ModelOptionKind { kModel, kPlanSource };  // kPlanSource: optional, any .json config
// Adds -m,--model to cmd; the value is resolved while parsing (a bad path is a usage error).
CLI::Option* add_model_option(CLI::App& cmd, std::string& model, ModelOptionKind kind = ModelOptionKind::kModel);

// --kv-dtype with the one list of names core/kv_dtype.h has (f32|bf16|int8|fp8); `kv` holds the
// command's default and receives the choice.
CLI::Option* add_kv_dtype_option(CLI::App& cmd, KvDType& kv);

// The sampling flags of the generating commands (run, chat): --temp, --top-k, --top-p, --min-p,
// --repeat-penalty, --presence-penalty, --frequency-penalty into `sampling` (its values are the
// defaults), and -s/--seed into `seed` (-1 = random).
void add_sampling_options(CLI::App& cmd, SamplingParams& sampling, int64_t& seed);

// The `tern bench` group every benchmark subcommand registers under (created by the first caller).
CLI::App* bench_group(CLI::App& app);

// A thrown CliError ends the command with "tern: error: <message>" and exit code 1.
struct CliError {
  std::string message;
};
[[noreturn]] void fail(const std::string& message);
template <typename T>
T unwrap(Result<T> r) {
  if (!r.is_ok()) fail(r.status().message());
  return std::move(r).value();
}
inline void check(const Status& s) {
  if (!s.is_ok()) fail(s.message());
}

// The model's tokenizer (tokenizer.json in the model directory, or a .gguf file's), or nothing when it has none.
std::optional<Tokenizer> load_tokenizer_if_present(const std::string& model_dir);
// The chat template of a model directory (tokenizer_config.json) or a .gguf file (its metadata).
Result<ModelChatTemplate> try_load_model_chat_template(const std::string& model);
ModelChatTemplate load_model_chat_template(const std::string& model);
// config.json of a model directory, or a .gguf file's metadata read as one.
ModelConfig load_any_model_config(const std::string& model);
// The special tokens that end an assistant turn (<|im_end|>, <|eot_id|>, </s>, ...): what the template
// writes right after an assistant message. Empty when the template cannot render such a conversation.
std::vector<int32_t> end_of_turn_ids(const ModelChatTemplate& t, const Tokenizer& tok);
// EOS ids from config.json, generation_config.json and the tokenizer, merged.
std::vector<int32_t> eos_ids(const Model& model, const Tokenizer* tokenizer);

void register_run(CLI::App& app);
void register_info(CLI::App& app);
void register_eval(CLI::App& app);
void register_synth(CLI::App& app);
void register_tokenize(CLI::App& app);  // tokenize and detokenize
void register_chat(CLI::App& app);
void register_plan(CLI::App& app);
void register_serve(CLI::App& app);        // cmd_serve.cpp
void register_router(CLI::App& app);       // cmd_router.cpp
void register_bench_serve(CLI::App& app);  // cmd_bench_serve.cpp: `bench serve` (adds `bench` if absent)
void register_bench_offline(CLI::App& app);  // cmd_bench_offline.cpp: `bench offline` (adds `bench` if absent)
void register_quantize(CLI::App& app);
void register_prune(CLI::App& app);  // cmd_prune.cpp
void register_distill(CLI::App& app);  // cmd_distill.cpp
void register_gguf(CLI::App& app);  // gguf quantize / gguf info
void register_sparsify(CLI::App& app);  // cmd_sparsify.cpp

}  // namespace tern::cli
