// tool_choice "auto" in the Hermes format (constraint_request.cpp): free text that never spells
// "<tool_call>", then calls in the template's exact format whose arguments follow their tool's schema;
// in the Llama 3.1 JSON format: text that does not open with "{", or calls. Checked byte by byte on a
// one-byte-per-token vocabulary, and against the reply parser (what the grammar admits, it reads so).
#include <gtest/gtest.h>

#include "api/constraint_request.h"
#include "constrain/token_constraint.h"
#include "test_support.h"
#include "text/tokenizer/tokenizer.h"
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

bool test_mask_has(TokenConstraint& c, int32_t t) {
  std::vector<uint32_t> mask(size_t(c.mask_words()));
  c.allowed(mask.data());
  return mask[size_t(t) >> 5] >> (t & 31) & 1;
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

// ---- Mistral: [TOOL_CALLS] (and v11's [ARGS]) are special tokens: token terminals of the grammar.
// Test strings write the [TOOL_CALLS] token as \xFF and [ARGS] as \xFE (bytes no UTF-8 text holds).
constexpr int32_t kToolCallsId = 256, kArgsId = 257;
const std::string TC = "\xFF", ARGS = "\xFE";

TokenVocabulary mistral_vocab(bool specials = true) {
  std::vector<std::string> bytes;
  for (int b = 0; b < 256; ++b) bytes.emplace_back(1, char(b));
  bytes.push_back("");
  bytes.push_back("");
  std::vector<std::pair<int32_t, std::string>> sp;
  if (specials) sp = {{kToolCallsId, "[TOOL_CALLS]"}, {kArgsId, "[ARGS]"}};
  auto v = TokenVocabulary::from_bytes(bytes, sp);
  EXPECT_TRUE(v.is_ok());
  return *v;
}

std::shared_ptr<const Grammar> compile_mistral(const ToolFields& tf, bool name_args, const TokenVocabulary& v) {
  auto text = mistral_auto_gbnf(tf, [](const json& s) { return json_schema_to_gbnf(s); }, v, name_args);
  EXPECT_TRUE(text.is_ok()) << text.status().message();
  auto g = compile_gbnf(text.value(), v);
  EXPECT_TRUE(g.is_ok()) << g.status().message() << "\n" << text.value();
  return g.is_ok() ? g.value() : nullptr;
}

// As run(), with \xFF / \xFE fed as the [TOOL_CALLS] / [ARGS] tokens.
int run_mistral(const std::shared_ptr<const Grammar>& g, const std::string& s) {
  TokenConstraint c(g);
  for (unsigned char b : s) {
    const int32_t t = b == 0xFF ? kToolCallsId : b == 0xFE ? kArgsId : int32_t(b);
    if (!c.accept(t).is_ok()) return -1;
  }
  return c.can_end() ? 1 : 0;
}

// The reply as the parser sees it (special tokens decoded to their text): calls (name + arguments) and content.
std::pair<std::vector<std::string>, std::string> mistral_parse(const std::string& reply, bool parallel = true) {
  std::string text;
  for (char c : reply) text += c == '\xFF' ? "[TOOL_CALLS]" : c == '\xFE' ? "[ARGS]" : std::string(1, c);
  ChatParserOptions o;
  o.format = ToolCallFormat::kMistral;
  o.tool_names = {"get_weather", "add"};
  o.parallel = parallel;
  ChatOutputParser p(o);
  p.feed(text);
  p.finish();
  std::vector<std::string> calls;
  for (const ToolCall& c : p.calls()) calls.push_back(c.name + " " + c.arguments);
  return {calls, p.content()};
}

TEST(ToolCallGrammar, TextWithoutAMarkerIsExactlyTheTextThatNeverSpellsIt) {
  const std::string alphabet = "[TOL_CAS]x<tool_c>";
  auto v = mistral_vocab();
  for (const std::string marker : {"[TOOL_CALLS]", "<tool_call>", "ab"}) {
    auto g = compile_gbnf("root ::= " + text_without(marker), v);
    ASSERT_TRUE(g.is_ok()) << g.status().message();
    uint32_t seed = 5;
    for (int i = 0; i < 3000; ++i) {
      std::string s;
      // Strings built from pieces of the marker, so that near-misses and restarts are common.
      for (int k = 0; k < 6; ++k) {
        seed = seed * 1103515245u + 12345u;
        const size_t from = (seed >> 8) % marker.size(), len = 1 + (seed >> 16) % marker.size();
        s += (seed >> 24) % 4 == 0 ? std::string(1, alphabet[(seed >> 12) % alphabet.size()]) : marker.substr(from, len);
      }
      EXPECT_EQ(run(*g, s), s.find(marker) == std::string::npos ? 1 : -1) << marker << " / " << s;
    }
  }
}

TEST(ToolCallGrammar, MistralTextOrTheTokenThenCallsThatFollowTheirSchemas) {
  auto v = mistral_vocab();
  auto g = compile_mistral(weather_tools(true), false, v);
  ASSERT_TRUE(g);
  const std::string weather = R"({"name": "get_weather", "arguments": {"city": "Paris"}})";
  const std::string add = R"({"name": "add", "arguments": {"a": 12}, "id": "abcDEF123"})";
  // Text, with prefixes of the marker's spelling; the spelling itself is never text.
  EXPECT_EQ(run_mistral(g, "Hello [x] [TOOL [TOOL_CALLS [[TOOL_CALL"), 1);
  EXPECT_EQ(run_mistral(g, "Hi [TOOL_CALLS]"), -1);
  EXPECT_EQ(run_mistral(g, "[TOOL_CALLS] [" + weather + "]"), -1);
  // The token, then calls in the v0.3 template's format ("id" optional), read back by the parser.
  EXPECT_EQ(run_mistral(g, TC + " [" + weather + "]"), 1);
  EXPECT_EQ(run_mistral(g, TC + "[" + weather + ", " + add + "]"), 1);
  EXPECT_EQ(run_mistral(g, "Sure. " + TC + " [" + add + "]"), 1);
  EXPECT_EQ(mistral_parse(TC + "[" + weather + ", " + add + "]").first,
            (std::vector<std::string>{R"(get_weather {"city":"Paris"})", R"(add {"a":12})"}));
  EXPECT_EQ(mistral_parse("Sure. " + TC + " [" + add + "]").second, "Sure. ");
  EXPECT_EQ(run_mistral(g, TC + " [" + weather), 0);  // a call begun must be finished
  // Once the token is written, only well-formed calls of known tools may follow, and nothing after them.
  EXPECT_EQ(run_mistral(g, TC + " Sorry"), -1);
  EXPECT_EQ(run_mistral(g, TC + R"([{"name": "rm")"), -1);
  EXPECT_EQ(run_mistral(g, TC + R"([{"name": "get_weather", "arguments": {"city": "Rome")"), -1);
  EXPECT_EQ(run_mistral(g, TC + R"([{"name": "add", "arguments": {"a": 1}, "id": "short"}])"), -1);
  EXPECT_EQ(run_mistral(g, TC + "[" + weather + "] ok"), -1);
  EXPECT_EQ(run_mistral(g, TC + "[" + weather + "]" + TC), -1);
  EXPECT_EQ(run_mistral(g, TC + TC), -1);
}

TEST(ToolCallGrammar, MistralMasksAllowTheTokenOnlyWhereACallMayStart) {
  auto v = mistral_vocab();
  auto g = compile_mistral(weather_tools(true), false, v);
  ASSERT_TRUE(g);
  TokenConstraint c(g);
  EXPECT_TRUE(test_mask_has(c, kToolCallsId));
  EXPECT_FALSE(test_mask_has(c, kArgsId));
  for (char ch : std::string("Hi [TOOL_CALLS")) ASSERT_TRUE(c.accept(uint8_t(ch)).is_ok());
  EXPECT_FALSE(test_mask_has(c, ']'));  // the spelling never completes
  EXPECT_TRUE(test_mask_has(c, kToolCallsId));
  ASSERT_TRUE(c.accept(kToolCallsId).is_ok());
  EXPECT_FALSE(test_mask_has(c, kToolCallsId));
  EXPECT_TRUE(test_mask_has(c, '['));
  EXPECT_TRUE(test_mask_has(c, ' '));
  EXPECT_FALSE(test_mask_has(c, 'H'));
}

TEST(ToolCallGrammar, MistralOneCallWithoutParallelCalls) {
  auto v = mistral_vocab();
  auto g = compile_mistral(weather_tools(false), false, v);
  ASSERT_TRUE(g);
  EXPECT_EQ(run_mistral(g, TC + R"([{"name": "add", "arguments": {"a": 1}}])"), 1);
  EXPECT_EQ(run_mistral(g, TC + R"([{"name": "add", "arguments": {"a": 1}}, )"), -1);
}

TEST(ToolCallGrammar, MistralV11NameArgsForm) {
  auto v = mistral_vocab();
  auto g = compile_mistral(weather_tools(true), true, v);
  ASSERT_TRUE(g);
  const std::string weather = TC + "get_weather" + ARGS + R"({"city": "Oslo"})";
  const std::string add = TC + "add" + ARGS + R"({"a": 3})";
  EXPECT_EQ(run_mistral(g, weather), 1);
  EXPECT_EQ(run_mistral(g, "Let me look. " + weather + add), 1);
  EXPECT_EQ(mistral_parse(weather + add).first,
            (std::vector<std::string>{R"(get_weather {"city":"Oslo"})", R"(add {"a":3})"}));
  EXPECT_EQ(run_mistral(g, TC + "get_weather[ARGS]{}"), -1);  // [ARGS] is the token, not its spelling
  EXPECT_EQ(run_mistral(g, TC + "rm" + ARGS), -1);
  EXPECT_EQ(run_mistral(g, weather + " done"), -1);
  auto one = compile_mistral(weather_tools(false), true, v);
  ASSERT_TRUE(one);
  EXPECT_EQ(run_mistral(one, weather), 1);
  EXPECT_EQ(run_mistral(one, weather + TC), -1);
}

TEST(ToolCallGrammar, MistralWithoutSpecialTokensUsesTheText) {
  auto v = mistral_vocab(/*specials=*/false);
  auto g = compile_mistral(weather_tools(true), true, v);
  ASSERT_TRUE(g);
  EXPECT_EQ(run(g, R"(Hm. [TOOL_CALLS]add[ARGS]{"a": 1})"), 1);
  EXPECT_EQ(run(g, R"([TOOL_CALLS]add{"a": 1})"), -1);
  EXPECT_EQ(run(g, "[TOOL_CALLS]"), 0);
}

// On a real BPE vocabulary (docs-llama-28m, 8192 tokens, with a special token renamed [TOOL_CALLS]) free text has
// pop points at ~every trie node, walked by the bytes its caller takes (none for Mistral: the special token; '<'
// for Hermes, through the by-byte index): every step's mask equals brute force over the tokens' spellings.
TEST(ToolCallGrammar, AutoGrammarMasksOnARealVocabularyMatchBruteForce) {
  auto tok = Tokenizer::load(test::model_dir("docs-llama-28m"));
  ASSERT_TRUE(tok.is_ok()) << tok.status().message();
  auto base = TokenVocabulary::from_tokenizer(*tok);
  ASSERT_TRUE(base.is_ok());
  std::vector<std::string> bytes(size_t(base->size()));
  for (int32_t id = 0; id < int32_t(base->size()); ++id) bytes[size_t(id)] = base->bytes(id);
  auto v = TokenVocabulary::from_bytes(bytes, {{4, "[TOOL_CALLS]"}, {1, "</s>"}});
  ASSERT_TRUE(v.is_ok());
  auto schema_gbnf = [](const json& s) { return json_schema_to_gbnf(s); };
  const ToolFields tf = weather_tools(true);
  for (bool hermes : {true, false}) {
    auto text = hermes ? hermes_auto_gbnf(tf, schema_gbnf) : mistral_auto_gbnf(tf, schema_gbnf, *v, false);
    ASSERT_TRUE(text.is_ok());
    auto g = compile_gbnf(*text, *v);
    ASSERT_TRUE(g.is_ok()) << g.status().message();
    // Text with marker prefixes, then a call: the walk follows these tokens, checking every mask on the way.
    const std::string reply = hermes ? "Let me <b>see</b> <to<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 12}}\n</tool_call>"
                                     : "Let me [see] [TOOL_CALL x";
    std::vector<int32_t> ids = tok->encode(reply, false);
    if (!hermes) {
      ids.push_back(4);
      for (int32_t t : tok->encode(" [{\"name\": \"add\", \"arguments\": {\"a\": 12}}]", false)) ids.push_back(t);
    }
    TokenConstraint c(*g);
    std::vector<uint32_t> mask(size_t(c.mask_words()));
    for (size_t step = 0; step < ids.size(); ++step) {
      c.allowed(mask.data());
      for (int64_t t = 0; t < v->size(); ++t) {
        const std::string& sp = v->spelling(int32_t(t));
        ASSERT_EQ(bool(mask[size_t(t) >> 5] >> (t & 31) & 1), !sp.empty() && c.accepts_bytes(sp))
            << (hermes ? "hermes" : "mistral") << " step " << step << " token " << t << " '" << sp << "'";
      }
      ASSERT_TRUE(c.accept(ids[step]).is_ok()) << step;
    }
    EXPECT_TRUE(c.can_end());
  }
}

}  // namespace
}  // namespace tern::api
