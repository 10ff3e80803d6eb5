#include "cli_common.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "backend/cuda/cuda_model_runner.h"
#include "backend/cuda/device.h"
#include "core/mapped_file.h"
#include "engine/cpu_model_runner.h"
#include "formats/gguf/gguf_config.h"
#include "formats/generation_config.h"
#include "text/gguf_tokenizer.h"
#include "text/model_tokenizer.h"
#include "formats/model_config.h"

namespace tern::cli {

void RuntimeOptions::add_to(CLI::App& app) {
  app.add_option("-t,--threads", threads, "threads to use (0 = all cores)")->check(CLI::Range(0, 1024));
  app.add_option("--cpu", cpu_level, "highest CPU kernel level to use")
      ->check(CLI::IsMember({"auto", "scalar", "avx2", "avx512", "avx512bf16", "amx"}));
  app.add_option("--lm-head", lm_head,
                 "LM head storage: auto (int8 for a quantized checkpoint, else as stored), dense, int8, int4")
      ->check(CLI::IsMember({"auto", "dense", "int8", "int4"}));
  app.add_option("--activations", activations,
                 "precision of activations in bf16 prefill / batched matmuls: f32 (exact, batch-invariant), or bf16 "
                 "(AVX512-BF16 / AMX dot products where the CPU has them: faster prefill, logits ~0.05 off)")
      ->check(CLI::IsMember({"f32", "bf16"}));
  app.add_option("--weight-cache", weight_cache,
                 "a quantized checkpoint's layers repacked for the kernels (and its int8 LM head) are kept in "
                 "DIR/tern-packed-weights.bin and mapped by later loads: auto (use it when valid, else write it if "
                 "DIR is writable), off")
      ->check(CLI::IsMember({"auto", "off"}));
  // Only where the compute can run on the GPU (the engine's runners); elsewhere the option is absent.
  if (!cuda_capable) return;
  app.add_option("--device", device, "where the model runs: cpu, or cuda (GPU 0; needs a CUDA build and a GPU)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
}

ModelLoadOptions RuntimeOptions::load_options() const {
  ModelLoadOptions o;
  o.lm_head = unwrap(parse_lm_head_format(lm_head));
  o.weight_cache = unwrap(parse_weight_cache_mode(weight_cache));
  // bf16 activations take the bf16-dot GEMMs where the CPU has them: the layers are packed for them at load
  // (model/bf16_weights.h; a CPU-only layout, so not for --device cuda).
  const CpuFeatures c = cpu_level == "auto" ? CpuFeatures::detect() : CpuFeatures::detect().capped(cpu_level);
  o.bf16_dot_layers = activations == "bf16" && device != "cuda" && c.avx512_bf16;
  return o;
}

Runtime::Runtime(const RuntimeOptions& opt)
    : cpu(opt.cpu_level == "auto" ? CpuFeatures::detect() : CpuFeatures::detect().capped(opt.cpu_level)),
      pool(opt.threads > 0 ? opt.threads : default_thread_count()),
      ctx(pool, cpu, opt.activations == "bf16" ? ActivationPrecision::kBf16 : ActivationPrecision::kF32) {
  if (opt.device != "cuda") return;
  // A CUDA-built binary on a machine without a GPU or driver ends here with one line, never a crash.
  auto dev = cuda::probe_device(0);
  if (!dev.is_ok()) fail("--device cuda: " + dev.status().message());
  cuda = true;
}

std::unique_ptr<ModelRunner> make_engine_runner(Runtime& rt, const Model& model, const EngineOptions& eo) {
  if (rt.cuda) return unwrap(make_cuda_model_runner(model));
  // Logits rows: one per running sequence, plus the drafts speculative decoding verifies.
  return std::make_unique<CpuModelRunner>(model, rt.ctx, eo.max_step_tokens, eo.max_running + eo.speculative.max_draft_rows());
}

void add_sampling_options(CLI::App& cmd, SamplingParams& sampling, int64_t& seed) {
  cmd.add_option("--temp,--temperature", sampling.temperature, "sampling temperature (0 = greedy)");
  cmd.add_option("--top-k", sampling.top_k, "keep the k most likely tokens (0 = off)");
  cmd.add_option("--top-p", sampling.top_p, "nucleus sampling mass (1 = off)");
  cmd.add_option("--min-p", sampling.min_p, "drop tokens below min_p * p_max (0 = off)");
  cmd.add_option("--repeat-penalty", sampling.repetition_penalty, "repetition penalty (1 = off)");
  cmd.add_option("--presence-penalty", sampling.presence_penalty, "presence penalty");
  cmd.add_option("--frequency-penalty", sampling.frequency_penalty, "frequency penalty");
  cmd.add_option("-s,--seed", seed, "random seed (-1 = random)");
}

CLI::Option* add_kv_dtype_option(CLI::App& cmd, KvDType& kv) {
  const std::string help = "KV cache storage: " + kv_dtype_names("|") + " (default " + kv_dtype_name(kv) + ")";
  return cmd
      .add_option_function<std::string>(
          "--kv-dtype", [&kv](const std::string& name) { kv = unwrap(parse_kv_dtype(name)); }, help)
      ->check(CLI::Validator(
          [](std::string& name) {
            auto r = parse_kv_dtype(name);
            return r.is_ok() ? std::string() : r.status().message();
          },
          "", ""));
}

void fail(const std::string& message) { throw CliError{message}; }

std::optional<Tokenizer> load_tokenizer_if_present(const std::string& model_dir) {
  return unwrap(load_model_tokenizer(model_dir));
}

std::vector<int32_t> eos_ids(const Model& model, const Tokenizer* tokenizer) {
  std::vector<int32_t> ids = model.config().eos_token_ids;
  auto add = [&](int32_t id) {
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  };
  // Ids outside the model's vocabulary (or a malformed file) are an error, never skipped.
  if (auto gen = unwrap(load_generation_config(model.dir(), model.config().vocab_size))) {
    for (int32_t id : gen->eos_token_ids) add(id);
  }
  if (tokenizer && tokenizer->eos_id()) add(*tokenizer->eos_id());
  return ids;
}

Result<ModelChatTemplate> try_load_model_chat_template(const std::string& model) {
  if (!is_gguf_file(model)) return load_chat_template(model);
  TERN_ASSIGN_OR_RETURN(GgufFile g, GgufFile::open(model));
  return gguf_chat_template(g);
}

ModelChatTemplate load_model_chat_template(const std::string& model) {
  return unwrap(try_load_model_chat_template(model));
}

ModelConfig load_any_model_config(const std::string& model) {
  if (is_gguf_file(model)) return unwrap(gguf_model_config(unwrap(GgufFile::open(model))));
  return unwrap(load_model_config(model));
}

std::vector<int32_t> end_of_turn_ids(const ModelChatTemplate& t, const Tokenizer& tok) {
  // Render a conversation whose reply is a marker; take the special tokens written right after it.
  const std::string marker = "tern-reply-marker";
  nlohmann::ordered_json ctx = t.special_tokens;
  ctx["messages"] = {{{"role", "user"}, {"content", "hi"}}, {{"role", "assistant"}, {"content", marker}}};
  ctx["add_generation_prompt"] = false;
  std::vector<int32_t> ids;
  auto text = t.chat_template.render(ctx);
  if (!text.is_ok()) {
    // A template that needs more (a system turn, ...) or hits a limit: EOS alone then, said once; a chat
    // request the template fails gets a 400 naming why.
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

CLI::App* bench_group(CLI::App& app) {
  try {
    return app.get_subcommand("bench");
  } catch (const CLI::OptionNotFound&) {
    CLI::App* bench = app.add_subcommand("bench", "benchmarks");
    bench->require_subcommand(1);
    return bench;
  }
}

}  // namespace tern::cli
