// tern synth: a random-weight checkpoint at a real model's shape (bf16, Hugging Face layout).
#include <fmt/format.h>

#include <chrono>

#include "cli_common.h"
#include "model/synth.h"

namespace tern::cli {

void register_synth(CLI::App& app) {
  auto o = std::make_shared<SynthOptions>();
  auto rto = std::make_shared<RuntimeOptions>();
  auto list = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("synth", "write a random-weight checkpoint at a real model's shape");
  cmd->add_option("--shape", o->shape, "shape name (see --list)");
  cmd->add_option("-o,--out", o->out_dir, "output directory");
  cmd->add_option("--seed", o->seed, "random seed");
  cmd->add_option("--tokenizer", o->tokenizer_dir, "copy tokenizer.json etc. from this directory");
  cmd->add_flag("--config-only", o->config_only, "write config.json only");
  auto dtype = std::make_shared<std::string>("bf16");
  cmd->add_option("--dtype", *dtype, "stored dtype")->check(CLI::IsMember({"bf16", "f16", "f32"}));
  cmd->add_flag("--list", *list, "list the known shapes");
  rto->add_to(*cmd);
  cmd->callback([o, rto, list, dtype] {
    o->dtype = *dtype == "f16" ? DType::F16 : *dtype == "f32" ? DType::F32 : DType::BF16;
    if (*list) {
      for (const auto& s : synth_shapes()) {
        fmt::print("{:<14} {} layers={} hidden={} heads={}/{} vocab={}\n", s.name, s.architecture, s.layers, s.hidden,
                   s.heads, s.kv_heads, s.vocab);
      }
      return;
    }
    if (o->shape.empty() || o->out_dir.empty()) fail("synth needs --shape NAME and -o DIR (or --list)");
    Runtime rt(*rto);
    const auto t0 = std::chrono::steady_clock::now();
    check(synthesize(rt.ctx, *o));
    fmt::print(stderr, "[tern] wrote {} ({}) in {:.1f} s\n", o->out_dir, o->shape,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  });
}

}  // namespace tern::cli
