// The interpreter's own behaviour, case by case (the golden tests cover whole templates).
#include <gtest/gtest.h>

#include <string>

#include "model/tokenizer/chat/chat_template.h"
#include "model/tokenizer/chat/jinja_value.h"

namespace longbow {
namespace {

using ojson = nlohmann::ordered_json;

StatusOr<std::string> render(const std::string& source, ojson messages = ojson::array(), ojson kwargs = ojson::object()) {
  StatusOr<ChatTemplate> t = ChatTemplate::parse(source);
  if (!t.ok()) return t.status();
  ChatTemplateInput input;
  input.messages = std::move(messages);
  input.kwargs = std::move(kwargs);
  ChatTemplateTokens tokens;
  tokens.bos_token = "<s>";
  return t->render(input, tokens);
}

std::string ok(const std::string& source, ojson kwargs = ojson::object()) {
  StatusOr<std::string> out = render(source, ojson::array(), std::move(kwargs));
  EXPECT_TRUE(out.ok()) << source << ": " << out.status().to_string();
  return out.ok() ? *out : "";
}

TEST(JinjaTest, WhitespaceControl) {
  // trim_blocks drops the newline after a block tag; lstrip_blocks the indentation before it.
  EXPECT_EQ(ok("{% if true %}\n  a\n{% endif %}\nb"), "  a\nb");
  EXPECT_EQ(ok("x\n    {% if true %}\ny\n    {% endif %}\nz"), "x\ny\nz");
  EXPECT_EQ(ok("a  {%- if true -%}  b  {%- endif -%}  c"), "abc");
  EXPECT_EQ(ok("a\n{{ 'b' }}\nc"), "a\nb\nc");  // expressions are not trimmed
  EXPECT_EQ(ok("  {%+ if true %}x{% endif %}"), "  x");
  EXPECT_EQ(ok("{# comment #}\na{#- c -#}  b"), "ab");
  EXPECT_EQ(ok("{% raw %}{{ not evaluated }}{% endraw %}"), "{{ not evaluated }}");
}

TEST(JinjaTest, PythonValues) {
  EXPECT_EQ(ok("{{ 7 / 2 }} {{ 4 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }}"), "3.5 2.0 3 -4 2 1024");
  EXPECT_EQ(ok("{{ [1, 'a', none, true] }} {{ {'k': 'v'} }}"), "[1, 'a', None, True] {'k': 'v'}");
  EXPECT_EQ(ok("{{ 0.1 + 0.2 }} {{ 1e-5 }} {{ 1e16 }} {{ 10 | float }}"), "0.30000000000000004 1e-05 1e+16 10.0");
  EXPECT_EQ(ok("{{ 'a' ~ 1 ~ none }} {{ 'ab' * 2 }} {{ [1] + [2] }}"), "a1None abab [1, 2]");
  EXPECT_EQ(ok("{{ undefined_name }}|{{ undefined_name is defined }}"), "|False");
  EXPECT_EQ(ok("{{ 'x' if false }}|{{ 1 if true else 2 }}"), "|1");
}

TEST(JinjaTest, ToJsonMatchesPythonJsonDumps) {
  EXPECT_EQ(ok("{{ {'a': [1, 2.5, 'é\"\\n'], 'b': {}} | tojson }}"), "{\"a\": [1, 2.5, \"é\\\"\\n\"], \"b\": {}}");
  EXPECT_EQ(ok("{{ {'a': [1]} | tojson(indent=2) }}"), "{\n  \"a\": [\n    1\n  ]\n}");
}

TEST(JinjaTest, LoopsAndScopes) {
  EXPECT_EQ(ok("{% for x in [1,2,3] %}{{ loop.index }}{{ loop.first }}{{ loop.last }};{% endfor %}"),
            "1TrueFalse;2FalseFalse;3FalseTrue;");
  // A set inside a loop does not leak; a namespace attribute does.
  EXPECT_EQ(ok("{% set x = 1 %}{% set ns = namespace(y=1) %}{% for i in [5] %}{% set x = i %}{% set ns.y = i %}"
               "{% endfor %}{{ x }}{{ ns.y }}"),
            "15");
  EXPECT_EQ(ok("{% for k, v in {'a': 1}.items() %}{{ k }}{{ v }}{% endfor %}"), "a1");
  EXPECT_EQ(ok("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(ok("{% for x in [1,2,3,4] if x is even %}{{ x }}{{ loop.length }}{% endfor %}"), "2242");
  EXPECT_EQ(ok("{% macro m(a, b='d') %}{{ a }}{{ b }}{% endmacro %}{{ m(1) }}{{ m(1, b=2) }}"), "1d12");
}

TEST(JinjaTest, ErrorsNameTheConstruct) {
  StatusOr<std::string> r = render("{% for x in y recursive %}{% endfor %}");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("recursive"), std::string::npos) << r.status().message();
  r = render("{% call foo() %}{% endcall %}");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'{% call %}' statement is not supported"), std::string::npos);
  r = render("{{ x | frobnicate }}");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("filter 'frobnicate'"), std::string::npos);
  r = render("{{ raise_exception('Roles must alternate') }}");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("Roles must alternate"), std::string::npos);
  r = render("{{ 'a' + 1 }}");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("unsupported operand"), std::string::npos);
  EXPECT_FALSE(render("{% if x %}never closed").ok());
  EXPECT_FALSE(render("{{ unterminated").ok());
}

// A hostile template (or hostile messages) ends in an error naming the limit, never in a crash,
// a hang or an allocation of its choosing (jinja_limits.h; each case was a fuzzer finding).
TEST(JinjaTest, SandboxLimitsAreErrors) {
  auto fails_with = [](const std::string& source, const std::string& expected) {
    StatusOr<std::string> r = render(source);
    ASSERT_FALSE(r.ok()) << source.substr(0, 80);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(expected), std::string::npos) << r.status().message();
  };
  fails_with("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}", "nested deeper");
  std::string chain = "{{ 1";
  for (int i = 0; i < 5000; ++i) chain += "+1";
  fails_with(chain + " }}", "nested deeper");
  std::string ifs;
  for (int i = 0; i < 1000; ++i) ifs += "{% if 1 %}";
  fails_with(ifs, "nested deeper");
  fails_with("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "nested deeper");
  fails_with("{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}", "more work");
  fails_with("{{ 'x' * 9999999999 }}", "longer than");
  fails_with("{{ 'a' | center(9999999999) }}", "longer than");
  fails_with("{{ [1] | tojson(indent=100000000) }}", "longer than");
  fails_with("{{ 9223372036854775807 + 1 }}", "integer overflow");
  fails_with("{{ 2 ** 9223372036854775807 }}", "integer overflow");
  fails_with("{{ (-9223372036854775807 - 1) // -1 }}", "integer overflow");
  fails_with("{% set ns = namespace(a=1) %}{% set ns.a = ns %}", "cannot hold a namespace");
  fails_with("{% set ns = namespace(a=[]) %}{% for i in range(1000) %}{% set ns.a = [ns.a] %}{% endfor %}",
             "nested deeper");
  // Within the limits, the same constructs work.
  EXPECT_EQ(ok("{{ ((1 + 2)) * 'ab' | length }}"), "6");
  EXPECT_EQ(ok("{{ 'ab' * 3 }}|{{ 'x' * 0 }}|{{ 'x' * -2 }}|{{ 2 ** 62 }}|{{ -7 // 2 }}"), "ababab|||4611686018427387904|-4");
  EXPECT_EQ(ok("{{ range(3) | list }}{{ range(5, 0, -2) | list }}{{ range(0) | list }}"), "[0, 1, 2][5, 3, 1][]");
  EXPECT_EQ(ok("{{ range(-9223372036854775807 - 1, 9223372036854775807, 4611686018427387904) | list }}"),
            "[-9223372036854775808, -4611686018427387904, 0, 4611686018427387904]");
}

TEST(JinjaTest, StrftimeNowUsesTheInjectedClock) {
  StatusOr<ChatTemplate> t = ChatTemplate::parse("{{ strftime_now('%Y') }}");
  ASSERT_TRUE(t.ok());
  t->set_clock([] { return std::chrono::system_clock::from_time_t(86400 * 366); });  // 1971-01-02
  StatusOr<std::string> out = t->render(ChatTemplateInput{}, ChatTemplateTokens{});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, "1971");
}

TEST(JinjaTest, MessagesAndKwargsAreVariables) {
  ojson messages = ojson::parse(R"([{"role": "user", "content": "hi"}])");
  StatusOr<std::string> out = render("{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m['content'] }}{% endfor %}"
                                     "{{ enable_thinking }}",
                                     messages, ojson{{"enable_thinking", false}});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(*out, "<s>user:hiFalse");
}

TEST(JinjaTest, PythonFloatRepr) {
  EXPECT_EQ(jinja::format_python_float(3.14), "3.14");
  EXPECT_EQ(jinja::format_python_float(100.0), "100.0");
  EXPECT_EQ(jinja::format_python_float(1.5e-7), "1.5e-07");
  EXPECT_EQ(jinja::format_python_float(123456789012345678.0), "1.2345678901234568e+17");
  EXPECT_EQ(jinja::format_python_float(0.0001), "0.0001");
}

}  // namespace
}  // namespace longbow
