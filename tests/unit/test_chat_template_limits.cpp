// Chat templates are untrusted input (they come with downloaded models): every way to recurse, loop or build
// without end stops at a ChatTemplateLimits bound with an error naming it (issue 14 item 12). The deep cases run on
// a thread with a small stack, so a bound that let the interpreter recurse too far fails here as a crash.
#include <gtest/gtest.h>
#include <pthread.h>

#include <functional>
#include <string>

#include "text/chat_template/chat_template.h"
#include "test_support.h"

namespace tern {
namespace {

// Runs fn on a thread with a 2 MiB stack (a quarter of the usual 8 MiB main-thread stack).
void on_small_stack(const std::function<void()>& fn) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, size_t(2) << 20);
  pthread_t t;
  auto* arg = new std::function<void()>(fn);
  ASSERT_EQ(pthread_create(
                &t, &attr,
                [](void* p) -> void* {
                  auto* f = static_cast<std::function<void()>*>(p);
                  (*f)();
                  delete f;
                  return nullptr;
                },
                arg),
            0);
  pthread_join(t, nullptr);
  pthread_attr_destroy(&attr);
}

// The error of parsing, or else of rendering, `src` (on the small stack); "" if both succeed.
// The count bounds under test, without the wall-clock backstop: on a loaded machine (CI at load 10+) a
// render may pass 10 s before it reaches the bound a case expects, and would then fail with the other error.
ChatTemplateLimits counts_only(ChatTemplateLimits limits) {
  limits.max_seconds = 0;
  return limits;
}

std::string error_of(const std::string& src, const nlohmann::ordered_json& ctx = nlohmann::ordered_json::object(),
                     const ChatTemplateLimits& given = {}) {
  std::string err;
  const ChatTemplateLimits limits = given.max_seconds == ChatTemplateLimits{}.max_seconds ? counts_only(given) : given;
  on_small_stack([&] {
    auto t = ChatTemplate::parse(src, "t", limits);
    if (!t.is_ok()) {
      err = t.status().message();
      return;
    }
    auto r = t->render(ctx);
    if (!r.is_ok()) err = r.status().message();
  });
  return err;
}

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int k = 0; k < n; ++k) out += s;
  return out;
}

TEST(ChatTemplateLimits, RecursiveMacroStopsAtTheCallDepth) {
  const std::string err = error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  EXPECT_NE(err.find("template limit: macro calls nested deeper than 64"), std::string::npos) << err;
  // Two macros calling each other, each call deep in nested blocks: the frame bound holds first.
  const std::string nested = repeat("{% if true %}", 150) + "{{ g() }}" + repeat("{% endif %}", 150);
  const std::string err2 = error_of("{% macro f() %}" + nested + "{% endmacro %}{% macro g() %}{{ f() }}{% endmacro %}"
                                    "{{ f() }}");
  EXPECT_NE(err2.find("template limit: evaluation nested deeper than 1000 frames"), std::string::npos) << err2;
}

TEST(ChatTemplateLimits, DeepNestingIsAParseError) {
  const std::string ifs = repeat("{% if true %}", 20000) + "x" + repeat("{% endif %}", 20000);
  EXPECT_NE(error_of(ifs).find("template limit: nesting deeper than 200"), std::string::npos);
  EXPECT_NE(error_of("{{ " + repeat("(", 100000) + "1" + repeat(")", 100000) + " }}").find("nesting deeper"),
            std::string::npos);
  EXPECT_NE(error_of("{{ " + repeat("[", 100000) + repeat("]", 100000) + " }}").find("nesting deeper"),
            std::string::npos);
  EXPECT_NE(error_of("{{ " + repeat("not ", 100000) + "x }}").find("nesting deeper"), std::string::npos);
  EXPECT_NE(error_of("{{ " + repeat("- ", 100000) + "1 }}").find("nesting deeper"), std::string::npos);
  // Operator chains build a deep tree without recursing in the parser: bounded the same way.
  EXPECT_NE(error_of("{{ 1" + repeat(" + 1", 100000) + " }}").find("nesting deeper"), std::string::npos);
  EXPECT_NE(error_of("{{ x" + repeat(".a", 100000) + " }}").find("nesting deeper"), std::string::npos);
  EXPECT_NE(error_of("{{ x" + repeat("|trim", 100000) + " }}").find("nesting deeper"), std::string::npos);
  // Chains inside brackets inside chains: the tree depth is what counts, not each part's.
  std::string e = "1";
  for (int k = 0; k < 150; ++k) e = "(" + e + repeat(" ~ 1", 150) + ")";
  EXPECT_NE(error_of("{{ " + e + " }}").find("nesting deeper"), std::string::npos);
  // Deep but within the bound: fine.
  EXPECT_EQ(error_of(repeat("{% if true %}", 150) + "x" + repeat("{% endif %}", 150)), "");
}

TEST(ChatTemplateLimits, HugeStringsRangesAndLoops) {
  EXPECT_NE(error_of("{{ 'x' * 1000000000 }}").find("template limit: a string of 1000000000 bytes exceeds 16 MiB"),
            std::string::npos);
  EXPECT_NE(error_of("{{ range(10**9) | length }}").find("template limit: range() of 1000000000 items exceeds 100000"),
            std::string::npos);
  EXPECT_NE(error_of("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}")
                .find("template limit: more than 1000000 loop iterations"),
            std::string::npos);
  EXPECT_NE(error_of("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}")
                .find("template limit: the rendered prompt exceeds 16 MiB"),
            std::string::npos);
  // Doubling a list (each copy counted) or a string ends at a bound, not at the machine's memory.
  EXPECT_NE(error_of("{% set ns = namespace(l=['" + std::string(1000, 'x') +
                     "']) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}")
                .find("template limit:"),
            std::string::npos);
  EXPECT_NE(error_of("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
                     "{% endfor %}")
                .find("template limit: a string of"),
            std::string::npos);
  EXPECT_NE(error_of("{{ ('x' * 1000) | replace('x', 'y' * 100000) }}").find("template limit: a string of"),
            std::string::npos);
  EXPECT_NE(error_of("{{ 'a\nb' | indent(10**12) }}").find("template limit"), std::string::npos);
  EXPECT_NE(error_of("{{ [1] | tojson(indent=10**12) }}").find("template limit"), std::string::npos);
}

TEST(ChatTemplateLimits, SharedAndCyclicValues) {
  // A namespace that holds itself: printing it stops at the value depth.
  EXPECT_NE(error_of("{% set ns = namespace(a=1) %}{% set ns.a = [ns] %}{{ ns }}")
                .find("template limit: lists / dicts nested deeper than 200"),
            std::string::npos);
  EXPECT_NE(error_of("{% set ns = namespace(a=1) %}{% set ns.a = [ns] %}{{ ns | tojson }}").find("nested deeper"),
            std::string::npos);
  EXPECT_NE(error_of("{% set a = namespace(x=1) %}{% set b = namespace(x=1) %}{% set a.x = [a] %}"
                     "{% set b.x = [b] %}{{ a == b }}")
                .find("nested deeper"),
            std::string::npos);
  // 2^60 leaves through 60 shared levels: walks are bounded, not exponential.
  const std::string dag = "{% set ns = namespace(x='ab', y='ab') %}{% for i in range(60) %}"
                          "{% set ns.x = [ns.x, ns.x] %}{% set ns.y = [ns.y, ns.y] %}{% endfor %}";
  EXPECT_NE(error_of(dag + "{{ ns.x | tojson }}").find("template limit: a string of"), std::string::npos);
  EXPECT_NE(error_of(dag + "{{ ns.x }}").find("template limit: a string of"), std::string::npos);
  ChatTemplateLimits fewer_steps;
  fewer_steps.max_steps = 1000000;
  EXPECT_NE(error_of(dag + "{{ ns.x == ns.y }}", nlohmann::ordered_json::object(), fewer_steps)
                .find("template limit: more than 1000000 evaluation steps"),
            std::string::npos);
  // A list nested 100,000 deep is built within the bounds and then released without recursion.
  ChatTemplateLimits many;
  many.max_loop_iterations = 200000;
  EXPECT_EQ(error_of("{% set ns = namespace(x=none) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}"
                     "{% endfor %}ok",
                     nlohmann::ordered_json::object(), many),
            "");
}

TEST(ChatTemplateLimits, DeepContextIsAnError) {
  nlohmann::ordered_json deep = nlohmann::ordered_json::array();
  for (int k = 0; k < 100000; ++k) deep = nlohmann::ordered_json::array({std::move(deep)});
  const std::string err = error_of("{{ messages | length }}", {{"messages", deep}});
  EXPECT_NE(err.find("template limit: lists / dicts nested deeper than 200"), std::string::npos) << err;
}

TEST(ChatTemplateLimits, IntegerEdgesAreErrorsNotTraps) {
  EXPECT_NE(error_of("{{ 9223372036854775807 + 1 }}").find("integer overflow in +"), std::string::npos);
  EXPECT_NE(error_of("{{ 2 ** 64 }}").find("integer overflow in **"), std::string::npos);
  EXPECT_NE(error_of("{{ -(-9223372036854775807 - 1) }}").find("integer overflow"), std::string::npos);
  EXPECT_NE(error_of("{{ (-9223372036854775807 - 1) // -1 }}").find("integer overflow"), std::string::npos);
  EXPECT_NE(error_of("{{ 99999999999999999999 }}").find("does not fit in 64 bits"), std::string::npos);
  EXPECT_EQ(error_of("{{ (-9223372036854775807 - 1) % -1 }}{{ (-9223372036854775807 - 1) is divisibleby(-1) }}"),
            "");
  EXPECT_EQ(error_of("{{ range(9223372036854775800, 9223372036854775807, 3) | list }}"), "");
  EXPECT_EQ(error_of("{{ 'abc'[::-9223372036854775807 - 1] }}{{ [1, 2][-9223372036854775807 - 1:] }}"), "");
}

TEST(ChatTemplateLimits, StepsAndClock) {
  ChatTemplateLimits few;
  few.max_steps = 1000;
  EXPECT_NE(error_of("{% for i in range(10000) %}{% endfor %}", nlohmann::ordered_json::object(), few)
                .find("template limit: more than 1000 evaluation steps"),
            std::string::npos);
  // The clock is read every 4096 steps; a 1 ns budget is over by then however fast the machine.
  ChatTemplateLimits instant;
  instant.max_seconds = 1e-9;
  EXPECT_NE(error_of("{% for i in range(10000) %}{% endfor %}", nlohmann::ordered_json::object(), instant)
                .find("template limit: rendering took longer than 1e-09 s"),
            std::string::npos);
}

TEST(ChatTemplateLimits, CallerAfterItsBlockIsAnError) {
  const std::string err = error_of("{% set ns = namespace() %}{% macro m() %}{% set ns.c = caller %}{% endmacro %}"
                                   "{% call m() %}x{% endcall %}{{ ns.c() }}");
  EXPECT_NE(err.find("caller() called after its {% call %} block ended"), std::string::npos) << err;
}

TEST(ChatTemplateLimits, NamedTemplateListWithAStrayNameIsAnError) {
  // entry.value("name", "") threw json::type_error out of the loader for a non-string name.
  test::TempDir dir;
  test::write_file(dir.file("tokenizer_config.json"),
                   R"({"chat_template": [{"name": 5, "template": "x"}, {"name": "default", "template": 7}]})");
  auto t = load_chat_template(dir.path());
  ASSERT_FALSE(t.is_ok());
  EXPECT_NE(t.status().message().find("no \"default\" entry"), std::string::npos) << t.status().message();
}

TEST(ChatTemplateLimits, LongBlankRunBeforeATag) {
  // std::regex recursed once per blank here and overflowed the stack (SIGSEGV at ~100k blanks).
  std::string err;
  std::string out;
  on_small_stack([&] {
    auto t = ChatTemplate::parse("a\n" + std::string(300000, ' ') + "{% if true %}x{% endif %}");
    if (!t.is_ok()) {
      err = t.status().message();
      return;
    }
    auto r = t->render(nlohmann::ordered_json::object());
    if (r.is_ok()) out = *r;
  });
  EXPECT_EQ(err, "");
  EXPECT_EQ(out, "a\nx");
}

}  // namespace
}  // namespace tern
