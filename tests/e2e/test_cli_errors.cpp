// Every way a command line can go wrong is one line "tern: error: ..." on stderr and exit code 1 — the
// argument parser's errors included — and -m names a model the same way in every command: a model
// directory, its config.json, or a GGUF file; anything else gets a message that says what it is.
#include <gtest/gtest.h>

#include <filesystem>

#include "test_support.h"

namespace tern::test {
namespace {

const std::string kDocs = model_dir("docs-llama-28m");

void expect_usage_error(const CommandResult& r, const std::vector<std::string>& must_mention) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err.rfind("tern: error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  for (const auto& m : must_mention) EXPECT_NE(r.err.find(m), std::string::npos) << m << " in: " << r.err;
}

TEST(CliErrors, TheArgumentParsersErrorsAreOneLineAndExitOne) {
  expect_usage_error(run_tern("run -p hi"), {"--model is required", "run"});
  expect_usage_error(run_tern("frobnicate"), {"unknown command 'frobnicate'", "run", "serve", "prune"});
  expect_usage_error(run_tern("bench frobnicate"), {"unknown command 'bench frobnicate'", "offline"});
  expect_usage_error(run_tern(""), {"no command given"});
  expect_usage_error(run_tern("eval"), {"'eval' needs a command", "ppl"});
  expect_usage_error(run_tern("--bogus"), {"--bogus"});
  expect_usage_error(run_tern("run -m '" + kDocs + "' -n -5 -p hi"), {"-n"});
  expect_usage_error(run_tern("run -m '" + kDocs + "' -p hi stray"), {"stray"});
  expect_usage_error(run_tern("run -m '" + kDocs + "' -p hi --bogus"), {"--bogus"});
  expect_usage_error(run_tern("info -m"), {"--model"});
  expect_usage_error(run_tern("serve -m '" + kDocs + "' --port 99999"), {"--port"});
}

TEST(CliErrors, HelpAndVersionStillPrintAndExitZero) {
  auto h = run_tern("--help");
  EXPECT_EQ(h.exit_code, 0);
  EXPECT_NE(h.out.find("serve"), std::string::npos) << h.out;
  auto r = run_tern("run --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--kv-dtype"), std::string::npos) << r.out;
  auto v = run_tern("--version");
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_NE(v.out.find("tern"), std::string::npos);
}

TEST(CliErrors, ModelPathIsADirectoryItsConfigJsonOrAGgufFile) {
  // config.json names its directory.
  auto cfg = run_tern("info -m '" + kDocs + "/config.json' --json");
  EXPECT_EQ(cfg.exit_code, 0) << cfg.err;
  auto dir = run_tern("info -m '" + kDocs + "' --json");
  EXPECT_EQ(cfg.out, dir.out);
  auto run = run_tern("run -m '" + kDocs + "/config.json' -p 'The kernel' -n 2 --temp 0 -q");
  EXPECT_EQ(run.exit_code, 0) << run.err;

  TempDir t;
  write_file(t.file("junk.gguf"), "this is not a gguf file");
  write_file(t.file("notes.txt"), "hello");
  for (const std::string cmd : {"info", "run -p hi", "chat", "eval ppl -f x.txt", "serve", "bench offline"}) {
    expect_usage_error(run_tern(cmd + " -m '" + t.file("junk.gguf") + "'"), {"junk.gguf", "not a GGUF file"});
  }
  expect_usage_error(run_tern("info -m '" + kDocs + "/model-00001-of-00004.safetensors'"),
                     {"model-00001-of-00004.safetensors", "give the model directory", kDocs});
  expect_usage_error(run_tern("info -m '" + t.file("notes.txt") + "'"), {"notes.txt", "not a model"});
  expect_usage_error(run_tern("info -m /nonexistent/model"), {"/nonexistent/model", "no such file"});
  expect_usage_error(run_tern("info -m '" + t.path() + "'"), {"config.json"});
  expect_usage_error(run_tern("plan -m '" + t.file("junk.gguf") + "'"), {"not a GGUF file"});
  expect_usage_error(run_tern("eval ppl -m '" + kDocs + "' -f x.txt --base '" + t.file("junk.gguf") + "'"),
                     {"--base", "not a GGUF file"});
}

// One list of KV cache dtypes, from the code, for every command that runs the engine: each accepts it and
// each refuses anything else with that same list (no fp16 offered here and refused there).
TEST(CliErrors, KvDtypeIsOneListOnEveryEngineCommand) {
  const std::string list = "expected one of f32, bf16, int8, fp8";
  for (const std::string& cmd :
       {"run -m '" + kDocs + "' -p hi", "chat -m '" + kDocs + "'", "eval ppl -m '" + kDocs + "' -f x.txt",
        "serve -m '" + kDocs + "'", "bench offline -m '" + kDocs + "'", "plan -m '" + kDocs + "'"}) {
    expect_usage_error(run_tern(cmd + " --kv-dtype fp16"), {"--kv-dtype", "'fp16'", list});
    auto help = run_tern(cmd.substr(0, cmd.find(" -m")) + " --help");
    EXPECT_NE(help.out.find("f32|bf16|int8|fp8"), std::string::npos) << cmd << "\n" << help.out;
  }
}

// --device is offered where the compute can run on a GPU (the serving engine's runners) and nowhere else.
TEST(CliErrors, DeviceIsListedOnlyWhereItWorks) {
  for (const std::string cmd : {"serve", "bench offline"}) {
    EXPECT_NE(run_tern(cmd + " --help").out.find("--device"), std::string::npos) << cmd;
  }
  for (const std::string cmd : {"run", "chat", "eval ppl", "synth", "quantize"}) {
    EXPECT_EQ(run_tern(cmd + " --help").out.find("--device"), std::string::npos) << cmd;
  }
  expect_usage_error(run_tern("run -m '" + kDocs + "' -p hi --device cuda"), {"--device"});
}

}  // namespace
}  // namespace tern::test
