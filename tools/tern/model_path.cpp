// -m / --model for every command: what a user may name (a model directory, its config.json, a GGUF
// file) resolved in one place, so a wrong path gets the same one-line answer from every command.
#include <filesystem>

#include "cli_common.h"
#include "formats/gguf/gguf_file.h"

namespace tern::cli {

namespace fs = std::filesystem;

Result<std::string> resolve_model_path(const std::string& arg, bool any_json_config) {
  if (arg.empty()) return Status::error("the model path is empty");
  std::error_code ec;
  const fs::file_status st = fs::status(arg, ec);
  if (ec || !fs::exists(st)) return Status::error(arg + ": no such file or directory");
  const fs::path p(arg);
  if (fs::is_directory(st)) {
    if (fs::exists(p / "config.json", ec)) return arg;
    return Status::error(arg +
                         ": no config.json in this directory (a model is a directory holding config.json and "
                         "its .safetensors, or a .gguf file)");
  }
  if (!fs::is_regular_file(st)) return Status::error(arg + ": not a model directory or file");
  if (is_gguf_file(arg)) return arg;
  const std::string ext = p.extension().string();
  if (ext == ".gguf") return Status::error(arg + ": not a GGUF file (it does not start with the GGUF magic)");
  const std::string dir = p.has_parent_path() ? p.parent_path().string() : std::string(".");
  if (p.filename() == "config.json") return dir;
  if (any_json_config && ext == ".json") return arg;
  if (ext == ".safetensors") {
    return Status::error(arg + ": a weights file; give the model directory that holds it and its config.json (" + dir +
                         ")");
  }
  return Status::error(arg + ": not a model (give a model directory, its config.json or a .gguf file)");
}

CLI::Validator model_path_check(bool any_json_config) {
  // A transforming validator: the option ends up holding the resolved path; a bad one is a ParseError
  // that main() prints as one line.
  return CLI::Validator(
      [any_json_config](std::string& value) -> std::string {
        auto r = resolve_model_path(value, any_json_config);
        if (!r.is_ok()) return r.status().message();
        value = *r;
        return std::string();
      },
      "", "");
}

CLI::Option* add_model_option(CLI::App& cmd, std::string& model, const ModelOptionKind kind) {
  const bool plan = kind == ModelOptionKind::kPlanSource;
  const char* help = plan ? "config.json (any name), a checkpoint directory holding one, or a .gguf file"
                          : "model directory (Hugging Face layout), its config.json, or a .gguf file";
  CLI::Option* opt = cmd.add_option("-m,--model", model, help)->transform(model_path_check(plan));
  if (!plan) opt->required();
  return opt;
}

}  // namespace tern::cli
