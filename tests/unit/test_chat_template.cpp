// Chat-template interpreter: one test per construct family, plus error messages.
#include <gtest/gtest.h>

#include "text/chat_template/chat_template.h"

namespace tern {
namespace {

std::string render(const std::string& src, const nlohmann::json& ctx = nlohmann::json::object()) {
  auto t = ChatTemplate::parse(src);
  EXPECT_TRUE(t.is_ok()) << t.status().message();
  if (!t.is_ok()) return "<parse error>";
  auto r = t->render(ctx);
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  return r.is_ok() ? r.value() : "<render error>";
}

TEST(ChatTemplate, TextAndOutput) {
  EXPECT_EQ(render("a{{ 1 + 2 }}b{{ 'x' ~ 3 }}"), "a3bx3");
  EXPECT_EQ(render("{{ undefined_var }}|{{ none }}|{{ true }}"), "|None|True");
}

TEST(ChatTemplate, WhitespaceControl) {
  EXPECT_EQ(render("a  {{- 'b' -}}  c"), "abc");
  EXPECT_EQ(render("{% if true %}\nx\n{% endif %}\n"), "x\n");           // trim_blocks + no trailing newline
  EXPECT_EQ(render("  {% if true %}y{% endif %}"), "y");                 // lstrip_blocks
  EXPECT_EQ(render("a{# comment #}b"), "ab");
}

TEST(ChatTemplate, ForLoop) {
  nlohmann::json ctx = {{"xs", {"a", "b", "c"}}, {"d", {{"k1", 1}, {"k2", 2}}}};
  EXPECT_EQ(render("{% for x in xs %}{{ loop.index }}{{ x }}{% if loop.last %}!{% endif %}{% endfor %}", ctx),
            "1a2b3c!");
  EXPECT_EQ(render("{% for x in xs if x != 'b' %}{{ loop.index0 }}{{ loop.length }}{% endfor %}", ctx), "0212");
  EXPECT_EQ(render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", ctx), "k1=1;k2=2;");
  EXPECT_EQ(render("{% for x in [] %}a{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for x in xs[::-1] %}{{ x }}{{ loop.revindex }}{% endfor %}", ctx), "c3b2a1");
}

TEST(ChatTemplate, SetNamespaceMacro) {
  EXPECT_EQ(render("{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}"),
            "3");
  EXPECT_EQ(render("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}"), "1");
  EXPECT_EQ(render("{% set b %}in{{ 1 }}{% endset %}{{ b }}"), "in1");
  EXPECT_EQ(render("{% macro m(a, b='d') %}{{ a }}-{{ b }}{% endmacro %}{{ m(1) }},{{ m(1, b=2) }}"), "1-d,1-2");
  EXPECT_EQ(render("{% macro w() %}[{{ caller() }}]{% endmacro %}{% call w() %}x{% endcall %}"), "[x]");
}

TEST(ChatTemplate, FiltersAndTests) {
  EXPECT_EQ(render("{{ '  a ' | trim }}|{{ 'ab' | upper }}|{{ [1,2] | length }}|{{ x | default('d') }}"), "a|AB|2|d");
  EXPECT_EQ(render("{{ {'a': [1, 'x']} | tojson }}"), "{\"a\": [1, \"x\"]}");
  EXPECT_EQ(render("{{ {'a': 1} | tojson(indent=2) }}"), "{\n  \"a\": 1\n}");
  EXPECT_EQ(render("{{ [{'n': 'a'}, {'n': 'b'}] | map(attribute='n') | join(',') }}"), "a,b");
  EXPECT_EQ(render("{{ [3,1,2] | sort | list }}|{{ [1,1,2] | unique | list }}"), "[1, 2, 3]|[1, 2]");
  EXPECT_EQ(render("{{ x is defined }}{{ none is none }}{{ 'a' is string }}{{ 3 is odd }}{{ 1 is not even }}"),
            "FalseTrueTrueTrueTrue");
}

TEST(ChatTemplate, StringMethods) {
  EXPECT_EQ(render("{{ 'a</t>b'.split('</t>')[-1] }}|{{ '\\nx\\n'.strip('\\n') }}|{{ 'abc'.startswith('ab') }}"),
            "b|x|True");
  EXPECT_EQ(render("{{ {'a': 1}.get('b', 5) }}|{{ 'hello world'.title() }}"), "5|Hello World");
}

TEST(ChatTemplate, Errors) {
  auto t = ChatTemplate::parse("ok\n{% include 'x' %}");
  ASSERT_FALSE(t.is_ok());
  EXPECT_NE(t.status().message().find("include"), std::string::npos) << t.status().message();
  EXPECT_NE(t.status().message().find("line 2"), std::string::npos) << t.status().message();
  auto f = ChatTemplate::parse("{{ x | frobnicate }}");
  ASSERT_FALSE(f.is_ok());
  EXPECT_NE(f.status().message().find("frobnicate"), std::string::npos);
  auto r = ChatTemplate::parse("{{ raise_exception('bad role') }}");
  ASSERT_TRUE(r.is_ok());
  auto out = r->render(nlohmann::json::object());
  ASSERT_FALSE(out.is_ok());
  EXPECT_NE(out.status().message().find("bad role"), std::string::npos);
  EXPECT_FALSE(ChatTemplate::parse("{% if x %}").is_ok());
}

// Objects reach the template in the order the client wrote their keys (Python dicts keep insertion
// order: transformers renders a tool's JSON schema as given), not sorted.
TEST(ChatTemplate, ObjectsKeepInsertionOrder) {
  const auto ctx = nlohmann::ordered_json::parse(R"({"tool": {"name": "f", "description": "d", "parameters": {"zeta": 1, "alpha": 2}}})");
  auto t = ChatTemplate::parse("{{ tool | tojson }}|{% for k in tool.parameters %}{{ k }} {% endfor %}", "test");
  ASSERT_TRUE(t.is_ok());
  auto r = t->render(ctx);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r.value(), R"({"name": "f", "description": "d", "parameters": {"zeta": 1, "alpha": 2}}|zeta alpha )");
}

}  // namespace
}  // namespace tern
