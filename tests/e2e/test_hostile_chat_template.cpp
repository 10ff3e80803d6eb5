// A model whose chat template recurses or loops without end (issue 14 item 12): `tern serve` starts with a
// warning and answers chat requests with a 400 naming the template limit; `tern chat` reports the limit per turn.
// Tokenizers with ids outside their vocabulary are refused by `tern tokenize` / `detokenize` (item 19).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "serve_test_util.h"
#include "test_support.h"

namespace tern::test {
namespace {

using nlohmann::json;

// docs-llama-28m with its chat template replaced: the weights and tokenizer linked, the config files copied.
std::string model_with_template(const TempDir& dir, const std::string& tmpl) {
  namespace fs = std::filesystem;
  const std::string src = model_dir("docs-llama-28m"), dst = dir.file("model");
  fs::create_directories(dst);
  for (const auto& e : fs::directory_iterator(src)) {
    const std::string name = e.path().filename().string();
    if (name != "tokenizer_config.json") fs::create_symlink(e.path(), dst + "/" + name);
  }
  json cfg = json::parse(*read_text_file(src + "/tokenizer_config.json"));
  cfg["chat_template"] = tmpl;
  write_file(dst + "/tokenizer_config.json", cfg.dump());
  return dst;
}

// ServerProcess looks models up under shared/models: climb from there to the root, then down to `abs`.
std::string as_shared_model_name(const std::string& abs) { return "../../../../../../../../../../.." + abs; }

TEST(HostileChatTemplate, ServeWarnsAtStartAndAnswers400NamingTheLimit) {
  TempDir dir;
  const std::string model = model_with_template(dir, "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}");
  ServerProcess server("--test-fake-engine", as_shared_model_name(model));
  ASSERT_GT(server.port(), 0) << server.log();
  EXPECT_NE(server.log().find("template limit: macro calls nested deeper than 64"), std::string::npos)
      << server.log();
  auto cli = server.client();
  auto r = cli.Post("/v1/chat/completions",
                    R"({"model":"model","messages":[{"role":"user","content":"hi"}],"max_tokens":2})",
                    "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  const json body = json::parse(r->body);
  EXPECT_EQ(body["error"]["param"], "messages") << r->body;
  EXPECT_NE(body["error"]["message"].get<std::string>().find("template limit: macro calls nested deeper than 64"),
            std::string::npos)
      << r->body;
  // The server is still there for the next request.
  auto again = cli.Post("/v1/completions", R"({"model":"model","prompt":"Hi","max_tokens":2})", "application/json");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200) << again->body;
}

TEST(HostileChatTemplate, ServeStopsEndlessLoopsPerRequest) {
  TempDir dir;
  const std::string model = model_with_template(
      dir, "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}");
  ServerProcess server("--test-fake-engine", as_shared_model_name(model));
  ASSERT_GT(server.port(), 0) << server.log();
  auto cli = server.client();
  auto r = cli.Post("/v1/chat/completions", R"({"model":"model","messages":[{"role":"user","content":"hi"}]})",
                    "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  // The loop bound, or on a machine loaded past 10 s for a million iterations, the wall-clock backstop.
  EXPECT_TRUE(r->body.find("template limit: more than 1000000 loop iterations") != std::string::npos ||
              r->body.find("template limit: rendering took longer than 10 s") != std::string::npos)
      << r->body;
}

TEST(HostileChatTemplate, ChatReportsTheLimitAndGoesOn) {
  TempDir dir;
  const std::string model = model_with_template(dir, "{{ 'x' * 1000000000 }}");
  auto r = run_tern("chat -m '" + model + "' --temp 0 -n 2", "hello\n/exit\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("[tern] warning: end-of-turn tokens not detected"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("tern: error: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("template limit: a string of 1000000000 bytes exceeds 16 MiB"), std::string::npos) << r.err;
}

TEST(TokenizerIdsCli, TokenizeAndDetokenizeRefuseATokenizerWithStrayIds) {
  TempDir dir;
  json tok = json::parse(*read_text_file(model_dir("docs-llama-28m") + "/tokenizer.json"));
  tok["added_tokens"].push_back({{"id", 1000000}, {"content", "<|far|>"}, {"special", true}});
  write_file(dir.file("tokenizer.json"), tok.dump());
  for (const char* cmd : {"tokenize", "detokenize"}) {
    auto r = run_tern(std::string(cmd) + " --tokenizer '" + dir.file("tokenizer.json") + "'",
                      std::string(cmd) == "tokenize" ? "x<|far|>" : "[1000000]");
    EXPECT_EQ(r.exit_code, 1) << cmd;
    EXPECT_EQ(r.out, "") << cmd;
    EXPECT_NE(r.err.find("tern: error: "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("has id 1000000, outside the vocabulary of 8193 tokens"), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace tern::test
