// `tern serve -m` loads what every other command loads: a GGUF file (model, tokenizer and chat template
// from its metadata), a model directory's config.json; and --kv-dtype picks the engine's KV cache, f32
// giving the exact greedy tokens `tern run` gives.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "serve_test_util.h"

namespace tern::test {
namespace {

// `tern serve -m <path> --port 0 <extra>` for any model path; waits for the "serving ... on" line.
class Server {
 public:
  Server(const std::string& model, const std::string& extra) {
    log_ = dir_.file("serve.log");
    const std::string cmd = std::string("exec '") + TERN_BINARY + "' serve -m '" + model + "' --port 0 -t 1 " + extra +
                            " >/dev/null 2>'" + log_ + "'";
    port_ = spawn_and_wait_port(cmd, log_, &pid_, 1200);
  }
  ~Server() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }
  int port() const { return port_; }
  std::string log() const { return slurp_file(log_); }
  nlohmann::json post(const std::string& path, const nlohmann::json& body) const {
    const std::string res = raw_http(port_, post_raw(path, body.dump()));
    EXPECT_EQ(http_status(res), 200) << res;
    return nlohmann::json::parse(http_body(res), nullptr, false);
  }

 private:
  TempDir dir_;
  std::string log_;
  pid_t pid_ = -1;
  int port_ = 0;
};

const std::string kDocs = model_dir("docs-llama-28m");
const std::string kPrompt = "The kernel scheduler decides";

TEST(CliServeModel, ServesAGgufFileEndToEnd) {
  TempDir dir;
  const std::string gguf = dir.file("docs-q8.gguf");
  auto q = run_tern("gguf quantize -m '" + kDocs + "' -o '" + gguf + "' --type Q8_0 --quiet");
  ASSERT_EQ(q.exit_code, 0) << q.err;
  Server s(gguf, "--kv-dtype f32");
  ASSERT_GT(s.port(), 0) << s.log();
  EXPECT_NE(s.log().find("docs-q8.gguf"), std::string::npos) << s.log();
  // The completion is the one `tern run` computes on the same file (f32 KV cache on both: exact).
  const auto c = s.post("/v1/completions",
                        {{"model", "docs-q8.gguf"}, {"prompt", kPrompt}, {"max_tokens", 8}, {"temperature", 0}});
  auto run = run_tern("run -m '" + gguf + "' -p '" + kPrompt + "' -n 8 --temp 0 -q");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(c["choices"][0]["text"].get<std::string>() + "\n", run.out);
  // The chat template comes from the GGUF metadata.
  const auto chat = s.post("/v1/chat/completions", {{"model", "docs-q8.gguf"},
                                                    {"messages", {{{"role", "user"}, {"content", "hello"}}}},
                                                    {"max_tokens", 8},
                                                    {"temperature", 0}});
  EXPECT_FALSE(chat["choices"][0]["message"]["content"].get<std::string>().empty()) << chat.dump();
}

TEST(CliServeModel, KvDtypeF32GivesRunsExactGreedyTokensAndInt8Serves) {
  Server f32(kDocs + "/config.json", "--kv-dtype f32");
  ASSERT_GT(f32.port(), 0) << f32.log();
  // -m DIR/config.json serves DIR, under DIR's name.
  const auto c = f32.post("/v1/completions",
                          {{"model", "docs-llama-28m"}, {"prompt", kPrompt}, {"max_tokens", 16}, {"temperature", 0}});
  auto run = run_tern("run -m '" + kDocs + "' -p '" + kPrompt + "' -n 16 --temp 0 -q --kv-dtype f32");
  EXPECT_EQ(c["choices"][0]["text"].get<std::string>() + "\n", run.out);

  Server int8(kDocs, "--kv-dtype int8");
  ASSERT_GT(int8.port(), 0) << int8.log();
  const auto i = int8.post("/v1/completions",
                           {{"model", "docs-llama-28m"}, {"prompt", kPrompt}, {"max_tokens", 4}, {"temperature", 0}});
  EXPECT_EQ(i["usage"]["completion_tokens"], 4) << i.dump();
}

}  // namespace
}  // namespace tern::test
