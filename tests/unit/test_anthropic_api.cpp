// Anthropic Messages bodies -> tern's chat request, and the response / stream shapes (anthropic_request.h,
// anthropic_response.h). The official SDK drives the whole path in tests/e2e/serve_npm/anthropic.mjs.
#include <gtest/gtest.h>

#include "api/anthropic_request.h"
#include "api/anthropic_response.h"

namespace tern::api {
namespace {

using json = nlohmann::json;

OpenAiRequest parse_ok(const json& body) {
  auto r = parse_anthropic_request(body.dump());
  if (auto* e = std::get_if<ApiError>(&r)) {
    ADD_FAILURE() << e->param << ": " << e->message;
    return {};
  }
  return std::get<AnthropicRequest>(r).chat;
}

ApiError parse_err(const json& body, bool count_tokens = false) {
  auto r = parse_anthropic_request(body.dump(), count_tokens);
  if (auto* e = std::get_if<ApiError>(&r)) return *e;
  ADD_FAILURE() << "accepted: " << body.dump();
  return {};
}

json base() { return {{"model", "m"}, {"max_tokens", 10}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}}; }

TEST(AnthropicRequest, MapsSystemSamplingAndStops) {
  json b = base();
  b["system"] = json::array({{{"type", "text"}, {"text", "Be brief."}, {"cache_control", {{"type", "ephemeral"}}}}});
  b["temperature"] = 0.5;
  b["top_k"] = 7;
  b["top_p"] = 0.9;
  b["stop_sequences"] = {"END"};
  b["metadata"] = {{"user_id", "u1"}};
  b["stream"] = true;
  const OpenAiRequest r = parse_ok(b);
  EXPECT_EQ(r.endpoint, Endpoint::kChat);
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[0]["role"], "system");
  EXPECT_EQ(r.messages[0]["content"], "Be brief.");
  EXPECT_EQ(r.messages[1]["content"], "hi");
  EXPECT_EQ(r.max_tokens, 10);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 0.5f);
  EXPECT_EQ(r.sampling.top_k, 7);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 0.9f);
  EXPECT_EQ(r.stop, std::vector<std::string>{"END"});
  EXPECT_TRUE(r.stream);
  EXPECT_EQ(r.n, 1);
}

TEST(AnthropicRequest, ToolUseAndToolResultBecomeToolCallsAndToolMessages) {
  json b = base();
  b["messages"] = json::array(
      {{{"role", "user"}, {"content", "Weather?"}},
       {{"role", "assistant"},
        {"content", json::array({{{"type", "thinking"}, {"thinking", "hmm"}, {"signature", "s"}},
                                 {{"type", "text"}, {"text", "Let me look."}},
                                 {{"type", "tool_use"}, {"id", "toolu_1"}, {"name", "get_weather"}, {"input", {{"city", "Oslo"}}}}})}},
       {{"role", "user"},
        {"content", json::array({{{"type", "tool_result"}, {"tool_use_id", "toolu_1"}, {"content", "sunny"}},
                                 {{"type", "text"}, {"text", "And tomorrow?"}}})}}});
  b["tools"] = json::array({{{"name", "get_weather"}, {"description", "d"},
                             {"input_schema", {{"type", "object"}, {"properties", {{"city", {{"type", "string"}}}}}}}}});
  b["tool_choice"] = {{"type", "tool"}, {"name", "get_weather"}, {"disable_parallel_tool_use", true}};
  const OpenAiRequest r = parse_ok(b);
  ASSERT_EQ(r.messages.size(), 4u) << r.messages.dump();
  EXPECT_EQ(r.messages[1]["role"], "assistant");
  EXPECT_EQ(r.messages[1]["content"], "Let me look.");
  ASSERT_EQ(r.messages[1]["tool_calls"].size(), 1u);
  EXPECT_EQ(r.messages[1]["tool_calls"][0]["id"], "toolu_1");
  // The chat parser hands templates the arguments as an object, as transformers' templates expect.
  EXPECT_EQ(r.messages[1]["tool_calls"][0]["function"]["arguments"], json({{"city", "Oslo"}}));
  EXPECT_EQ(r.messages[2]["role"], "tool");
  EXPECT_EQ(r.messages[2]["tool_call_id"], "toolu_1");
  EXPECT_EQ(r.messages[2]["content"], "sunny");
  EXPECT_EQ(r.messages[3]["role"], "user");
  EXPECT_EQ(r.tools.choice, ToolChoice::kNamed);
  EXPECT_EQ(r.tools.named, "get_weather");
  EXPECT_FALSE(r.tools.parallel);
  ASSERT_EQ(r.tools.tools.size(), 1u);
  EXPECT_EQ(r.tools.tools[0]["function"]["parameters"]["type"], "object");
}

TEST(AnthropicRequest, ToolChoiceAnyIsRequiredAndNoneWithoutToolsIsAccepted) {
  json b = base();
  b["tools"] = json::array({{{"name", "f"}, {"input_schema", {{"type", "object"}}}}});
  b["tool_choice"] = {{"type", "any"}};
  EXPECT_EQ(parse_ok(b).tools.choice, ToolChoice::kRequired);
  json c = base();
  c["tool_choice"] = {{"type", "none"}};
  EXPECT_EQ(parse_ok(c).tools.choice, ToolChoice::kNone);
}

TEST(AnthropicRequest, UnsupportedInputIsA400NamingIt) {
  json b = base();
  b["mcp_servers"] = json::array();
  EXPECT_EQ(parse_err(b).param, "mcp_servers");
  b = base();
  b["bogus"] = 1;
  EXPECT_EQ(parse_err(b).param, "bogus");
  b = base();
  b.erase("max_tokens");
  EXPECT_EQ(parse_err(b).param, "max_tokens");
  b = base();
  b["temperature"] = 1.5;  // Anthropic's range is [0, 1]
  EXPECT_EQ(parse_err(b).param, "temperature");
  b = base();
  b["messages"][0]["content"] = json::array({{{"type", "image"}, {"source", json::object()}}});
  EXPECT_EQ(parse_err(b).param, "messages[0].content[0].type");
  b = base();
  b["tools"] = json::array({{{"type", "web_search_20250305"}, {"name", "web_search"}}});
  EXPECT_EQ(parse_err(b).param, "tools[0].type");
  b = base();
  b["thinking"] = {{"type", "enabled"}, {"budget_tokens", 1024}};
  EXPECT_EQ(parse_err(b).param, "thinking");
  b = base();
  b["messages"].push_back({{"role", "assistant"}, {"content", "prefill"}});
  EXPECT_EQ(parse_err(b).param, "messages");
  b = base();
  b["stop_sequences"] = "END";  // the OpenAI parser's error, renamed
  EXPECT_EQ(parse_err(b).param, "stop_sequences");
  b = base();
  b["max_tokens"] = 0;
  EXPECT_EQ(parse_err(b).param, "max_tokens");
  EXPECT_EQ(parse_err(json::array()).http_status, 400);
  // count_tokens takes no max_tokens / sampling.
  json ct = base();
  EXPECT_EQ(parse_err(ct, true).param, "max_tokens");
  ct.erase("max_tokens");
  EXPECT_TRUE(std::holds_alternative<AnthropicRequest>(parse_anthropic_request(ct.dump(), true)));
}

TEST(AnthropicResponse, ErrorBodyTypesFollowTheStatus) {
  ApiError e = bad_param("max_tokens", "must be positive");
  json j = json::parse(anthropic_error_body(e));
  EXPECT_EQ(j["type"], "error");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_NE(j["error"]["message"].get<std::string>().find("max_tokens"), std::string::npos);
  e.http_status = 401;
  EXPECT_EQ(json::parse(anthropic_error_body(e))["error"]["type"], "authentication_error");
  e.http_status = 429;
  EXPECT_EQ(json::parse(anthropic_error_body(e))["error"]["type"], "rate_limit_error");
  e.http_status = 503;
  EXPECT_EQ(json::parse(anthropic_error_body(e))["error"]["type"], "overloaded_error");
  e.http_status = 500;
  EXPECT_EQ(json::parse(anthropic_error_body(e))["error"]["type"], "api_error");
}

TEST(AnthropicResponse, WholeMessageBlocksAndStopReasons) {
  ChoiceState c;
  c.parsed = true;
  c.reasoning = "think";
  c.content = "answer";
  c.calls.push_back({"call_1", "f", R"({"a":1})"});
  c.finish = EngineFinish::kEos;
  c.prompt_tokens = 10;
  c.cached_prompt_tokens = 4;
  c.completion_tokens = 5;
  json m = anthropic_message("msg_1", "m", c);
  ASSERT_EQ(m["content"].size(), 3u);
  EXPECT_EQ(m["content"][0]["type"], "thinking");
  EXPECT_EQ(m["content"][1]["text"], "answer");
  EXPECT_EQ(m["content"][2]["input"], json({{"a", 1}}));
  EXPECT_EQ(m["stop_reason"], "tool_use");
  EXPECT_EQ(m["usage"]["input_tokens"], 6);
  EXPECT_EQ(m["usage"]["cache_read_input_tokens"], 4);
  EXPECT_EQ(m["usage"]["output_tokens"], 5);
  ChoiceState s;
  s.text = "x";
  s.finish = EngineFinish::kStop;
  s.stop_string = "END";
  m = anthropic_message("msg_2", "m", s);
  EXPECT_EQ(m["stop_reason"], "stop_sequence");
  EXPECT_EQ(m["stop_sequence"], "END");
  s.finish = EngineFinish::kLength;
  EXPECT_EQ(anthropic_message("msg_3", "m", s)["stop_reason"], "max_tokens");
  EXPECT_TRUE(anthropic_message("msg_3", "m", s)["stop_sequence"].is_null());
}

// The stream's events in order, as the SDK's accumulator expects them.
std::vector<json> events(const std::string& sse) {
  std::vector<json> out;
  size_t at = 0;
  while ((at = sse.find("event: ", at)) != std::string::npos) {
    const size_t nl = sse.find('\n', at);
    const std::string name = sse.substr(at + 7, nl - at - 7);
    const size_t data = sse.find("data: ", nl);
    const size_t end = sse.find("\n\n", data);
    json j = json::parse(sse.substr(data + 6, end - data - 6));
    EXPECT_EQ(j["type"], name);
    out.push_back(std::move(j));
    at = end;
  }
  return out;
}

TEST(AnthropicResponse, StreamOpensAndClosesBlocksInOrder) {
  AnthropicStream s("msg_1", "m");
  ChoiceState c;
  c.prompt_tokens = 3;
  std::string out;
  s.start(c, out);
  s.delta(ChatDelta{"th", "", {}}, out);
  s.delta(ChatDelta{"ink", "Hel", {}}, out);
  s.delta(ChatDelta{"", "lo", {{"call_1", "f", R"({"a": 1})"}}}, out);
  c.finish = EngineFinish::kEos;
  c.completion_tokens = 9;
  s.finish(c, out);
  std::vector<std::string> types;
  for (const json& e : events(out)) types.push_back(e["type"]);
  const std::vector<std::string> want = {"message_start", "ping", "content_block_start", "content_block_delta",
                                         "content_block_delta", "content_block_delta", "content_block_stop",
                                         "content_block_start", "content_block_delta", "content_block_delta",
                                         "content_block_stop", "content_block_start", "content_block_delta",
                                         "content_block_stop", "message_delta", "message_stop"};
  EXPECT_EQ(types, want) << out;
  const auto ev = events(out);
  EXPECT_EQ(ev[2]["content_block"]["type"], "thinking");
  EXPECT_EQ(ev[5]["delta"]["type"], "signature_delta");
  EXPECT_EQ(ev[7]["index"], 1);
  EXPECT_EQ(ev[11]["content_block"]["type"], "tool_use");
  EXPECT_EQ(json::parse(ev[12]["delta"]["partial_json"].get<std::string>()), json({{"a", 1}}));
  EXPECT_EQ(ev[14]["delta"]["stop_reason"], "tool_use");
  EXPECT_EQ(ev[14]["usage"]["output_tokens"], 9);
}

TEST(AnthropicResponse, AnEmptyStreamStillHasOneTextBlock) {
  AnthropicStream s("msg_1", "m");
  ChoiceState c;
  c.finish = EngineFinish::kLength;
  std::string out;
  s.finish(c, out);
  const auto ev = events(out);
  ASSERT_EQ(ev.size(), 6u) << out;
  EXPECT_EQ(ev[2]["content_block"]["type"], "text");
  EXPECT_EQ(ev[4]["delta"]["stop_reason"], "max_tokens");
}

}  // namespace
}  // namespace tern::api
