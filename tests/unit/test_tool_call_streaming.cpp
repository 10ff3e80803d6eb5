// Tool-call arguments streamed as they are generated (ChatParserOptions::stream_arguments, used where a
// grammar fixes the call's shape): the first piece of each call carries its index, id and name, the
// next ones arguments text; the pieces concatenate to the arguments the model wrote, whatever the
// chunking; pieces go out before the call is complete; the completed call keeps the streamed id.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "text/tool_calls/chat_output_parser.h"

namespace tern {
namespace {

using json = nlohmann::json;

struct Streamed {
  std::map<int, std::string> id, name, args;  // by index
  std::vector<ToolCall> calls;                // complete calls
  std::string content;
  int pieces_before_last_feed = 0;            // argument pieces that came before the last chunk
};

ChatParserOptions stream_opts(ToolCallFormat f) {
  ChatParserOptions o;
  o.format = f;
  o.tool_names = {"get_weather", "add"};
  o.id_seed = 7;
  o.stream_arguments = true;
  return o;
}

Streamed run(const ChatParserOptions& o, const std::string& text, size_t step) {
  ChatOutputParser p(o);
  Streamed s;
  auto take = [&](const ChatDelta& d, bool last) {
    s.content += d.content;
    for (const ToolCallPart& part : d.call_parts) {
      if (!part.id.empty()) {
        EXPECT_EQ(s.id.count(part.index), 0u) << "a second first piece for call " << part.index;
        EXPECT_TRUE(part.arguments.empty());
        s.id[part.index] = part.id;
        s.name[part.index] = part.name;
      } else {
        EXPECT_EQ(s.id.count(part.index), 1u) << "arguments before the first piece of call " << part.index;
        s.args[part.index] += part.arguments;
        if (!last) s.pieces_before_last_feed++;
      }
    }
    s.calls.insert(s.calls.end(), d.calls.begin(), d.calls.end());
  };
  for (size_t i = 0; i < text.size(); i += step) {
    take(p.feed(std::string_view(text).substr(i, step)), i + step >= text.size());
  }
  take(p.finish(), true);
  return s;
}

// Every chunking gives the same calls; each complete call equals its streamed pieces.
void expect_streams(const ChatParserOptions& o, const std::string& text, const std::vector<std::pair<std::string, json>>& want) {
  for (size_t step : {1, 2, 3, 7, 64, 100000}) {
    SCOPED_TRACE("step " + std::to_string(step));
    const Streamed s = run(o, text, step);
    ASSERT_EQ(s.calls.size(), want.size());
    ASSERT_EQ(s.id.size(), want.size());
    for (size_t k = 0; k < want.size(); ++k) {
      const int i = int(k);
      EXPECT_EQ(s.name.at(i), want[k].first);
      EXPECT_EQ(json::parse(s.args.at(i)), want[k].second) << s.args.at(i);
      EXPECT_EQ(s.calls[k].id, s.id.at(i));
      EXPECT_TRUE(s.calls[k].streamed);
      EXPECT_EQ(json::parse(s.calls[k].arguments), want[k].second);
    }
    if (step < 8) EXPECT_GT(s.pieces_before_last_feed, 0) << "arguments only came at the end";
    EXPECT_EQ(s.content.find("{"), std::string::npos) << s.content;
  }
}

TEST(ToolCallStreaming, HermesCallsStreamTheirArgumentsAsGenerated) {
  const std::string text =
      "Let me check.<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": [1, 2]}}\n"
      "</tool_call>\n<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": {\"c\": \"}\\\"{\"}}}\n</tool_call>";
  expect_streams(stream_opts(ToolCallFormat::kHermes), text,
                 {{"get_weather", {{"city", "Paris"}, {"days", {1, 2}}}}, {"add", {{"a", 1}, {"b", {{"c", "}\"{"}}}}}});
  EXPECT_EQ(run(stream_opts(ToolCallFormat::kHermes), text, 3).content, "Let me check.");
}

TEST(ToolCallStreaming, Llama3CallsJoinedBySemicolonsGetIndicesInOrder) {
  const std::string text = "{\"name\": \"add\", \"parameters\": {\"a\": 2}}; {\"name\": \"get_weather\", \"parameters\": {}}";
  expect_streams(stream_opts(ToolCallFormat::kLlama3), text, {{"add", {{"a", 2}}}, {"get_weather", json::object()}});
}

TEST(ToolCallStreaming, ForcedNamedAndRequiredStreamToo) {
  ChatParserOptions named = stream_opts(ToolCallFormat::kNone);
  named.forced = ChatParserOptions::Forced::kNamed;
  named.forced_name = "get_weather";
  expect_streams(named, "{\"city\": \"Oslo\", \"note\": \"[x]\"}", {{"get_weather", {{"city", "Oslo"}, {"note", "[x]"}}}});

  ChatParserOptions required = stream_opts(ToolCallFormat::kNone);
  required.forced = ChatParserOptions::Forced::kRequired;
  expect_streams(required, "[{\"name\": \"add\", \"parameters\": {\"a\": 1}}, {\"name\": \"get_weather\", \"parameters\": {\"city\": \"Rome\"}}]",
                 {{"add", {{"a", 1}}}, {"get_weather", {{"city", "Rome"}}}});
}

TEST(ToolCallStreaming, MistralArraysAndNameArgsCallsStreamToo) {
  // v0.3: one [TOOL_CALLS] then a JSON array (the template's optional "id" after the arguments).
  const std::string v3 =
      "On it. [TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, \"id\": \"abcDEF123\"}, "
      "{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": \"]}\"}}]";
  expect_streams(stream_opts(ToolCallFormat::kMistral), v3,
                 {{"get_weather", {{"city", "Paris"}}}, {"add", {{"a", 1}, {"b", "]}"}}}});
  EXPECT_EQ(run(stream_opts(ToolCallFormat::kMistral), v3, 5).content, "On it. ");
  // v11: [TOOL_CALLS]name[ARGS]{...} per call.
  const std::string v11 = "[TOOL_CALLS]add[ARGS]{\"a\": 7}[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Oslo\"}";
  expect_streams(stream_opts(ToolCallFormat::kMistral), v11, {{"add", {{"a", 7}}}, {"get_weather", {{"city", "Oslo"}}}});
  // Indices go on across two arrays (a model that writes [TOOL_CALLS] twice).
  const std::string twice = "[TOOL_CALLS][{\"name\": \"add\", \"arguments\": {\"a\": 1}}][TOOL_CALLS][{\"name\": \"add\", "
                            "\"arguments\": {\"a\": 2}}, {\"name\": \"add\", \"arguments\": {\"a\": 3}}]";
  expect_streams(stream_opts(ToolCallFormat::kMistral), twice, {{"add", {{"a", 1}}}, {"add", {{"a", 2}}}, {"add", {{"a", 3}}}});
}

TEST(ToolCallStreaming, AMistralCallCutOffStaysPartial) {
  ChatOutputParser p(stream_opts(ToolCallFormat::kMistral));
  ChatDelta a = p.feed("[TOOL_CALLS] [{\"name\": \"add\", \"arguments\": {\"a\": 12");
  ASSERT_EQ(a.call_parts.size(), 2u);
  EXPECT_EQ(a.call_parts[0].name, "add");
  EXPECT_EQ(a.call_parts[1].arguments, "{\"a\": 12");
  ChatDelta end = p.finish();
  EXPECT_TRUE(end.content.empty()) << end.content;
  EXPECT_TRUE(p.calls().empty());
}

TEST(ToolCallStreaming, APieceNeverEndsInsideAUtf8Character) {
  ChatParserOptions named = stream_opts(ToolCallFormat::kNone);
  named.forced = ChatParserOptions::Forced::kNamed;
  named.forced_name = "get_weather";
  ChatOutputParser p(named);
  ChatDelta a = p.feed("{\"city\": \"M\xC3");
  ASSERT_EQ(a.call_parts.size(), 2u);
  EXPECT_EQ(a.call_parts[1].arguments, "{\"city\": \"M");  // the lead byte waits for its continuation
  ChatDelta b = p.feed("\xBCnchen\"}");
  ASSERT_EQ(b.call_parts.size(), 1u);
  EXPECT_EQ(b.call_parts[0].arguments, "\xC3\xBCnchen\"}");
}

TEST(ToolCallStreaming, ACallCutOffStaysThePartialCallTheClientSaw) {
  ChatOutputParser p(stream_opts(ToolCallFormat::kHermes));
  ChatDelta a = p.feed("<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 12");
  ASSERT_EQ(a.call_parts.size(), 2u);
  ChatDelta end = p.finish();  // max_tokens
  EXPECT_TRUE(end.content.empty()) << end.content;  // not repeated as text
  EXPECT_TRUE(end.calls.empty());
  EXPECT_TRUE(p.calls().empty());
}

TEST(ToolCallStreaming, WithoutTheOptionCallsComeWhole) {
  ChatParserOptions o = stream_opts(ToolCallFormat::kHermes);
  o.stream_arguments = false;
  ChatOutputParser p(o);
  ChatDelta a = p.feed("<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1");
  EXPECT_TRUE(a.call_parts.empty());
  ChatDelta b = p.feed("}}\n</tool_call>");
  ASSERT_EQ(b.calls.size(), 1u);
  EXPECT_FALSE(b.calls[0].streamed);
  EXPECT_TRUE(b.call_parts.empty());
}

TEST(ToolCallStreaming, ScanFindsNameAndArgumentsAsFarAsTheTextGoes) {
  CallScan c = scan_call(" {\"name\": \"a\\\"b\", \"arguments\": {\"x\": \"}\"");
  EXPECT_FALSE(c.bad);
  EXPECT_EQ(c.name, "a\"b");
  EXPECT_EQ(c.args_begin, 31u);
  EXPECT_EQ(c.args_end, CallScan::npos);
  c = scan_call("{\"arguments\": {}, \"name\": \"a\"}");  // arguments first: cannot stream name-first
  EXPECT_TRUE(c.bad);
  c = scan_call("{\"name\": \"a\", \"arguments\": {}, \"id\": \"x1\"}");  // Mistral v3's id
  EXPECT_FALSE(c.bad);
  EXPECT_EQ(c.end, 42u);
  c = scan_call("{\"name\": \"a\", \"arguments\": {}}");
  EXPECT_EQ(c.args_end, 29u);
  EXPECT_EQ(c.end, 30u);
  EXPECT_EQ(utf8_complete_prefix("ab\xE2\x82"), 2u);
  EXPECT_EQ(utf8_complete_prefix("ab\xE2\x82\xAC"), 5u);
}

}  // namespace
}  // namespace tern
