// OpenAI request parsing and response framing (src/api/): typed fields, ranges, param names in errors,
// defaults, and the exact SSE / JSON shapes OpenAI clients parse.
#include <gtest/gtest.h>

#include "api/openai_request.h"
#include "api/constraint_request.h"
#include "api/openai_response.h"
#include "text/tokenizer/tokenizer.h"
#include "test_support.h"

namespace tern::api {
namespace {

using json = nlohmann::json;

OpenAiRequest ok(Endpoint e, const std::string& body) {
  auto r = parse_openai_request(e, body);
  if (auto* err = std::get_if<ApiError>(&r)) ADD_FAILURE() << body << " -> " << err->message;
  return std::holds_alternative<OpenAiRequest>(r) ? std::get<OpenAiRequest>(r) : OpenAiRequest{};
}

ApiError bad(Endpoint e, const std::string& body) {
  auto r = parse_openai_request(e, body);
  if (!std::holds_alternative<ApiError>(r)) {
    ADD_FAILURE() << body << " was accepted";
    return {};
  }
  return std::get<ApiError>(r);
}

TEST(ApiRequest, CompletionsFieldsAndDefaults) {
  auto r = ok(Endpoint::kCompletions,
              R"({"model":"m","prompt":"hi","max_tokens":7,"temperature":0.5,"top_p":0.9,"top_k":-1,"min_p":0.1,
                  "n":3,"stop":"END","seed":-3,"logprobs":2,"stream":true,
                  "stream_options":{"include_usage":true},"presence_penalty":0.5,"frequency_penalty":-0.5,
                  "user":"u"})");
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_EQ(std::get<std::string>(r.prompts[0]), "hi");
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 0.9f);
  EXPECT_EQ(r.sampling.top_k, 0);  // -1 means off, as vLLM
  EXPECT_EQ(r.n, 3);
  EXPECT_EQ(r.stop, std::vector<std::string>{"END"});
  ASSERT_TRUE(r.sampling.seed.has_value());
  EXPECT_EQ(r.top_logprobs, 2);
  EXPECT_TRUE(r.stream && r.include_usage);
  EXPECT_FALSE(r.echo);
  EXPECT_EQ(r.user, "u");
  EXPECT_EQ(r.ignored_fields, std::vector<std::string>{"user"});
  EXPECT_TRUE(ok(Endpoint::kCompletions, R"({"model":"m","prompt":"hi","echo":true})").echo);

  auto d = ok(Endpoint::kCompletions, R"({"model":"m","prompt":[1,2,3],"max_tokens":null,"stop":null})");
  EXPECT_FALSE(d.max_tokens.has_value());  // null = not given
  EXPECT_EQ(d.top_logprobs, -1);
  EXPECT_EQ(std::get<std::vector<int32_t>>(d.prompts[0]), (std::vector<int32_t>{1, 2, 3}));
  auto batch = ok(Endpoint::kCompletions, R"({"model":"m","prompt":["a",[5,6]]})");
  EXPECT_EQ(batch.prompts.size(), 2u);
}

TEST(ApiRequest, ChatMessagesAndLogprobs) {
  auto r = ok(Endpoint::kChat, R"({"model":"m","messages":[{"role":"developer","content":"sys"},
      {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
      {"role":"assistant","content":null}],"logprobs":true,"top_logprobs":3,"max_completion_tokens":9,
      "max_tokens":100})");
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[0]["role"], "system");
  EXPECT_EQ(r.messages[1]["content"], "ab");
  EXPECT_EQ(r.top_logprobs, 3);
  EXPECT_EQ(r.max_tokens, 9);  // max_completion_tokens wins
  EXPECT_EQ(ok(Endpoint::kChat, R"({"model":"m","messages":[{"role":"user","content":"x"}],"logprobs":true})")
                .top_logprobs,
            0);
}

TEST(ApiRequest, ErrorsNameTheParameter) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"prompt":"x"})", "model"},
      {R"({"model":"m"})", "prompt"},
      {R"({"model":"m","prompt":"x","max_tokens":0})", "max_tokens"},
      {R"({"model":"m","prompt":"x","max_tokens":2.5})", "max_tokens"},
      {R"({"model":"m","prompt":"x","n":0})", "n"},
      {R"({"model":"m","prompt":"x","temperature":"1"})", "temperature"},
      {R"({"model":"m","prompt":"x","temperature":3})", "temperature"},
      {R"({"model":"m","prompt":"x","top_p":0})", "top_p"},
      {R"({"model":"m","prompt":"x","stop":[1]})", "stop"},
      {R"({"model":"m","prompt":"x","logprobs":21})", "logprobs"},
      {R"({"model":"m","prompt":"x","stream":1})", "stream"},
      {R"({"model":"m","prompt":"x","stream_options":{"include_usage":"no"}})", "stream_options.include_usage"},
      {R"({"model":"m","prompt":[-1]})", "prompt"},
      {R"({"model":"m","prompt":["a",{}]})", "prompt"},
  };
  for (const auto& [body, param] : cases) EXPECT_EQ(bad(Endpoint::kCompletions, body).param, param) << body;
  EXPECT_EQ(bad(Endpoint::kChat, R"({"model":"m","messages":[{"role":"user","content":""}]})").param,
            "messages[0].content");
  EXPECT_EQ(bad(Endpoint::kChat, R"({"model":"m","messages":[{"role":"user","content":"x"}],"top_logprobs":2})").param,
            "top_logprobs");
  EXPECT_EQ(bad(Endpoint::kCompletions, R"({"model":"m","prompt":"x","n":100,"prompt":["a","b"]})").http_status, 400);
  const ApiError broken = bad(Endpoint::kCompletions, "{not json");
  EXPECT_EQ(broken.http_status, 400);
  EXPECT_TRUE(broken.param.empty());
  bad(Endpoint::kCompletions, "{\"model\":\"m\",\"prompt\":\"\xff\"}");  // invalid UTF-8
}

// Issue 14 item 1: every OpenAI field is implemented, accepted only with its no-op value, ignored (and
// reported so the server logs it once), or a 400 naming it; unknown fields are 400s too.
TEST(ApiRequest, EveryOpenAiFieldIsClassified) {
  const std::string chat_base = R"("model":"m","messages":[{"role":"user","content":"x"}])";
  auto chat = [&](const std::string& extra) { return "{" + chat_base + "," + extra + "}"; };
  auto comp = [](const std::string& extra) { return R"({"model":"m","prompt":"x",)" + extra + "}"; };
  // No-op values.
  for (const char* extra : {R"("tools":[])", R"("tool_choice":"none")", R"("parallel_tool_calls":true)",
                            R"("response_format":{"type":"text"})", R"("logit_bias":{})", R"("modalities":["text"])",
                            R"("store":false)", R"("echo":false)", R"("functions":[])", R"("function_call":"none")",
                            R"("audio":null)", R"("tools":null)"}) {
    auto r = ok(Endpoint::kChat, chat(extra));
    EXPECT_TRUE(r.ignored_fields.empty()) << extra;
  }
  for (const char* extra : {R"("best_of":1)", R"("suffix":"")", R"("logit_bias":{})", R"("best_of":2,"n":2)"}) {
    ok(Endpoint::kCompletions, comp(extra));
  }
  // Ignored (and reported).
  auto ig = ok(Endpoint::kChat, chat(R"("metadata":{"a":"b"},"service_tier":"auto","prompt_cache_key":"k",)"
                                     R"("prompt_cache_retention":"24h","safety_identifier":"s","prediction":{"type":"content"},)"
                                     R"("user":"u","stream":true,"stream_options":{"include_obfuscation":false})"));
  EXPECT_EQ(ig.ignored_fields.size(), 8u);
  // 400s naming the field.
  const std::vector<std::pair<std::string, std::string>> chat_bad = {
      {R"("tools":[{"type":"function"}])", "tools[0].function"}, {R"("tool_choice":"auto")", "tool_choice"},
      {R"("tool_choice":{"type":"function"})", "tool_choice"}, {R"("parallel_tool_calls":"y")", "parallel_tool_calls"},
      {R"("logit_bias":{"x":1})", "logit_bias"},               {R"("modalities":["audio"])", "modalities"},
      {R"("store":true)", "store"},                            {R"("echo":true)", "echo"},
      {R"("audio":{})", "audio"},                              {R"("reasoning_effort":"low")", "reasoning_effort"},
      {R"("verbosity":"low")", "verbosity"},                   {R"("web_search_options":{})", "web_search_options"},
      {R"("functions":[{"name":"f"}])", "functions"},          {R"("function_call":"auto")", "function_call"},
      {R"("metadata":[1])", "metadata"},                       {R"("service_tier":1)", "service_tier"},
      {R"("best_of":1)", "best_of"},                           {R"("suffix":"")", "suffix"},
      {R"("prompt":"x")", "prompt"},                           {R"("chat_template_kwargs":{})", "chat_template_kwargs"},
      {R"("stream_options":{"include_obfuscation":1})", "stream_options.include_obfuscation"},
  };
  for (const auto& [extra, param] : chat_bad) EXPECT_EQ(bad(Endpoint::kChat, chat(extra)).param, param) << extra;
  const std::vector<std::pair<std::string, std::string>> comp_bad = {
      {R"("best_of":3)", "best_of"},          {R"("best_of":1,"n":2)", "best_of"}, {R"("suffix":"z")", "suffix"},
      {R"("echo":true,"logprobs":0)", "echo"}, {R"("tools":[])", "tools"},         {R"("messages":[])", "messages"},
      {R"("max_completion_tokens":2)", "max_completion_tokens"},                  {R"("top_logprobs":2)", "top_logprobs"},
      {R"("n_probs":2)", "n_probs"},
  };
  for (const auto& [extra, param] : comp_bad) EXPECT_EQ(bad(Endpoint::kCompletions, comp(extra)).param, param) << extra;
  // Message fields.
  EXPECT_EQ(bad(Endpoint::kChat, R"({"model":"m","messages":[{"role":"user","content":"x","weight":1}]})").param,
            "messages[0].weight");
  EXPECT_EQ(bad(Endpoint::kChat, R"({"model":"m","messages":[{"role":"assistant","content":"x","refusal":"no"}]})").param,
            "messages[0].refusal");
  auto named = ok(Endpoint::kChat, R"({"model":"m","messages":[{"role":"assistant","content":"x","tool_calls":[]},
      {"role":"tool","content":"42","tool_call_id":"c1"},{"role":"user","content":"y","name":"ann"}]})");
  EXPECT_EQ(named.messages[1]["tool_call_id"], "c1");
  EXPECT_EQ(named.messages[2]["name"], "ann");
}

// Issue 16: tools, tool_choice, parallel_tool_calls, tool_calls in the history, logit_bias.
TEST(ApiRequest, ToolFields) {
  const std::string base = R"("model":"m","messages":[{"role":"user","content":"x"}])";
  auto chat = [&](const std::string& extra) { return "{" + base + "," + extra + "}"; };
  const std::string tools =
      R"("tools":[{"type":"function","function":{"name":"get_weather","description":"d","parameters":{"type":"object",)"
      R"("properties":{"city":{"type":"string"}},"required":["city"]},"strict":true}},)"
      R"({"type":"function","function":{"name":"now"}}])";
  auto r = ok(Endpoint::kChat, chat(tools));
  EXPECT_EQ(r.tools.choice, ToolChoice::kAuto);  // OpenAI's default with tools
  ASSERT_EQ(r.tools.tools.size(), 2u);
  EXPECT_EQ(r.tools.tools[1]["function"]["parameters"]["type"], "object");  // a missing schema is "no arguments"
  EXPECT_TRUE(r.tools.parallel);
  r = ok(Endpoint::kChat, chat(tools + R"(,"tool_choice":"required","parallel_tool_calls":false)"));
  EXPECT_EQ(r.tools.choice, ToolChoice::kRequired);
  EXPECT_FALSE(r.tools.parallel);
  r = ok(Endpoint::kChat, chat(tools + R"(,"tool_choice":{"type":"function","function":{"name":"now"}})"));
  EXPECT_EQ(r.tools.choice, ToolChoice::kNamed);
  EXPECT_EQ(r.tools.named, "now");
  EXPECT_EQ(ok(Endpoint::kChat, chat(tools + R"(,"tool_choice":"none")")).tools.choice, ToolChoice::kNone);
  EXPECT_EQ(ok(Endpoint::kChat, chat(R"("tools":[])")).tools.choice, ToolChoice::kNone);

  const std::vector<std::pair<std::string, std::string>> bad_cases = {
      {R"("tools":{})", "tools"},
      {R"("tools":[1])", "tools[0]"},
      {R"("tools":[{"type":"code","function":{"name":"f"}}])", "tools[0].type"},
      {R"("tools":[{"type":"function","function":{"name":"a b"}}])", "tools[0].function.name"},
      {R"("tools":[{"type":"function","function":{"name":"f","parameters":"x"}}])", "tools[0].function.parameters"},
      {R"("tools":[{"type":"function","function":{"name":"f","extra":1}}])", "tools[0].function.extra"},
      {R"("tools":[{"type":"function","function":{"name":"f"}},{"type":"function","function":{"name":"f"}}])",
       "tools[1].function.name"},
      {tools + R"(,"tool_choice":"sometimes")", "tool_choice"},
      {tools + R"(,"tool_choice":{"type":"function","function":{"name":"nope"}})", "tool_choice"},
      {tools + R"(,"tool_choice":{"type":"function"})", "tool_choice"},
      {R"("tool_choice":"required")", "tool_choice"},
      {tools + R"(,"parallel_tool_calls":1)", "parallel_tool_calls"},
      {R"("logit_bias":{"-1":1})", "logit_bias"},
      {R"("logit_bias":{"5":101})", "logit_bias"},
      {R"("logit_bias":{"5":"x"})", "logit_bias"},
      {R"("logit_bias":[])", "logit_bias"},
  };
  for (const auto& [extra, param] : bad_cases) EXPECT_EQ(bad(Endpoint::kChat, chat(extra)).param, param) << extra;

  // History: an assistant's tool calls (arguments parsed for the template) and the tool's answer.
  auto h = ok(Endpoint::kChat, R"({"model":"m","messages":[{"role":"user","content":"w?"},
      {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
        "function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
      {"role":"tool","tool_call_id":"call_1","content":"sunny"}]})");
  EXPECT_EQ(h.messages[1]["tool_calls"][0]["function"]["arguments"], json({{"city", "Paris"}}));
  EXPECT_EQ(h.messages[1]["content"], "");
  EXPECT_EQ(h.messages[2]["tool_call_id"], "call_1");
  auto hist = [](const std::string& calls) {
    return R"({"model":"m","messages":[{"role":"assistant","content":"","tool_calls":)" + calls + "}]}";
  };
  EXPECT_EQ(bad(Endpoint::kChat, hist(R"([{"type":"function","function":{"name":"f","arguments":"{}"}}])")).param,
            "messages[0].tool_calls[0].id");
  EXPECT_EQ(bad(Endpoint::kChat, hist(R"([{"id":"1","function":{"name":"f","arguments":"{oops"}}])")).param,
            "messages[0].tool_calls[0].function.arguments");
  EXPECT_EQ(bad(Endpoint::kChat, hist(R"([{"id":"1","function":{"arguments":"{}"}}])")).param,
            "messages[0].tool_calls[0].function");
  EXPECT_EQ(bad(Endpoint::kChat, R"({"model":"m","messages":[{"role":"user","content":"x","tool_calls":[{"id":"1"}]}]})")
                .param,
            "messages[0].tool_calls");

  // logit_bias on both endpoints.
  auto lb = ok(Endpoint::kCompletions, R"({"model":"m","prompt":"x","logit_bias":{"5":-100,"7":2.5}})");
  ASSERT_EQ(lb.sampling.logit_bias.size(), 2u);
  EXPECT_EQ(lb.sampling.logit_bias[0], (std::pair<int32_t, float>{5, -100.f}));
  EXPECT_EQ(lb.sampling.logit_bias[1], (std::pair<int32_t, float>{7, 2.5f}));
  EXPECT_EQ(ok(Endpoint::kChat, chat(R"("logit_bias":{"3":1})")).sampling.logit_bias.size(), 1u);
}

// Issue 16: response_format, grammar, regex -> ConstraintSpec; forced tool calls -> their JSON Schema.
TEST(ApiRequest, ConstraintFields) {
  const std::string base = R"("model":"m","messages":[{"role":"user","content":"x"}])";
  auto chat = [&](const std::string& extra) { return "{" + base + "," + extra + "}"; };
  using K = ConstraintSpec::Kind;
  EXPECT_EQ(ok(Endpoint::kChat, chat(R"("response_format":{"type":"text"})")).constraint.kind, K::kNone);
  EXPECT_EQ(ok(Endpoint::kChat, chat(R"("response_format":{"type":"json_object"})")).constraint.kind, K::kJsonObject);
  auto js = ok(Endpoint::kChat, chat(R"("response_format":{"type":"json_schema","json_schema":{"name":"p","strict":true,)"
                                     R"("schema":{"type":"object","properties":{"a":{"type":"integer"}}}}})"));
  EXPECT_EQ(js.constraint.kind, K::kJsonSchema);
  EXPECT_EQ(js.constraint.schema["properties"]["a"]["type"], "integer");
  EXPECT_EQ(js.constraint.param, "response_format.json_schema.schema");
  auto g = ok(Endpoint::kCompletions, R"({"model":"m","prompt":"x","grammar":"root ::= \"a\""})");
  EXPECT_EQ(g.constraint.kind, K::kGbnf);
  EXPECT_EQ(g.constraint.text, "root ::= \"a\"");
  EXPECT_EQ(ok(Endpoint::kChat, chat(R"("regex":"[0-9]+")")).constraint.kind, K::kRegex);

  const std::vector<std::pair<std::string, std::string>> bad_cases = {
      {R"("response_format":"json")", "response_format"},
      {R"("response_format":{"type":"xml"})", "response_format.type"},
      {R"("response_format":{"type":"json_object","schema":{}})", "response_format.schema"},
      {R"("response_format":{"type":"json_schema"})", "response_format.json_schema"},
      {R"("response_format":{"type":"json_schema","json_schema":{"name":"x"}})", "response_format.json_schema.schema"},
      {R"("response_format":{"type":"json_schema","json_schema":{"schema":{},"extra":1}})",
       "response_format.json_schema.extra"},
      {R"("grammar":"")", "grammar"},
      {R"("regex":5)", "regex"},
      {R"("grammar":"root ::= \"a\"","regex":"a")", "regex"},
      {R"("response_format":{"type":"json_object"},"tools":[{"type":"function","function":{"name":"f"}}])",
       "response_format"},
  };
  for (const auto& [extra, param] : bad_cases) EXPECT_EQ(bad(Endpoint::kChat, chat(extra)).param, param) << extra;
  // response_format is a chat field (OpenAI's); completions take grammar / regex.
  EXPECT_EQ(bad(Endpoint::kCompletions, R"({"model":"m","prompt":"x","response_format":{"type":"json_object"}})").param,
            "response_format");

  ToolFields tf;
  tf.tools = json::parse(R"([{"type":"function","function":{"name":"a","parameters":{"type":"object"}}},
                             {"type":"function","function":{"name":"b","parameters":{"type":"string"}}}])");
  tf.choice = ToolChoice::kNamed;
  tf.named = "b";
  EXPECT_EQ(forced_tool_schema(tf), json({{"type", "string"}}));
  tf.choice = ToolChoice::kRequired;
  tf.parallel = false;
  const json req = forced_tool_schema(tf);
  EXPECT_EQ(req["type"], "array");
  EXPECT_EQ(req["minItems"], 1);
  EXPECT_EQ(req["maxItems"], 1);
  ASSERT_EQ(req["items"]["anyOf"].size(), 2u);
  EXPECT_EQ(req["items"]["anyOf"][1]["properties"]["name"]["const"], "b");
  EXPECT_EQ(req["items"]["anyOf"][1]["properties"]["parameters"], json({{"type", "string"}}));
}

TEST(ApiRequest, ErrorBodyHasOpenAiShape) {
  ApiError e = bad_param("n", "'n' must be >= 1");
  const json j = json::parse(error_body(e));
  EXPECT_EQ(j["error"]["message"], "'n' must be >= 1");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "n");
  EXPECT_TRUE(j["error"]["code"].is_null());
}

TEST(ApiResponse, StreamChunksAndUsage) {
  auto tok = Tokenizer::load(test::model_dir("docs-llama-28m"));
  ASSERT_TRUE(tok.is_ok()) << tok.status().message();
  ResponseMeta meta{Endpoint::kChat, "chatcmpl-1", 123, "m", false};
  EngineOutput out;
  out.tokens = {42};
  out.logprobs = {-0.5f};
  out.text = "hey";
  const json first = stream_chunk(meta, *tok, 0, EngineOutput{}, "", true, false);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(first["choices"][0]["delta"]["content"], "");
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
  EXPECT_FALSE(first.contains("usage"));
  out.finish = EngineFinish::kEos;
  const json last = stream_chunk(meta, *tok, 1, out, "hey", false, true);
  EXPECT_EQ(last["choices"][0]["index"], 1);
  EXPECT_EQ(last["choices"][0]["delta"]["content"], "hey");
  EXPECT_EQ(last["choices"][0]["finish_reason"], "stop");
  EXPECT_TRUE(last["usage"].is_null());
  EXPECT_EQ(sse_event(json{{"a", 1}}), "data: {\"a\":1}\n\n");

  std::vector<ChoiceState> choices(2);
  choices[0].prompt_tokens = choices[1].prompt_tokens = 10;
  choices[0].completion_tokens = 3;
  choices[1].completion_tokens = 4;
  const json u = usage_json(choices, 2);  // n = 2 choices of one prompt: the prompt counts once
  EXPECT_EQ(u["prompt_tokens"], 10);
  EXPECT_EQ(u["completion_tokens"], 7);
  EXPECT_EQ(u["total_tokens"], 17);

  meta.endpoint = Endpoint::kCompletions;
  meta.want_logprobs = true;
  ChoiceState c;
  c.add(out);
  const json full = full_response(meta, *tok, {c}, {"echo:"}, 1);
  EXPECT_EQ(full["object"], "text_completion");
  EXPECT_EQ(full["choices"][0]["text"], "echo:hey");
  EXPECT_EQ(full["choices"][0]["logprobs"]["tokens"].size(), 1u);
  EXPECT_EQ(full["choices"][0]["logprobs"]["text_offset"][0], 5);
}

}  // namespace
}  // namespace tern::api
