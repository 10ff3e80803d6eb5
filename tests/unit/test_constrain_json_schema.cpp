// JSON Schema -> grammar: accepted and rejected documents, keyword errors, hostile schemas.
#include <gtest/gtest.h>

#include "constrain_test_util.h"

namespace tern {
namespace {

using nlohmann::json;
using test::byte_vocab;
using test::full_match;

std::shared_ptr<const Grammar> schema(const std::string& text, const TokenVocabulary& v) {
  auto g = compile_json_schema_text(text, v);  // keeps the schema's property order
  EXPECT_TRUE(g.is_ok()) << g.status().message() << "\n" << text;
  return g.is_ok() ? *g : nullptr;
}

std::string schema_error(const std::string& text, GrammarLimits l = {}) {
  auto g = compile_json_schema_text(text, byte_vocab(), l);
  EXPECT_FALSE(g.is_ok()) << text;
  return g.is_ok() ? "" : g.status().message();
}

TEST(ConstrainJsonSchema, ObjectWithRequiredAndOptionalProperties) {
  auto v = byte_vocab();
  auto g = schema(R"({"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},
      "tags":{"type":"array","items":{"type":"string"}}},"required":["name"],"additionalProperties":false})", v);
  EXPECT_TRUE(full_match(g, R"({"name":"Ann"})"));
  EXPECT_TRUE(full_match(g, R"({"name":"Ann","age":31,"tags":["a","b"]})"));
  EXPECT_TRUE(full_match(g, R"({"name":"Ann","tags":[]})"));
  EXPECT_TRUE(full_match(g, "{\n  \"name\": \"A\\\"n\\u00e9\",\n  \"age\": -3\n}"));
  EXPECT_FALSE(full_match(g, R"({"age":31})"));                 // name is required
  EXPECT_FALSE(full_match(g, R"({"name":"Ann","extra":1})"));   // no additional properties
  EXPECT_FALSE(full_match(g, R"({"name":"Ann","age":3.5})"));
  EXPECT_FALSE(full_match(g, R"({"name":"Ann",})"));
  EXPECT_FALSE(full_match(g, R"( {"name":"Ann"})"));            // no whitespace around the top-level value
}

TEST(ConstrainJsonSchema, GrammarMustEndAfterTheTopLevelValue) {
  auto v = byte_vocab();
  auto g = schema(R"({"type":"object","properties":{"a":{"type":"boolean"}},"required":["a"]})", v);
  TokenConstraint c(g);
  ASSERT_TRUE(test::feed(c, R"({"a":true})"));
  EXPECT_TRUE(c.must_end());
}

TEST(ConstrainJsonSchema, AllOptionalPropertiesInAnyCombination) {
  auto v = byte_vocab();
  auto g = schema(R"({"properties":{"a":{"type":"null"},"b":{"type":"null"},"c":{"type":"null"}}})", v);
  for (const char* ok : {"{}", R"({"a":null})", R"({"b":null})", R"({"a":null,"c":null})", R"({"a":null,"b":null,"c":null})"})
    EXPECT_TRUE(full_match(g, ok)) << ok;
  EXPECT_FALSE(full_match(g, R"({"b":null,"a":null})"));  // properties come in schema order
  EXPECT_FALSE(full_match(g, R"({,"a":null})"));
}

TEST(ConstrainJsonSchema, AdditionalPropertiesSchema) {
  auto v = byte_vocab();
  auto g = schema(R"({"type":"object","additionalProperties":{"type":"integer"}})", v);
  EXPECT_TRUE(full_match(g, R"({})"));
  EXPECT_TRUE(full_match(g, R"({"x":1,"y":2})"));
  EXPECT_FALSE(full_match(g, R"({"x":"1"})"));
}

TEST(ConstrainJsonSchema, TypesUnionsEnumConst) {
  auto v = byte_vocab();
  auto g = schema(R"({"type":["string","null"]})", v);
  EXPECT_TRUE(full_match(g, R"("x")"));
  EXPECT_TRUE(full_match(g, "null"));
  EXPECT_FALSE(full_match(g, "1"));
  auto e = schema(R"({"enum":["red","green",3,null,{"a":[1]}]})", v);
  EXPECT_TRUE(full_match(e, R"("green")"));
  EXPECT_TRUE(full_match(e, "3"));
  EXPECT_TRUE(full_match(e, R"({"a":[1]})"));
  EXPECT_FALSE(full_match(e, R"("blue")"));
  auto k = schema(R"({"const":"tool\"x"})", v);
  EXPECT_TRUE(full_match(k, R"("tool\"x")"));
}

TEST(ConstrainJsonSchema, ArraysWithBoundsAndPrefixItems) {
  auto v = byte_vocab();
  auto g = schema(R"({"type":"array","items":{"type":"integer"},"minItems":2,"maxItems":3})", v);
  EXPECT_FALSE(full_match(g, "[1]"));
  EXPECT_TRUE(full_match(g, "[1,2]"));
  EXPECT_TRUE(full_match(g, "[1, 2, 3]"));
  EXPECT_FALSE(full_match(g, "[1,2,3,4]"));
  auto p = schema(R"({"type":"array","prefixItems":[{"type":"string"},{"type":"boolean"}],"items":false})", v);
  EXPECT_TRUE(full_match(p, R"(["a",true])"));
  EXPECT_TRUE(full_match(p, R"(["a"])"));
  EXPECT_TRUE(full_match(p, R"([])"));
  EXPECT_FALSE(full_match(p, R"(["a",true,1])"));
  auto q = schema(R"({"type":"array","prefixItems":[{"type":"string"}],"items":{"type":"integer"},"minItems":2})", v);
  EXPECT_TRUE(full_match(q, R"(["a",1,2])"));
  EXPECT_FALSE(full_match(q, R"(["a"])"));
  EXPECT_FALSE(full_match(q, R"([1,2])"));
  auto z = schema(R"({"type":"array","maxItems":0})", v);
  EXPECT_TRUE(full_match(z, "[]"));
  EXPECT_FALSE(full_match(z, "[1]"));
}

TEST(ConstrainJsonSchema, StringLengthPatternAndFormat) {
  auto v = byte_vocab();
  auto g = schema(R"({"type":"string","minLength":2,"maxLength":3})", v);
  EXPECT_FALSE(full_match(g, R"("a")"));
  EXPECT_TRUE(full_match(g, R"("ab")"));
  EXPECT_TRUE(full_match(g, R"("a\nb")"));   // an escape is one character
  EXPECT_TRUE(full_match(g, "\"\xC3\xA9t\xC3\xA9\""));  // code points, not bytes
  EXPECT_FALSE(full_match(g, R"("abcd")"));
  auto p = schema(R"({"type":"string","pattern":"^[A-Z]{2}-\\d{3}$"})", v);
  EXPECT_TRUE(full_match(p, R"("AB-123")"));
  EXPECT_FALSE(full_match(p, R"("AB-12")"));
  auto q = schema(R"({"type":"string","pattern":"a\"b"})", v);  // a quote in the value is escaped in JSON
  EXPECT_TRUE(full_match(q, R"("a\"b")"));
  auto d = schema(R"({"type":"string","format":"date"})", v);
  EXPECT_TRUE(full_match(d, R"("2024-02-29")"));
  EXPECT_FALSE(full_match(d, R"("2024-13-01")"));
  auto u = schema(R"({"format":"uuid"})", v);
  EXPECT_TRUE(full_match(u, R"("123e4567-e89b-12d3-a456-426614174000")"));
}

TEST(ConstrainJsonSchema, IntegerBounds) {
  auto v = byte_vocab();
  auto g = schema(R"({"type":"integer","minimum":-15,"maximum":123})", v);
  for (int i = -30; i <= 200; ++i)
    EXPECT_EQ(full_match(g, std::to_string(i)), i >= -15 && i <= 123) << i;
  EXPECT_FALSE(full_match(g, "007"));
  EXPECT_FALSE(full_match(g, "-0"));
  auto e = schema(R"({"type":"integer","exclusiveMinimum":0})", v);
  EXPECT_FALSE(full_match(e, "0"));
  EXPECT_TRUE(full_match(e, "1"));
  EXPECT_TRUE(full_match(e, "9999"));
  EXPECT_FALSE(full_match(e, "-1"));
  auto n = schema(R"({"type":"integer","maximum":-10})", v);
  EXPECT_TRUE(full_match(n, "-10"));
  EXPECT_TRUE(full_match(n, "-12345"));
  EXPECT_FALSE(full_match(n, "-9"));
  EXPECT_FALSE(full_match(n, "5"));
  auto m = schema(R"({"type":"number","minimum":0})", v);
  EXPECT_TRUE(full_match(m, "0.5"));
  EXPECT_FALSE(full_match(m, "-0.5"));
}

TEST(ConstrainJsonSchema, NumberBounds) {
  auto v = byte_vocab();
  auto g = schema(R"({"type":"number","minimum":-2,"maximum":1})", v);
  for (const char* ok : {"0", "1", "1.000", "0.25", "-2", "-1.5", "-0.5", "-2.0"}) EXPECT_TRUE(full_match(g, ok)) << ok;
  for (const char* bad : {"1.01", "2", "-2.1", "-3", "1e0"}) EXPECT_FALSE(full_match(g, bad)) << bad;
  auto x = schema(R"({"type":"number","exclusiveMinimum":0,"exclusiveMaximum":10})", v);
  for (const char* ok : {"0.1", "9.99", "5"}) EXPECT_TRUE(full_match(x, ok)) << ok;
  for (const char* bad : {"0", "0.0", "10", "-1", "10.5"}) EXPECT_FALSE(full_match(x, bad)) << bad;
}

TEST(ConstrainJsonSchema, RefsDefsAndRecursion) {
  auto v = byte_vocab();
  auto g = schema(R"({"$defs":{"node":{"type":"object","properties":{"value":{"type":"integer"},
      "children":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["value"]}},
      "$ref":"#/$defs/node"})", v);
  EXPECT_TRUE(full_match(g, R"({"value":1})"));
  EXPECT_TRUE(full_match(g, R"({"value":1,"children":[{"value":2,"children":[{"value":3}]},{"value":4}]})"));
  EXPECT_FALSE(full_match(g, R"({"value":1,"children":[{}]})"));
  auto list = schema(R"({"type":"object","properties":{"v":{"type":"integer"},"next":{"anyOf":[{"$ref":"#"},{"type":"null"}]}},
      "required":["v","next"]})", v);
  EXPECT_TRUE(full_match(list, R"({"v":1,"next":{"v":2,"next":null}})"));
}

TEST(ConstrainJsonSchema, AnyOfOneOfAllOf) {
  auto v = byte_vocab();
  auto g = schema(R"({"anyOf":[{"type":"integer"},{"type":"object","properties":{"x":{"const":1}},"required":["x"]}]})", v);
  EXPECT_TRUE(full_match(g, "5"));
  EXPECT_TRUE(full_match(g, R"({"x":1})"));
  EXPECT_FALSE(full_match(g, R"({"x":2})"));
  auto o = schema(R"({"oneOf":[{"type":"boolean"}],"description":"d"})", v);
  EXPECT_TRUE(full_match(o, "false"));
  auto a = schema(R"({"allOf":[{"type":"boolean"}]})", v);
  EXPECT_TRUE(full_match(a, "true"));
}

TEST(ConstrainJsonSchema, EmptySchemaIsAnyJsonValue) {
  auto v = byte_vocab();
  auto g = schema("{}", v);
  EXPECT_TRUE(full_match(g, R"({"a":[1,2.5e3,"x",true,false,null,{}]})"));
  EXPECT_FALSE(full_match(g, R"({"a":})"));
  auto o = json_object_grammar(v);
  ASSERT_TRUE(o.is_ok());
  EXPECT_TRUE(full_match(*o, R"({"a":{"b":[]}})"));
  EXPECT_FALSE(full_match(*o, R"([1])"));
}

TEST(ConstrainJsonSchema, UnsupportedKeywordsAreErrorsThatNameThem) {
  EXPECT_NE(schema_error(R"({"type":"object","patternProperties":{"a":{}}})").find("'patternProperties'"), std::string::npos);
  EXPECT_NE(schema_error(R"({"not":{"type":"string"}})").find("'not'"), std::string::npos);
  EXPECT_NE(schema_error(R"({"properties":{"a":{"type":"number","multipleOf":2}}})").find("'multipleOf' at '/properties/a'"), std::string::npos);
  EXPECT_NE(schema_error(R"({"type":"string","format":"hostname"})").find("'format'"), std::string::npos);
  EXPECT_NE(schema_error(R"({"type":"number","maximum":2.5})").find("'maximum'"), std::string::npos);
  EXPECT_NE(schema_error(R"({"type":"array","uniqueItems":true})").find("'uniqueItems'"), std::string::npos);
  EXPECT_NE(schema_error(R"({"$ref":"http://x/y.json"})").find("local"), std::string::npos);
  EXPECT_NE(schema_error(R"({"$ref":"#/$defs/missing"})").find("not found"), std::string::npos);
  EXPECT_NE(schema_error(R"({"type":"strin"})").find("'strin'"), std::string::npos);
  EXPECT_NE(schema_error(R"({"type":"string","pattern":"(a)\\1"})").find("backreferences"), std::string::npos);
}

TEST(ConstrainJsonSchema, HostileSchemasFailCleanly) {
  // Recursion without a base case: a required self-reference.
  EXPECT_NE(schema_error(R"({"type":"object","properties":{"next":{"$ref":"#"}},"required":["next"]})").find("never finish"),
            std::string::npos);
  EXPECT_NE(schema_error(R"({"$ref":"#"})").find("never finish"), std::string::npos);
  EXPECT_NE(schema_error(R"({"type":"string","maxLength":100000000})").find("limit"), std::string::npos);
  std::string deep = R"({"type":"integer"})";
  for (int i = 0; i < 500; ++i) deep = R"({"type":"array","items":)" + deep + "}";
  EXPECT_NE(schema_error(deep).find("deeper"), std::string::npos);
  GrammarLimits small;
  small.max_states = 2000;
  EXPECT_NE(schema_error(R"({"type":"array","items":{"type":"string","maxLength":500},"minItems":50})", small).find("too large"),
            std::string::npos);
  EXPECT_NE(schema_error(R"({"type":"integer","minimum":5,"maximum":2})").find("no value"), std::string::npos);
  EXPECT_NE(schema_error("false").find("matches nothing"), std::string::npos);
}

TEST(ConstrainJsonSchema, ParsedJsonOverloadGeneratesKeysInSortedOrder) {
  auto v = byte_vocab();
  auto g = compile_json_schema(json::parse(R"({"properties":{"b":{"type":"null"},"a":{"type":"null"}},"required":["a","b"]})"), v);
  ASSERT_TRUE(g.is_ok());
  EXPECT_TRUE(full_match(*g, R"({"a":null,"b":null})"));  // nlohmann::json sorts keys
  EXPECT_FALSE(compile_json_schema_text("{\"type\":", v).is_ok());
}

TEST(ConstrainJsonSchema, CacheReturnsTheSameGrammar) {
  GrammarCache cache(byte_vocab(), 2);
  auto a = cache.json_schema(json::parse(R"({"type":"integer"})"));
  auto b = cache.json_schema(json::parse(R"({"type":"integer"})"));
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_EQ(a->get(), b->get());
  auto c = cache.gbnf(a.value()->canonical_text());
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(a->get(), c->get());
  EXPECT_FALSE(cache.regex("a(").is_ok());
}

}  // namespace
}  // namespace tern

namespace tern {
namespace {

TEST(ConstrainJsonSchema, GrammarsComposeUnderANewRoot) {
  auto v = test::byte_vocab();
  auto a = json_schema_text_to_gbnf(R"({"type":"object","properties":{"x":{"type":"integer"}},"required":["x"]})");
  ASSERT_TRUE(a.is_ok());
  auto ra = gbnf_prefix_rules(*a, "t0-");
  ASSERT_TRUE(ra.is_ok()) << ra.status().message();
  auto g = compile_gbnf("root ::= \"<tool_call>\" t0-root \"</tool_call>\"\n" + *ra, v);
  ASSERT_TRUE(g.is_ok()) << g.status().message();
  EXPECT_TRUE(test::full_match(*g, R"(<tool_call>{"x":5}</tool_call>)"));
  EXPECT_FALSE(test::full_match(*g, R"(<tool_call>{"y":5}</tool_call>)"));
  EXPECT_FALSE(gbnf_prefix_rules(*a, "bad prefix").is_ok());
}

}  // namespace
}  // namespace tern
