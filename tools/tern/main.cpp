// tern: one binary, one subcommand per job (run, info, eval, synth, ...).
#include <cstdio>
#include <exception>

#include "cli_common.h"

int main(int argc, char** argv) {
  CLI::App app{"tern: compress, serve and plan large language models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "tern 0.1.0");
  tern::cli::register_run(app);
  tern::cli::register_info(app);
  tern::cli::register_eval(app);
  tern::cli::register_synth(app);
  tern::cli::register_tokenize(app);
  tern::cli::register_chat(app);
  tern::cli::register_plan(app);
  tern::cli::register_serve(app);
  tern::cli::register_bench_serve(app);
  tern::cli::register_bench_offline(app);
  tern::cli::register_quantize(app);
  tern::cli::register_gguf(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const tern::cli::CliError& e) {
    std::fprintf(stderr, "tern: error: %s\n", e.message.c_str());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "tern: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tern: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
