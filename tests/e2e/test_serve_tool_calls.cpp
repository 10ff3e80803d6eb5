// Tool calling, reasoning_content and logit_bias through the real HTTP server (in process), with a
// scripted engine that answers every request with chosen text: the exact JSON and SSE shapes OpenAI
// clients parse (message.tool_calls, delta.tool_calls chunks, finish_reason "tool_calls"), what the chat
// template was given (tools, assistant tool_calls, tool messages), and the 400s. The model-driven paths
// (real template, real weights, constrained calls) are in test_serve_npm_tools.cpp.
#include <gtest/gtest.h>

#include <map>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "api/server.h"
#include "serve_test_util.h"
#include "test_support.h"
#include "text/chat_template/chat_template.h"
#include "text/tokenizer/tokenizer.h"

namespace tern::test {
namespace {

using json = nlohmann::json;

// Answers each request with `reply` split into `pieces` events, then kEos; remembers the last request.
class ScriptedEngine : public Engine {
 public:
  std::vector<std::string> reply;
  std::mutex mu;
  std::vector<EngineRequest> requests;

  ~ScriptedEngine() override {
    for (auto& t : threads_) t.join();
  }
  Result<RequestId> add(EngineRequest request, OutputCallback cb) override {
    const RequestId id = ++next_;
    std::vector<std::string> pieces;
    {
      std::lock_guard lk(mu);
      requests.push_back(request);
      pieces = reply;
    }
    const int64_t plen = int64_t(request.prompt.size());
    threads_.emplace_back([id, cb, pieces, plen] {
      int64_t n = 0;
      for (const auto& p : pieces) {
        EngineOutput o;
        o.text = p;
        o.tokens = {1};
        o.logprobs = {-0.5f};
        o.prompt_tokens = plen;
        o.completion_tokens = ++n;
        cb(id, o);
      }
      EngineOutput last;
      last.finish = EngineFinish::kEos;
      last.prompt_tokens = plen;
      last.completion_tokens = n;
      cb(id, last);
    });
    return id;
  }
  void cancel(RequestId) override {}
  EngineMetrics metrics() const override { return {}; }
  void shutdown(bool) override {}

 private:
  std::atomic<RequestId> next_{0};
  std::vector<std::thread> threads_;
};

// A Hermes-format template (as Qwen's) that shows everything it was given.
constexpr const char* kTemplate =
    "{%- if tools %}<tools>{% for t in tools %}{{ t | tojson }};{% endfor %}</tools>{% endif %}"
    "{%- for m in messages %}<|{{ m.role }}|>{{ m.content }}"
    "{%- if m.tool_call_id %}[id={{ m.tool_call_id }}]{% endif %}"
    "{%- for c in m.tool_calls or [] %}<tool_call>{\"name\": \"{{ c.function.name }}\", \"arguments\": "
    "{{ c.function.arguments | tojson }}}</tool_call>{% endfor %}{% endfor %}"
    "{%- if add_generation_prompt %}<|assistant|>{% endif %}{# replies may open with <think> #}";

class ToolServer : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = Tokenizer::load(model_dir("docs-llama-28m"));
    ASSERT_TRUE(t.is_ok()) << t.status().message();
    tok_ = std::make_unique<Tokenizer>(std::move(t).value());
    auto ct = ChatTemplate::parse(kTemplate);
    ASSERT_TRUE(ct.is_ok()) << ct.status().message();
    chat_ = std::make_unique<ModelChatTemplate>(ModelChatTemplate{std::move(ct).value(), json::object()});
    api::ServerOptions o;
    o.port = 0;
    o.model_names = {"m"};
    server_ = std::make_unique<api::ApiServer>(engine_, *tok_, chat_.get(), o);
    auto port = server_->bind();
    ASSERT_TRUE(port.is_ok());
    port_ = port.value();
    thread_ = std::thread([this] { server_->run(); });
  }
  void TearDown() override {
    if (server_) server_->shutdown_now();
    if (thread_.joinable()) thread_.join();
  }
  std::pair<int, std::string> post(const std::string& path, const std::string& body) {
    const std::string r = raw_http(port_, post_raw(path, body));
    return {http_status(r), http_body(r)};
  }
  // The data: events of an SSE body (chunked framing skipped), [DONE] excluded.
  static std::vector<json> events(const std::string& body) {
    std::vector<json> out;
    for (size_t at = 0; (at = body.find("data: ", at)) != std::string::npos;) {
      const size_t end = body.find("\n\n", at);
      const std::string data = body.substr(at + 6, end - at - 6);
      if (data != "[DONE]") out.push_back(json::parse(data));
      at = end;
    }
    return out;
  }
  std::string last_prompt() {
    std::lock_guard lk(engine_.mu);
    return engine_.requests.empty() ? "" : tok_->decode(engine_.requests.back().prompt);
  }

  ScriptedEngine engine_;
  std::unique_ptr<Tokenizer> tok_;
  std::unique_ptr<ModelChatTemplate> chat_;
  std::unique_ptr<api::ApiServer> server_;
  std::thread thread_;
  int port_ = 0;
};

const std::string kTools =
    R"("tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":)"
    R"({"city":{"type":"string"}},"required":["city"]}}},{"type":"function","function":{"name":"add"}}])";
const std::string kReply[] = {"<think>\nweather", " needed\n</think>\n\nChecking.<tool", "_call>\n{\"name\": \"get_weather\", ",
                              "\"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>{\"name\": \"add\", "
                              "\"arguments\": {\"a\": 1}}</tool_call>"};

std::string chat_body(const std::string& extra) {
  return R"({"model":"m","messages":[{"role":"user","content":"weather in Paris?"}],)" + extra + "}";
}

TEST_F(ToolServer, WholeResponseHasToolCallsAndReasoning) {
  engine_.reply.assign(std::begin(kReply), std::end(kReply));
  auto [status, body] = post("/v1/chat/completions", chat_body(kTools));
  ASSERT_EQ(status, 200) << body;
  const json j = json::parse(body);
  const json& c = j["choices"][0];
  EXPECT_EQ(c["finish_reason"], "tool_calls");
  EXPECT_EQ(c["message"]["reasoning_content"], "weather needed");
  EXPECT_EQ(c["message"]["content"], "Checking.");
  ASSERT_EQ(c["message"]["tool_calls"].size(), 2u);
  const json& call = c["message"]["tool_calls"][0];
  EXPECT_EQ(call["type"], "function");
  EXPECT_EQ(call["id"].get<std::string>().rfind("call_", 0), 0u);
  EXPECT_EQ(call["function"]["name"], "get_weather");
  EXPECT_EQ(json::parse(call["function"]["arguments"].get<std::string>()), json({{"city", "Paris"}}));
  EXPECT_EQ(c["message"]["tool_calls"][1]["function"]["name"], "add");
  // The template saw the tools.
  EXPECT_NE(last_prompt().find("<tools>{\"type\": \"function\", \"function\": {\"name\": \"get_weather\""), std::string::npos)
      << "the tools in the order the client wrote them: " << last_prompt();
}

TEST_F(ToolServer, StreamSendsDeltaToolCalls) {
  engine_.reply.assign(std::begin(kReply), std::end(kReply));
  auto [status, body] = post("/v1/chat/completions", chat_body(kTools + R"(,"stream":true,"logprobs":true)"));
  ASSERT_EQ(status, 200) << body;
  const auto ev = events(body);
  ASSERT_GE(ev.size(), 4u) << body;
  EXPECT_EQ(ev[0]["choices"][0]["delta"]["role"], "assistant");
  std::string reasoning, content;
  std::vector<json> calls;
  json finish;
  for (const json& e : ev) {
    EXPECT_EQ(e["object"], "chat.completion.chunk");
    const json& ch = e["choices"][0];
    const json& d = ch["delta"];
    if (d.contains("reasoning_content")) reasoning += d["reasoning_content"].get<std::string>();
    if (d.contains("content")) content += d["content"].get<std::string>();
    if (d.contains("tool_calls")) {
      for (const json& c : d["tool_calls"]) calls.push_back(c);
    }
    if (!ch["finish_reason"].is_null()) finish = ch["finish_reason"];
    // No chunk shows part of a marker as content.
    EXPECT_EQ(content.find("<tool"), std::string::npos) << e.dump();
  }
  EXPECT_EQ(reasoning, "weather needed");
  EXPECT_EQ(content, "Checking.");
  EXPECT_EQ(finish, "tool_calls");
  // As OpenAI streams them (the format is constrained, so arguments come as they are generated): the
  // first piece of each index has id, type and name; the arguments pieces concatenate per index.
  std::map<int, json> by_index;
  for (const json& c : calls) {
    const int i = c["index"];
    if (!by_index.count(i)) {
      EXPECT_FALSE(c["id"].get<std::string>().empty()) << c.dump();
      EXPECT_EQ(c["type"], "function");
      by_index[i] = c;
    } else {
      EXPECT_FALSE(c.contains("id")) << c.dump();
      by_index[i]["function"]["arguments"] =
          by_index[i]["function"]["arguments"].get<std::string>() + c["function"]["arguments"].get<std::string>();
    }
  }
  ASSERT_EQ(by_index.size(), 2u);
  EXPECT_EQ(by_index[0]["function"]["name"], "get_weather");
  EXPECT_EQ(json::parse(by_index[0]["function"]["arguments"].get<std::string>()), json({{"city", "Paris"}}));
  EXPECT_EQ(by_index[1]["function"]["name"], "add");
  EXPECT_EQ(json::parse(by_index[1]["function"]["arguments"].get<std::string>()), json({{"a", 1}}));
  EXPECT_NE(body.find("data: [DONE]"), std::string::npos);
}

TEST_F(ToolServer, MalformedCallIsContentNotACall) {
  engine_.reply = {"<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": }</tool_call>"};
  for (bool stream : {false, true}) {
    auto [status, body] = post("/v1/chat/completions", chat_body(kTools + (stream ? R"(,"stream":true)" : "")));
    ASSERT_EQ(status, 200) << body;
    std::string content;
    json finish;
    if (stream) {
      // This fake engine ignores the grammar that keeps a real model's Hermes calls well formed, so
      // the call began streaming before it broke: it never completes as a call, and the reply does not
      // finish as "tool_calls".
      for (const json& e : events(body)) {
        const json& ch = e["choices"][0];
        if (ch["delta"].contains("content")) content += ch["delta"]["content"].get<std::string>();
        if (!ch["finish_reason"].is_null()) finish = ch["finish_reason"];
      }
      EXPECT_EQ(finish, "stop");
      continue;
    } else {
      const json c = json::parse(body)["choices"][0];
      EXPECT_FALSE(c["message"].contains("tool_calls"));
      content = c["message"]["content"];
      finish = c["finish_reason"];
    }
    EXPECT_EQ(content, engine_.reply[0]);
    EXPECT_EQ(finish, "stop");
  }
}

TEST_F(ToolServer, HistoryWithToolCallsIsRendered) {
  engine_.reply = {"It is sunny."};
  const std::string body =
      R"({"model":"m",)" + kTools + R"(,"messages":[{"role":"user","content":"weather?"},)"
      R"({"role":"assistant","content":null,"tool_calls":[{"id":"call_9","type":"function",)"
      R"("function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},)"
      R"({"role":"tool","tool_call_id":"call_9","content":"sunny"}]})";
  auto [status, out] = post("/v1/chat/completions", body);
  ASSERT_EQ(status, 200) << out;
  const json c = json::parse(out)["choices"][0];
  EXPECT_EQ(c["message"]["content"], "It is sunny.");
  EXPECT_EQ(c["finish_reason"], "stop");
  EXPECT_FALSE(c["message"].contains("tool_calls"));
  const std::string p = last_prompt();
  EXPECT_NE(p.find("<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}</tool_call>"),
            std::string::npos) << p;
  EXPECT_NE(p.find("<|tool|>sunny[id=call_9]"), std::string::npos) << p;
}

TEST_F(ToolServer, ToolChoiceNoneLeavesTextAndTools) {
  engine_.reply = {"<tool_call>{\"name\": \"add\", \"arguments\": {}}</tool_call>"};
  auto [status, body] = post("/v1/chat/completions", chat_body(kTools + R"(,"tool_choice":"none")"));
  ASSERT_EQ(status, 200) << body;
  const json c = json::parse(body)["choices"][0];
  EXPECT_EQ(c["message"]["content"], engine_.reply[0]);
  EXPECT_EQ(last_prompt().find("<tools>"), std::string::npos);
}

TEST_F(ToolServer, LogitBiasReachesTheEngineAndIsCheckedAgainstTheVocabulary) {
  engine_.reply = {"x"};
  auto [status, body] = post("/v1/completions", R"({"model":"m","prompt":"hi","logit_bias":{"5":-100,"9":3}})");
  ASSERT_EQ(status, 200) << body;
  {
    std::lock_guard lk(engine_.mu);
    ASSERT_EQ(engine_.requests.back().sampling.logit_bias.size(), 2u);
    EXPECT_EQ(engine_.requests.back().sampling.logit_bias[0].first, 5);
  }
  auto [s2, b2] = post("/v1/chat/completions", chat_body(R"("logit_bias":{"99999999":1})"));
  EXPECT_EQ(s2, 400);
  EXPECT_EQ(json::parse(b2)["error"]["param"], "logit_bias") << b2;
}

TEST_F(ToolServer, NChoicesEachParsed) {
  engine_.reply.assign(std::begin(kReply), std::end(kReply));
  auto [status, body] = post("/v1/chat/completions", chat_body(kTools + R"(,"n":3)"));
  ASSERT_EQ(status, 200) << body;
  const json j = json::parse(body);
  ASSERT_EQ(j["choices"].size(), 3u);
  std::set<std::string> ids;
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(j["choices"][i]["index"], i);
    EXPECT_EQ(j["choices"][i]["message"]["tool_calls"].size(), 2u);
    for (const json& c : j["choices"][i]["message"]["tool_calls"]) ids.insert(c["id"].get<std::string>());
  }
  EXPECT_EQ(ids.size(), 6u);  // ids are unique within the response
}

TEST_F(ToolServer, Errors) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {chat_body(R"("tools":[{"type":"function","function":{"name":"a.b"}}])"), "tools[0].function.name"},
      {chat_body(kTools + R"(,"tool_choice":{"type":"function","function":{"name":"zzz"}})"), "tool_choice"},
      {chat_body(R"("tool_choice":"required")"), "tool_choice"},
  };
  for (const auto& [body, param] : cases) {
    auto [status, out] = post("/v1/chat/completions", body);
    EXPECT_EQ(status, 400) << body;
    const json e = json::parse(out)["error"];
    EXPECT_EQ(e["param"], param) << out;
    EXPECT_EQ(e["type"], "invalid_request_error");
  }
}

}  // namespace
}  // namespace tern::test
