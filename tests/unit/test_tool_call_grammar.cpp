// tool_choice "auto" in the Hermes format (constraint_request.cpp): free text that never spells
// "<tool_call>", then calls in the template's exact format whose arguments follow their tool's schema;
// in the Llama 3.1 JSON format: text that does not open with "{", or calls. Checked byte by byte on a
// one-byte-per-token vocabulary, and against the reply parser (what the grammar admits, it reads so).
#include <gtest/gtest.h>

#include "api/constraint_request.h"
#include "constrain/token_constraint.h"
#include "text/tool_calls/chat_output_parser.h"

namespace tern::api {
namespace {

using json = nlohmann::json;

ToolFields weather_tools(bool parallel) {
  ToolFields tf;
  tf.tools = json::parse(R"([
    {"type":"function","function":{"name":"get_weather","parameters":{"type":"object",
      "properties":{"city":{"type":"string","enum":["Paris","Oslo"]}},"required":["city"]}}},
    {"type":"function","function":{"name":"add","parameters":{"type":"object",
      "properties":{"a":{"type":"integer"}},"required":["a"]}}}])");
  tf.choice = ToolChoice::kAuto;
  tf.parallel = parallel;
  return tf;
}

std::shared_ptr<const Grammar> compile(const ToolFields& tf, ToolCallFormat format = ToolCallFormat::kHermes) {
  std::vector<std::string> bytes;
  for (int b = 0; b < 256; ++b) bytes.emplace_back(1, char(b));
  auto vocab = TokenVocabulary::from_bytes(bytes);
  EXPECT_TRUE(vocab.is_ok());
  auto schema_gbnf = [](const json& s) { return json_schema_to_gbnf(s); };
  auto text = format == ToolCallFormat::kHermes ? hermes_auto_gbnf(tf, schema_gbnf) : llama3_auto_gbnf(tf, schema_gbnf);
  EXPECT_TRUE(text.is_ok()) << text.status().message();
  auto g = compile_gbnf(text.value(), vocab.value());
  EXPECT_TRUE(g.is_ok()) << g.status().message() << "\n" << text.value();
  return g.is_ok() ? g.value() : nullptr;
}

// 1: every byte accepted and the grammar can end; 0: every byte accepted, cannot end; -1: a byte refused.
int run(const std::shared_ptr<const Grammar>& g, const std::string& s) {
  TokenConstraint c(g);
  for (unsigned char b : s) {
    if (!c.accept(int32_t(b)).is_ok()) return -1;
  }
  return c.can_end() ? 1 : 0;
}

const std::string kCall = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
const std::string kAdd = "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 12}}\n</tool_call>";

TEST(ToolCallGrammar, FreeTextThenCallsThatFollowTheirSchemas) {
  auto g = compile(weather_tools(true));
  ASSERT_TRUE(g);
  EXPECT_EQ(run(g, "Hello <b>world</b> a<b <to<tool <tool_cal"), 1);  // text, marker prefixes included
  EXPECT_EQ(run(g, "<think>\nhm\n</think>\n\n" + kCall), 1);
  EXPECT_EQ(run(g, "Sure. " + kCall + "\n" + kAdd), 1);
  EXPECT_EQ(run(g, "<to<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1}}\n</tool_call>"), 1);
  EXPECT_EQ(run(g, kCall.substr(0, 40)), 0);  // a call begun must be finished
  // Once "<tool_call>" is written, only a well-formed call of a known tool may follow.
  EXPECT_EQ(run(g, "<tool_call>\n{\"name\": \"rm\""), -1);
  EXPECT_EQ(run(g, "<tool_call>garbage"), -1);
  EXPECT_EQ(run(g, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\""), -1);
  EXPECT_EQ(run(g, "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": \"x\""), -1);
  // Nothing but further calls after a call.
  EXPECT_EQ(run(g, kCall + " more text"), -1);
}

TEST(ToolCallGrammar, OneCallWithoutParallelCalls) {
  auto g = compile(weather_tools(false));
  ASSERT_TRUE(g);
  EXPECT_EQ(run(g, kCall), 1);
  EXPECT_EQ(run(g, kCall + "\n<"), -1);
}

TEST(ToolCallGrammar, RulesOfEachSchemaAreRenamedApart) {
  ToolFields tf = weather_tools(true);
  std::string seen;
  auto text = hermes_auto_gbnf(tf, [](const json& s) { return json_schema_to_gbnf(s); });
  ASSERT_TRUE(text.is_ok());
  EXPECT_NE(text.value().find("t0-root ::= "), std::string::npos) << text.value();
  EXPECT_NE(text.value().find("t1-root ::= "), std::string::npos) << text.value();
}

// The calls a Llama 3.1 reply parses into (names, then arguments), and its content.
std::pair<std::vector<std::string>, std::string> llama3_parse(const std::string& reply) {
  ChatParserOptions o;
  o.format = ToolCallFormat::kLlama3;
  o.tool_names = {"get_weather", "add"};
  ChatOutputParser p(o);
  p.feed(reply);
  p.finish();
  std::vector<std::string> calls;
  for (const ToolCall& c : p.calls()) calls.push_back(c.name + " " + c.arguments);
  return {calls, p.content()};
}

TEST(ToolCallGrammar, Llama3TextOrCallsThatFollowTheirSchemas) {
  auto g = compile(weather_tools(true), ToolCallFormat::kLlama3);
  ASSERT_TRUE(g);
  const std::string weather = R"({"name": "get_weather", "parameters": {"city": "Paris"}})";
  const std::string add = R"({"name": "add", "parameters": {"a": 12}})";
  // Text: anything that does not open with "{"; braces later are fine.
  EXPECT_EQ(run(g, "The weather is {fine} today."), 1);
  EXPECT_EQ(run(g, ""), 1);
  EXPECT_EQ(llama3_parse("The weather is {fine} today.").second, "The weather is {fine} today.");
  // Calls, alone or joined by "; ", each read back by the parser.
  EXPECT_EQ(run(g, weather), 1);
  EXPECT_EQ(run(g, "\n " + weather + "; " + add), 1);
  EXPECT_EQ(llama3_parse(weather + "; " + add).first,
            (std::vector<std::string>{R"(get_weather {"city":"Paris"})", R"(add {"a":12})"}));
  EXPECT_EQ(run(g, weather.substr(0, 30)), 0);  // a call begun must be finished
  // Once "{" opens the reply, only a well-formed call of a known tool may follow.
  EXPECT_EQ(run(g, R"({"name": "rm")"), -1);
  EXPECT_EQ(run(g, "{garbage"), -1);
  EXPECT_EQ(run(g, R"({"name": "get_weather", "parameters": {"city": "Rome")"), -1);
  EXPECT_EQ(run(g, weather + " and more"), -1);
}

TEST(ToolCallGrammar, Llama3OneCallWithoutParallelCalls) {
  auto g = compile(weather_tools(false), ToolCallFormat::kLlama3);
  ASSERT_TRUE(g);
  EXPECT_EQ(run(g, R"({"name": "add", "parameters": {"a": 1}})"), 1);
  EXPECT_EQ(run(g, R"({"name": "add", "parameters": {"a": 1}}; )"), -1);
}

}  // namespace
}  // namespace tern::api
