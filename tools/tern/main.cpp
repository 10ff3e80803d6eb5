// tern: one binary, one subcommand per job (run, info, eval, synth, ...).
// Every way a command line can fail ends here as one line "tern: error: ..." and exit code 1: the
// argument parser's own errors (a missing option, an unknown command, a bad value, an extra argument)
// as much as a command's. --help and --version print and exit 0.
#include <cstdio>
#include <exception>
#include <string>

#include "cli_common.h"

namespace {

// The deepest subcommand the parser entered ("tern bench offline" -> offline), and its path.
const CLI::App* deepest_command(const CLI::App& app, std::string& path) {
  for (const CLI::App* sub : app.get_subcommands()) {
    path += " " + sub->get_name();
    return deepest_command(*sub, path);
  }
  return &app;
}

std::string command_list(const CLI::App& app) {
  std::string names;
  for (const CLI::App* sub : app.get_subcommands({})) names += (names.empty() ? "" : ", ") + sub->get_name();
  return names;
}

std::string one_line(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

// The parser's message, with the command it concerns, as one line.
std::string describe_parse_error(const CLI::App& app, const CLI::ParseError& e) {
  std::string path = "tern";
  const CLI::App* cmd = deepest_command(app, path);
  const std::string sub = path.size() > 5 ? path.substr(5) : "";  // "bench offline", "" for the top level
  const std::vector<std::string> rest = cmd->remaining();
  if (cmd->get_require_subcommand_min() > 0 && cmd->get_subcommands().empty()) {
    // CLI11 says "A subcommand is required" even when the user typed one it does not know.
    const std::string commands = " (commands: " + command_list(*cmd) + ")";
    if (!rest.empty() && !rest.front().empty() && rest.front()[0] != '-') {
      return "unknown command '" + (sub.empty() ? "" : sub + " ") + rest.front() + "'" + commands;
    }
    if (!rest.empty()) return "unknown option '" + rest.front() + "' (see " + path + " --help)";
    return (sub.empty() ? std::string("no command given") : "'" + sub + "' needs a command") + commands;
  }
  const std::string where = sub.empty() ? "" : sub + ": ";
  if (dynamic_cast<const CLI::ExtrasError*>(&e) && !rest.empty()) {
    // In the order typed (CLI11 lists them reversed), options named as options.
    std::string args;
    for (const std::string& a : rest) args += (args.empty() ? "" : " ") + a;
    const bool option = rest.front().size() > 1 && rest.front()[0] == '-';
    return where +
           (option ? "unknown option '" + rest.front() + "'"
                   : "unexpected argument" + std::string(rest.size() > 1 ? "s" : "") + " '" + args + "'") +
           " (see " + path + " --help)";
  }
  // A bad value says what is wrong with it; a missing or misplaced option points at the help.
  if (dynamic_cast<const CLI::ValidationError*>(&e)) return where + one_line(e.what());
  return where + one_line(e.what()) + " (see " + path + " --help)";
}

}  // namespace

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
  tern::cli::register_router(app);
  tern::cli::register_bench_serve(app);
  tern::cli::register_bench_offline(app);
  tern::cli::register_quantize(app);
  tern::cli::register_prune(app);
  tern::cli::register_distill(app);
  tern::cli::register_gguf(app);
  tern::cli::register_sparsify(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);  // --help, --version
    std::fprintf(stderr, "tern: error: %s\n", describe_parse_error(app, e).c_str());
    return 1;
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
