// tern serve answers malformed input with OpenAI error bodies and the right status, never a crash:
// raw HTTP over a socket, one request per case (broken JSON, wrong types, out-of-range values, invalid
// UTF-8, oversized bodies, unknown model or route, context overflow, ...), then the server still serves.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "serve_engine_args.h"
#include "serve_test_util.h"

namespace tern::test {
namespace {

using json = nlohmann::json;

struct BadCase {
  const char* name;
  std::string path;
  std::string body;
  int status;
  const char* param;  // expected error.param, or nullptr for null / not checked
};

std::string ids_json(int n, int id = 100) {
  std::string s = "[";
  for (int i = 0; i < n; ++i) {
    if (i) s += ',';
    s += std::to_string(id);
  }
  return s + "]";
}

std::vector<BadCase> bad_cases() {
  const std::string c = "/v1/completions", ch = "/v1/chat/completions";
  const std::string m = R"("model":"docs-llama-28m")";
  auto comp = [&](const std::string& extra) { return "{" + m + R"(,"prompt":"Hi")" + extra + "}"; };
  auto chat = [&](const std::string& extra) {
    return "{" + m + R"(,"messages":[{"role":"user","content":"Hi"}])" + extra + "}";
  };
  std::string many_stops = R"(,"stop":[)";
  for (int i = 0; i < 20; ++i) many_stops += std::string(i ? "," : "") + "\"s" + std::to_string(i) + "\"";
  many_stops += "]";
  // Nested 100,000 deep: nlohmann's dump() recurses, so each of these overflowed the stack once.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const std::string deep_args = "\"" + std::string(100000, '[') + std::string(100000, ']') + "\"";
  return {
      {"deep metadata", ch, chat(R"(,"metadata":{"k":)" + deep + "}"), 400, nullptr},
      {"deep schema", ch,
       chat(R"(,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"enum":[)" + deep + "]}}}"),
       400, nullptr},
      {"deep messages", ch, "{" + m + R"(,"messages":)" + deep + "}", 400, nullptr},
      {"deep tool arguments", ch,
       "{" + m + R"(,"messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"1","type":"function",)" +
           R"("function":{"name":"f","arguments":)" + deep_args + R"(}}]},{"role":"user","content":"b"}]})",
       400, "messages[0].tool_calls[0].function.arguments"},
      {"broken JSON", c, R"({"model": "docs-llama-28m", "prompt": )", 400, nullptr},
      {"JSON array body", c, "[1,2,3]", 400, nullptr},
      {"empty body", c, "", 400, nullptr},
      {"JSON string body", c, "\"hello\"", 400, nullptr},
      {"missing model", c, R"({"prompt":"Hi"})", 400, "model"},
      {"model not a string", c, R"({"model":5,"prompt":"Hi"})", 400, "model"},
      {"unknown model", c, R"({"model":"gpt-9","prompt":"Hi"})", 404, "model"},
      {"missing prompt", c, "{" + m + "}", 400, "prompt"},
      {"prompt is an object", c, "{" + m + R"(,"prompt":{"a":1}})", 400, "prompt"},
      {"prompt empty array", c, "{" + m + R"(,"prompt":[]})", 400, "prompt"},
      {"negative token id", c, "{" + m + R"(,"prompt":[1,-1]})", 400, "prompt"},
      {"token id past vocab", c, "{" + m + R"(,"prompt":[999999999]})", 400, "prompt"},
      {"negative max_tokens", c, comp(R"(,"max_tokens":-5)"), 400, "max_tokens"},
      {"zero max_tokens", c, comp(R"(,"max_tokens":0)"), 400, "max_tokens"},
      {"huge max_tokens", c, comp(R"(,"max_tokens":1000000000000)"), 400, "max_tokens"},
      {"max_tokens string", c, comp(R"(,"max_tokens":"10")"), 400, "max_tokens"},
      {"max_tokens fractional", c, comp(R"(,"max_tokens":3.5)"), 400, "max_tokens"},
      {"n = 0", c, comp(R"(,"n":0)"), 400, "n"},
      {"n = 1000", c, comp(R"(,"n":1000)"), 400, "n"},
      {"temperature NaN", c, comp(R"(,"temperature":NaN)"), 400, nullptr},
      {"temperature negative", c, comp(R"(,"temperature":-1)"), 400, "temperature"},
      {"temperature string", c, comp(R"(,"temperature":"hot")"), 400, "temperature"},
      {"temperature overflow", c, comp(R"(,"temperature":1e999)"), 400, nullptr},
      {"top_p 0", c, comp(R"(,"top_p":0)"), 400, "top_p"},
      {"top_p 1.5", c, comp(R"(,"top_p":1.5)"), 400, "top_p"},
      {"top_k string", c, comp(R"(,"top_k":"x")"), 400, "top_k"},
      {"min_p 2", c, comp(R"(,"min_p":2)"), 400, "min_p"},
      {"presence_penalty 5", c, comp(R"(,"presence_penalty":5)"), 400, "presence_penalty"},
      {"frequency_penalty bool", c, comp(R"(,"frequency_penalty":true)"), 400, "frequency_penalty"},
      {"stop number", c, comp(R"(,"stop":5)"), 400, "stop"},
      {"stop array of numbers", c, comp(R"(,"stop":[1,2])"), 400, "stop"},
      {"too many stop strings", c, comp(many_stops), 400, "stop"},
      {"completions logprobs 50", c, comp(R"(,"logprobs":50)"), 400, "logprobs"},
      {"stream string", c, comp(R"(,"stream":"yes")"), 400, "stream"},
      {"stream_options string", c, comp(R"(,"stream":true,"stream_options":"x")"), 400, "stream_options"},
      {"include_usage string", c, comp(R"(,"stream":true,"stream_options":{"include_usage":"y"})"), 400,
       "stream_options.include_usage"},
      {"seed string", c, comp(R"(,"seed":"abc")"), 400, "seed"},
      {"echo number", c, comp(R"(,"echo":1)"), 400, "echo"},
      {"user number", c, comp(R"(,"user":5)"), 400, "user"},
      {"invalid UTF-8 prompt", c, "{" + m + ",\"prompt\":\"ab\xff\xfe cd\"}", 400, nullptr},
      {"prompt longer than context", c, "{" + m + ",\"prompt\":" + ids_json(5000) + "}", 400, "prompt"},
      {"prompt + max_tokens past context", c, "{" + m + ",\"prompt\":" + ids_json(4000) + ",\"max_tokens\":500}", 400,
       "max_tokens"},
      {"chat missing messages", ch, "{" + m + "}", 400, "messages"},
      {"chat messages not array", ch, "{" + m + R"(,"messages":"hi"})", 400, "messages"},
      {"chat messages empty", ch, "{" + m + R"(,"messages":[]})", 400, "messages"},
      {"chat message without role", ch, "{" + m + R"(,"messages":[{"content":"hi"}]})", 400, "messages[0].role"},
      {"chat unknown role", ch, "{" + m + R"(,"messages":[{"role":"wizard","content":"hi"}]})", 400, "messages[0].role"},
      {"chat empty content", ch, "{" + m + R"(,"messages":[{"role":"user","content":""}]})", 400, "messages[0].content"},
      {"chat content number", ch, "{" + m + R"(,"messages":[{"role":"user","content":42}]})", 400, "messages[0].content"},
      {"chat message not object", ch, "{" + m + R"(,"messages":["hi"]})", 400, "messages[0]"},
      {"chat top_logprobs without logprobs", ch, chat(R"(,"top_logprobs":3)"), 400, "top_logprobs"},
      {"chat top_logprobs 99", ch, chat(R"(,"logprobs":true,"top_logprobs":99)"), 400, "top_logprobs"},
      {"chat logprobs string", ch, chat(R"(,"logprobs":"yes")"), 400, "logprobs"},
      {"chat max_completion_tokens negative", ch, chat(R"(,"max_completion_tokens":-1)"), 400, "max_completion_tokens"},
      {"unknown route", "/v1/nothing", "{}", 404, nullptr},
      {"detokenize string ids", "/detokenize", R"({"tokens":["a"]})", 400, "tokens"},
      {"tokenize without prompt", "/tokenize", R"({})", 400, "prompt"},
      {"tokenize unknown field", "/tokenize", R"({"text":"hi"})", 400, "text"},
      {"tokenize add_generation_prompt string", "/tokenize",
       R"({"messages":[{"role":"user","content":"hi"}],"add_generation_prompt":"yes"})", 400, "add_generation_prompt"},
      {"tokenize add_special_tokens number", "/tokenize", R"({"prompt":"hi","add_special_tokens":1})", 400,
       "add_special_tokens"},
      {"tokenize model number", "/tokenize", R"({"prompt":"hi","model":3})", 400, "model"},
      {"detokenize unknown field", "/detokenize", R"({"tokens":[1],"skip_special_tokens":true})", 400,
       "skip_special_tokens"},
      // Fields tern does not implement (issue 14 item 1): a 400 naming them, never a silent ignore.
      {"response_format type", ch, chat(R"(,"response_format":{"type":"yaml"})"), 400, "response_format.type"},
      {"response_format json_schema without schema", ch,
       chat(R"(,"response_format":{"type":"json_schema","json_schema":{}})"), 400, "response_format.json_schema.schema"},
      // docs-llama-28m's template has no tool-call format: tool_choice auto could never produce a call.
      {"tools on a template without a tool format", ch, chat(R"(,"tools":[{"type":"function","function":{"name":"f"}}])"),
       400, "tools"},
      {"tool_choice auto without tools", ch, chat(R"(,"tool_choice":"auto")"), 400, "tool_choice"},
      {"tool name", ch, chat(R"(,"tools":[{"type":"function","function":{"name":"a b"}}])"), 400, "tools[0].function.name"},
      {"functions", ch, chat(R"(,"functions":[{"name":"f"}])"), 400, "functions"},
      {"logit_bias out of vocab", c, comp(R"(,"logit_bias":{"50256":-100})"), 400, "logit_bias"},
      {"chat logit_bias out of range", ch, chat(R"(,"logit_bias":{"1":500})"), 400, "logit_bias"},
      {"echo with logprobs", c, comp(R"(,"echo":true,"logprobs":1)"), 400, "echo"},
      {"chat echo", ch, chat(R"(,"echo":true)"), 400, "echo"},
      {"best_of above n", c, comp(R"(,"best_of":3)"), 400, "best_of"},
      {"suffix", c, comp(R"(,"suffix":" the end")"), 400, "suffix"},
      {"store true", ch, chat(R"(,"store":true)"), 400, "store"},
      {"audio", ch, chat(R"(,"audio":{"voice":"alloy","format":"wav"})"), 400, "audio"},
      {"modalities audio", ch, chat(R"(,"modalities":["text","audio"])"), 400, "modalities"},
      {"reasoning_effort", ch, chat(R"(,"reasoning_effort":"high")"), 400, "reasoning_effort"},
      {"unknown field", c, comp(R"(,"frobnicate":1)"), 400, "frobnicate"},
      {"llama.cpp n_probs", c, comp(R"(,"n_probs":3)"), 400, "n_probs"},
      {"max_completion_tokens on completions", c, comp(R"(,"max_completion_tokens":3)"), 400, "max_completion_tokens"},
      {"stream_options unknown", c, comp(R"(,"stream":true,"stream_options":{"x":1})"), 400, "stream_options.x"},
      {"metadata not an object", ch, chat(R"(,"metadata":"x")"), 400, "metadata"},
      {"message tool_calls", ch,
       "{" + m + R"(,"messages":[{"role":"assistant","content":"a","tool_calls":[{"id":"1"}]},{"role":"user","content":"b"}]})",
       400, "messages[0].tool_calls[0].function"},
      {"message unknown field", ch, "{" + m + R"(,"messages":[{"role":"user","content":"hi","mood":"ok"}]})", 400,
       "messages[0].mood"},
  };
}

void expect_openai_error(const std::string& response, int status, const char* param, const std::string& what) {
  ASSERT_EQ(http_status(response), status) << what << "\n" << response.substr(0, 400);
  const json body = json::parse(http_body(response), nullptr, false);
  ASSERT_FALSE(body.is_discarded()) << what << ": error body is not JSON: " << http_body(response);
  ASSERT_TRUE(body.contains("error") && body["error"].is_object()) << what;
  const json& e = body["error"];
  for (const char* key : {"message", "type", "param", "code"}) EXPECT_TRUE(e.contains(key)) << what << ": no " << key;
  EXPECT_TRUE(e["message"].is_string() && !e["message"].get<std::string>().empty()) << what;
  if (param) {
    EXPECT_EQ(e["param"], param) << what << ": " << e.dump();
  }
}

class ServeErrors : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new ServerProcess(kServeEngineArgs); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static ServerProcess* server_;
};
ServerProcess* ServeErrors::server_ = nullptr;

TEST_F(ServeErrors, MalformedRequestsGetOpenAiErrorBodies) {
  ASSERT_GT(server_->port(), 0) << server_->log();
  const auto cases = bad_cases();
  ASSERT_GE(cases.size(), 30u);
  for (const auto& c : cases) {
    expect_openai_error(raw_http(server_->port(), post_raw(c.path, c.body)), c.status, c.param, c.name);
  }
  // Still serving afterwards.
  auto cli = server_->client();
  auto ok = cli.Post("/v1/completions", R"({"model":"docs-llama-28m","prompt":"Hi","max_tokens":2})", "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
}

// The Anthropic endpoint shares the bounded parse; its errors have Anthropic's shape.
TEST_F(ServeErrors, DeepAnthropicBodyIsAnAnthropicError) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const std::string r = raw_http(server_->port(), post_raw("/v1/messages", R"({"model":"docs-llama-28m","max_tokens":2,"messages":)" + deep + "}"));
  ASSERT_EQ(http_status(r), 400) << r.substr(0, 400);
  const json e = json::parse(http_body(r), nullptr, false);
  ASSERT_FALSE(e.is_discarded()) << http_body(r);
  EXPECT_EQ(e["type"], "error");
  EXPECT_NE(e["error"]["message"].get<std::string>().find("nests deeper than 256"), std::string::npos) << e.dump();
  auto ok = server_->client().Post("/v1/completions", R"({"model":"docs-llama-28m","prompt":"Hi","max_tokens":2})", "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

TEST_F(ServeErrors, ContextOverflowNamesBothLengths) {
  const std::string r = raw_http(server_->port(), post_raw("/v1/completions", R"({"model":"docs-llama-28m","prompt":)" +
                                                                                  ids_json(5000) + "}"));
  const json e = json::parse(http_body(r), nullptr, false);
  ASSERT_FALSE(e.is_discarded());
  const std::string msg = e["error"]["message"];
  EXPECT_NE(msg.find("4096"), std::string::npos) << msg;
  EXPECT_NE(msg.find("5000"), std::string::npos) << msg;
  EXPECT_EQ(e["error"]["code"], "context_length_exceeded");
}

TEST_F(ServeErrors, OversizedBodyIs413) {
  std::string big = R"({"model":"docs-llama-28m","prompt":")" + std::string(10 << 20, 'a') + "\"}";
  expect_openai_error(raw_http(server_->port(), post_raw("/v1/completions", big)), 413, nullptr, "10 MB body");
}

TEST_F(ServeErrors, GarbageRequestLineIs400) {
  const std::string r = raw_http(server_->port(), "THIS IS NOT HTTP\r\n\r\n");
  EXPECT_EQ(http_status(r), 400) << r;
}

// The values that change nothing are accepted; fields no client can observe are accepted, and logged once.
TEST_F(ServeErrors, NoOpValuesAndIgnoredFieldsAreAccepted) {
  auto cli = server_->client();
  const std::string comp = R"({"model":"docs-llama-28m","prompt":"Hi","max_tokens":2,"n":2,"best_of":2,"suffix":"",)"
                           R"("logit_bias":{},"echo":false,"user":"u1","stream_options":null})";
  const std::string chat = R"({"model":"docs-llama-28m","messages":[{"role":"user","content":"Hi","name":"ann"}],)"
                           R"("max_tokens":2,"tools":[],"tool_choice":"none","parallel_tool_calls":false,)"
                           R"("response_format":{"type":"text"},"modalities":["text"],"store":false,"echo":false,)"
                           R"("metadata":{"k":"v"},"service_tier":"auto","prompt_cache_key":"c","safety_identifier":"s",)"
                           R"("logit_bias":{},"functions":[],"function_call":"none"})";
  for (int i = 0; i < 2; ++i) {
    auto r = cli.Post("/v1/completions", comp, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->body;
    auto c = cli.Post("/v1/chat/completions", chat, "application/json");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->status, 200) << c->body;
  }
  const std::string log = server_->log();
  const std::string line = "request field 'metadata' is accepted and ignored";
  const size_t first = log.find(line);
  EXPECT_NE(first, std::string::npos) << log;
  EXPECT_EQ(log.find(line, first + 1), std::string::npos) << "logged twice:\n" << log;
}

TEST(ServeAuth, ApiKeyIsRequiredOnApiRoutesOnly) {
  ServerProcess server(std::string(kServeEngineArgs) + " --api-key sekret --host 127.0.0.1");
  ASSERT_GT(server.port(), 0) << server.log();
  auto cli = server.client();
  auto none = cli.Get("/v1/models");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(json::parse(none->body)["error"]["code"], "invalid_api_key");
  auto wrong = cli.Get("/v1/models", {{"Authorization", "Bearer nope"}});
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  auto right = cli.Get("/v1/models", {{"Authorization", "Bearer sekret"}});
  ASSERT_TRUE(right);
  EXPECT_EQ(right->status, 200);
  auto health = cli.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

}  // namespace
}  // namespace tern::test
