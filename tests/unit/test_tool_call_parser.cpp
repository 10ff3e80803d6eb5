// Tool-call and reasoning parsing of chat replies (src/text/tool_calls/): each template family, malformed
// and partial calls, and streaming in every split (the same result whatever the chunking).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "text/tool_calls/chat_output_parser.h"

namespace tern {
namespace {

using json = nlohmann::json;

struct Whole {
  std::string reasoning, content;
  std::vector<ToolCall> calls;
};

ChatParserOptions opts(ToolCallFormat f, std::vector<std::string> names = {"get_weather", "add"}) {
  ChatParserOptions o;
  o.format = f;
  o.tool_names = std::move(names);
  o.reasoning = true;
  o.id_seed = 42;
  return o;
}

// Feeds `text` in pieces of `step` bytes and checks the deltas add up to the totals.
Whole parse(const ChatParserOptions& o, const std::string& text, size_t step = 1 << 20) {
  ChatOutputParser p(o);
  Whole w;
  auto add = [&](const ChatDelta& d) {
    w.reasoning += d.reasoning;
    w.content += d.content;
    w.calls.insert(w.calls.end(), d.calls.begin(), d.calls.end());
  };
  for (size_t i = 0; i < text.size(); i += step) add(p.feed(std::string_view(text).substr(i, step)));
  add(p.finish());
  EXPECT_EQ(w.reasoning, p.reasoning());
  EXPECT_EQ(w.content, p.content());
  EXPECT_EQ(w.calls.size(), p.calls().size());
  return w;
}

// The same result for every chunk size.
Whole parse_all_splits(const ChatParserOptions& o, const std::string& text) {
  const Whole ref = parse(o, text);
  for (size_t step : {1, 2, 3, 5, 7, 13}) {
    const Whole w = parse(o, text, step);
    EXPECT_EQ(w.reasoning, ref.reasoning) << "step " << step;
    EXPECT_EQ(w.content, ref.content) << "step " << step;
    EXPECT_EQ(w.calls.size(), ref.calls.size()) << "step " << step;
    for (size_t i = 0; i < w.calls.size() && i < ref.calls.size(); ++i) {
      EXPECT_EQ(w.calls[i].name, ref.calls[i].name);
      EXPECT_EQ(w.calls[i].arguments, ref.calls[i].arguments);
      EXPECT_EQ(w.calls[i].id, ref.calls[i].id);
    }
  }
  return ref;
}

TEST(ToolCallFormat, DetectedFromTemplate) {
  EXPECT_EQ(detect_chat_format("{{ '<tool_call>\\n' }}{% if tools %}").tool_calls, ToolCallFormat::kHermes);
  EXPECT_EQ(detect_chat_format("{{ '[TOOL_CALLS] [' }}").tool_calls, ToolCallFormat::kMistral);
  EXPECT_FALSE(detect_chat_format("{{ '[TOOL_CALLS] [' }}").mistral_name_args);
  EXPECT_TRUE(detect_chat_format("{{ '[TOOL_CALLS]' + c.name + '[ARGS]' + c.arguments }}").mistral_name_args);
  EXPECT_EQ(detect_chat_format("<|start_header_id|>ipython<|end_header_id|> <|python_tag|>").tool_calls,
            ToolCallFormat::kLlama3);
  EXPECT_EQ(detect_chat_format("<|start_header_id|>{{ m.content }}<|eot_id|>").tool_calls, ToolCallFormat::kNone);
  EXPECT_TRUE(detect_chat_format("<think>\\n").reasoning);
  EXPECT_FALSE(detect_chat_format("{{ messages }}").reasoning);
}

TEST(ToolCallFormat, Ids) {
  const std::string a = make_tool_call_id(ToolCallFormat::kHermes, 1, 0), b = make_tool_call_id(ToolCallFormat::kHermes, 1, 1);
  EXPECT_EQ(a.rfind("call_", 0), 0u);
  EXPECT_EQ(a.size(), 29u);
  EXPECT_NE(a, b);
  const std::string m = make_tool_call_id(ToolCallFormat::kMistral, 1, 0);
  EXPECT_EQ(m.size(), 9u);
  for (char c : m) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)));
}

TEST(ToolCallParser, HermesCallsContentAndReasoning) {
  const std::string text =
      "<think>\nI should call it.\n</think>\n\nLet me check.<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
      "{\"city\": \"Paris\", \"unit\": \"c\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, "
      "\"b\": [2, \"}\"]}}\n</tool_call>";
  const Whole w = parse_all_splits(opts(ToolCallFormat::kHermes), text);
  EXPECT_EQ(w.reasoning, "I should call it.");
  EXPECT_EQ(w.content, "Let me check.");
  ASSERT_EQ(w.calls.size(), 2u);
  EXPECT_EQ(w.calls[0].name, "get_weather");
  EXPECT_EQ(json::parse(w.calls[0].arguments), json({{"city", "Paris"}, {"unit", "c"}}));
  EXPECT_EQ(w.calls[1].name, "add");
  EXPECT_EQ(json::parse(w.calls[1].arguments), json::parse(R"({"a":1,"b":[2,"}"]})"));
  EXPECT_NE(w.calls[0].id, w.calls[1].id);
}

// The arguments string keeps the keys in the order the model wrote them (a client streaming or showing
// them sees what was generated), not sorted.
TEST(ToolCallParser, ArgumentsKeepTheModelsKeyOrder) {
  const std::string text =
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"unit\": \"c\", \"city\": \"Paris\"}}\n</tool_call>";
  const Whole w = parse_all_splits(opts(ToolCallFormat::kHermes), text);
  ASSERT_EQ(w.calls.size(), 1u);
  EXPECT_EQ(w.calls[0].arguments, R"({"unit":"c","city":"Paris"})");
}

TEST(ToolCallParser, HermesMalformedCallsStayContent) {
  auto o = opts(ToolCallFormat::kHermes);
  // Not JSON, an unknown tool, arguments not an object, cut off before the closing tag.
  for (const std::string& text : {
           std::string("<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1}\n</tool_call>"),
           std::string("<tool_call>{\"name\": \"rm_rf\", \"arguments\": {}}</tool_call>"),
           std::string("<tool_call>{\"name\": \"add\", \"arguments\": 3}</tool_call>"),
           std::string("<tool_call>{\"arguments\": {}}</tool_call>"),
           std::string("ok <tool_call>{\"name\": \"add\", \"arguments\": {\"a\": 1}}"),
       }) {
    const Whole w = parse_all_splits(o, text);
    EXPECT_TRUE(w.calls.empty()) << text;
    EXPECT_EQ(w.content, text);
  }
  // A malformed call followed by text: all of it is content.
  const Whole w = parse_all_splits(o, "<tool_call>oops</tool_call> then text");
  EXPECT_TRUE(w.calls.empty());
  EXPECT_EQ(w.content, "<tool_call>oops</tool_call> then text");
}

TEST(ToolCallParser, PlainTextAndPartialMarkers) {
  auto o = opts(ToolCallFormat::kHermes);
  EXPECT_EQ(parse_all_splits(o, "a < b and <tool is <tool_cal").content, "a < b and <tool is <tool_cal");
  EXPECT_EQ(parse_all_splits(o, "<thin").content, "<thin");
  // No <think>: all content, even with a stray </think> later.
  EXPECT_EQ(parse_all_splits(o, "hello </think> x").content, "hello </think> x");
  // Reasoning cut off by max_tokens stays reasoning.
  const Whole w = parse_all_splits(o, "<think>still thinking");
  EXPECT_EQ(w.reasoning, "still thinking");
  EXPECT_EQ(w.content, "");
  // Without format or reasoning every byte is content.
  ChatParserOptions none;
  EXPECT_EQ(parse_all_splits(none, "<think>x</think><tool_call>{}</tool_call>").content,
            "<think>x</think><tool_call>{}</tool_call>");
}

TEST(ToolCallParser, PromptOpenedThink) {
  auto o = opts(ToolCallFormat::kHermes);
  o.starts_in_reasoning = true;
  const Whole w = parse_all_splits(o, "plan\n</think>\n\nanswer");
  EXPECT_EQ(w.reasoning, "plan");
  EXPECT_EQ(w.content, "answer");
}

TEST(ToolCallParser, Llama3Json) {
  auto o = opts(ToolCallFormat::kLlama3);
  Whole w = parse_all_splits(o, " {\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}");
  ASSERT_EQ(w.calls.size(), 1u);
  EXPECT_EQ(w.calls[0].name, "get_weather");
  EXPECT_EQ(json::parse(w.calls[0].arguments), json({{"city", "Oslo"}}));
  EXPECT_EQ(w.content, "");
  w = parse_all_splits(o, "<|python_tag|>{\"name\": \"add\", \"parameters\": {\"a\": 1}}; {\"name\": \"add\", "
                          "\"parameters\": {\"a\": 2}}");
  ASSERT_EQ(w.calls.size(), 2u);
  EXPECT_EQ(json::parse(w.calls[1].arguments), json({{"a", 2}}));
  // JSON that is not a call, and text that mentions JSON later, are content.
  EXPECT_EQ(parse_all_splits(o, "{\"answer\": 42}").content, "{\"answer\": 42}");
  w = parse_all_splits(o, "Sure: {\"name\": \"add\", \"parameters\": {}}");
  EXPECT_TRUE(w.calls.empty());
  EXPECT_EQ(w.content, "Sure: {\"name\": \"add\", \"parameters\": {}}");
  // Cut off.
  w = parse_all_splits(o, "{\"name\": \"add\", \"parameters\": {\"a\"");
  EXPECT_TRUE(w.calls.empty());
  EXPECT_EQ(w.content, "{\"name\": \"add\", \"parameters\": {\"a\"");
}

TEST(ToolCallParser, MistralBothForms) {
  auto o = opts(ToolCallFormat::kMistral);
  Whole w = parse_all_splits(o, "[TOOL_CALLS] [{\"name\": \"add\", \"arguments\": {\"a\": 1}}, {\"name\": "
                                "\"get_weather\", \"arguments\": {\"city\": \"Rome\"}}]");
  ASSERT_EQ(w.calls.size(), 2u);
  EXPECT_EQ(w.calls[1].name, "get_weather");
  EXPECT_EQ(w.calls[0].id.size(), 9u);
  w = parse_all_splits(o, "[TOOL_CALLS]add[ARGS]{\"a\": 5}[TOOL_CALLS]get_weather[ARGS]{\"city\": \"X\"}");
  ASSERT_EQ(w.calls.size(), 2u);
  EXPECT_EQ(json::parse(w.calls[0].arguments), json({{"a", 5}}));
  EXPECT_EQ(w.calls[1].name, "get_weather");
  w = parse_all_splits(o, "[TOOL_CALLS] [{\"name\": \"add\", \"arguments\": {\"a\": 1}}");
  EXPECT_TRUE(w.calls.empty());
  EXPECT_EQ(w.content, "[TOOL_CALLS] [{\"name\": \"add\", \"arguments\": {\"a\": 1}}");
  w = parse_all_splits(o, "[TOOL_CALLS] not json");
  EXPECT_TRUE(w.calls.empty());
  EXPECT_EQ(w.content, "[TOOL_CALLS] not json");
}

TEST(ToolCallParser, ArgumentsAsStringAndParallelOff) {
  auto o = opts(ToolCallFormat::kHermes);
  Whole w = parse_all_splits(o, "<tool_call>{\"name\": \"add\", \"arguments\": \"{\\\"a\\\": 3}\"}</tool_call>");
  ASSERT_EQ(w.calls.size(), 1u);
  EXPECT_EQ(json::parse(w.calls[0].arguments), json({{"a", 3}}));
  o.parallel = false;
  w = parse_all_splits(o, "<tool_call>{\"name\": \"add\", \"arguments\": {}}</tool_call><tool_call>{\"name\": \"add\", "
                          "\"arguments\": {}}</tool_call>");
  ASSERT_EQ(w.calls.size(), 1u);
  EXPECT_EQ(w.content, "<tool_call>{\"name\": \"add\", \"arguments\": {}}</tool_call>");
}

TEST(ToolCallParser, JsonValueEnd) {
  EXPECT_EQ(json_value_end("{\"a\": \"}\\\"\"} tail"), 12u);
  EXPECT_EQ(json_value_end("[1, [2], {\"x\": []}]x"), 19u);
  EXPECT_EQ(json_value_end("{\"a\": 1"), std::string_view::npos);
  EXPECT_EQ(json_value_end("x"), std::string_view::npos);
}

}  // namespace
}  // namespace tern
