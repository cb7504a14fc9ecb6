// Grammars from regexes, JSON schemas and choices, run through the matcher on whole strings.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include <fmt/format.h>

#include "server/structured/guided.h"
#include "server/structured/integer_range.h"
#include "server/structured/json_schema.h"
#include "server/structured/matcher.h"

namespace longbow::structured {
namespace {

std::shared_ptr<const Grammar> must(StatusOr<Grammar> g) {
  EXPECT_TRUE(g.ok()) << g.status().to_string();
  return std::make_shared<const Grammar>(std::move(g).value());
}

// Fed byte by byte: the whole string is a sentence.
bool matches(const std::shared_ptr<const Grammar>& g, const std::string& text) {
  GrammarMatcher m(g);
  for (const char c : text) {
    if (!m.accept_bytes(std::string(1, c))) return false;
  }
  return m.is_complete();
}

TEST(RegexGrammar, LiteralsClassesQuantifiersAlternation) {
  auto g = must(regex_grammar("(ab|c)+[x-z]?\\d{2,3}"));
  EXPECT_TRUE(matches(g, "ab12"));
  EXPECT_TRUE(matches(g, "cabcy123"));
  EXPECT_FALSE(matches(g, "ab1"));
  EXPECT_FALSE(matches(g, "ab1234"));
  EXPECT_FALSE(matches(g, "x12"));
  auto dot = must(regex_grammar("^a.c$"));
  EXPECT_TRUE(matches(dot, "abc"));
  EXPECT_TRUE(matches(dot, "a\xc3\xa9" "c"));  // é is one character
  EXPECT_FALSE(matches(dot, "a\nc"));
  EXPECT_FALSE(matches(dot, "a\xc3" "c"));     // not UTF-8
}

TEST(RegexGrammar, NegatedAndUnicodeClasses) {
  auto g = must(regex_grammar("[^a-c]{2}[α-ω]"));
  EXPECT_TRUE(matches(g, "dZβ"));
  EXPECT_TRUE(matches(g, "\xe2\x82\xac!ω"));
  EXPECT_FALSE(matches(g, "aZβ"));
  EXPECT_FALSE(matches(g, "ddA"));
  auto w = must(regex_grammar("\\w+@\\w+\\.(com|org)"));
  EXPECT_TRUE(matches(w, "a_1@b.org"));
  EXPECT_FALSE(matches(w, "a-1@b.org"));
}

TEST(RegexGrammar, UnsupportedConstructsNameThemselves) {
  for (const auto& [pattern, words] : std::vector<std::pair<std::string, std::string>>{
           {"(a)\\1", "backreference"}, {"a(?=b)", "lookahead"}, {"\\bword", "word boundary"}, {"a^b", "anchor"}}) {
    StatusOr<Grammar> g = regex_grammar(pattern);
    ASSERT_FALSE(g.ok()) << pattern;
    EXPECT_NE(g.status().message().find(words), std::string::npos) << g.status().message();
  }
  EXPECT_FALSE(regex_grammar("(ab").ok());
  EXPECT_FALSE(regex_grammar("a{3,1}").ok());
}

TEST(IntegerRange, ExactlyTheValuesInRange) {
  for (const auto& [lo, hi] : std::vector<std::pair<int64_t, int64_t>>{
           {0, 0}, {0, 9}, {7, 123}, {-45, 17}, {-1000, -999}, {100, 1000}, {-7, -3}, {19, 91}, {5, 5}}) {
    GrammarBuilder b;
    const int root = b.declare_rule("root");
    b.define_rule(root, integer_range(lo, hi));
    auto g = must(b.build(root));
    for (int64_t v = lo - 120; v <= hi + 120; ++v) {
      EXPECT_EQ(matches(g, std::to_string(v)), v >= lo && v <= hi) << lo << ".." << hi << " value " << v;
    }
    EXPECT_FALSE(matches(g, "-0"));
    EXPECT_FALSE(matches(g, fmt::format("0{}", hi)));
  }
}

TEST(JsonSchemaGrammar, ObjectPropertiesInOrderOptionalSkippable) {
  auto g = must(json_schema_to_grammar(R"({"type":"object","properties":{
      "name":{"type":"string","maxLength":5},
      "age":{"type":"integer","minimum":0,"maximum":150},
      "tags":{"type":"array","items":{"enum":["a","b"]},"minItems":1,"maxItems":2},
      "ok":{"type":"boolean"}},
    "required":["name","ok"]})"));
  EXPECT_TRUE(matches(g, R"({"name":"bob","ok":true})"));
  EXPECT_TRUE(matches(g, R"({"name":"","age":150,"tags":["a","b"],"ok":false})"));
  EXPECT_TRUE(matches(g, R"({"name":"\u00e9\n","tags":["b"],"ok":true})"));
  EXPECT_FALSE(matches(g, R"({"ok":true,"name":"bob"})"));         // schema order
  EXPECT_FALSE(matches(g, R"({"name":"bob"})"));                   // ok is required
  EXPECT_FALSE(matches(g, R"({"name":"bobbyb","ok":true})"));      // maxLength
  EXPECT_FALSE(matches(g, R"({"name":"b","age":151,"ok":true})"));  // maximum
  EXPECT_FALSE(matches(g, R"({"name":"b","tags":[],"ok":true})"));  // minItems
  EXPECT_FALSE(matches(g, R"({"name":"b","tags":["a","a","a"],"ok":true})"));
  EXPECT_FALSE(matches(g, R"({"name":"b","ok":true,})"));
  EXPECT_FALSE(matches(g, R"({"name":"\ud800","ok":true})"));      // lone surrogate escape
}

TEST(JsonSchemaGrammar, NestedAnyOfConstEnumNullNumberPattern) {
  auto g = must(json_schema_to_grammar(R"({"type":"object","properties":{
      "v":{"anyOf":[{"type":"null"},{"type":"number"},{"const":{"k":[1,"x"]}}]},
      "e":{"enum":[1,"two",null,true]},
      "p":{"type":"string","pattern":"^[a-z]+\"?\\d$"},
      "n":{"type":"object","properties":{"x":{"type":["integer","null"],"minimum":-3,"maximum":3}},"required":["x"]}},
    "required":["v","e","p","n"]})"));
  EXPECT_TRUE(matches(g, R"({"v":null,"e":1,"p":"ab1","n":{"x":-3}})"));
  EXPECT_TRUE(matches(g, R"({"v":-0.5e+10,"e":"two","p":"ab\"1","n":{"x":null}})"));
  EXPECT_TRUE(matches(g, R"({"v":{"k":[1,"x"]},"e":true,"p":"z9","n":{"x":3}})"));
  EXPECT_FALSE(matches(g, R"({"v":01,"e":1,"p":"ab1","n":{"x":0}})"));
  EXPECT_FALSE(matches(g, R"({"v":null,"e":2,"p":"ab1","n":{"x":0}})"));
  EXPECT_FALSE(matches(g, R"({"v":null,"e":1,"p":"AB1","n":{"x":0}})"));
  EXPECT_FALSE(matches(g, R"({"v":null,"e":1,"p":"ab1","n":{"x":4}})"));
}

TEST(JsonSchemaGrammar, BoundedWhitespace) {
  JsonGrammarOptions opt;
  opt.max_whitespace = 2;
  auto g = must(json_schema_to_grammar(R"({"type":"array","items":{"type":"integer","minimum":0,"maximum":9},"maxItems":3})", opt));
  EXPECT_TRUE(matches(g, "[ 1,\n 2 ]"));
  EXPECT_TRUE(matches(g, "[]"));
  EXPECT_FALSE(matches(g, "[   1]"));
  EXPECT_FALSE(matches(g, "[1,2,3,4]"));
  auto compact = must(json_schema_to_grammar(R"({"type":"array","items":{"type":"integer"}})"));
  EXPECT_FALSE(matches(compact, "[1, 2]"));
  EXPECT_TRUE(matches(compact, "[1,-2,333]"));
}

TEST(JsonSchemaGrammar, UnsupportedKeywordsAreNamed) {
  for (const auto& [schema, word] : std::vector<std::pair<std::string, std::string>>{
           {R"({"type":"string","format":"date"})", "'format'"},
           {R"({"type":"object","properties":{"a":{"$ref":"#/$defs/x"}}})", "'$ref'"},
           {R"({"oneOf":[{"type":"string"}]})", "'oneOf'"},
           {R"({"type":"number","minimum":1})", "'minimum' on a number"},
           {R"({"type":"array","items":[{"type":"string"}]})", "tuple"},
           {R"({"type":"object","minProperties":1})", "'minProperties'"}}) {
    StatusOr<Grammar> g = json_schema_to_grammar(schema);
    ASSERT_FALSE(g.ok()) << schema;
    EXPECT_NE(g.status().message().find(word), std::string::npos) << g.status().message();
  }
  EXPECT_FALSE(json_schema_to_grammar(R"({"type":"integer","minimum":5,"maximum":4})").ok());
  EXPECT_FALSE(json_schema_to_grammar("{not json").ok());
}

TEST(JsonObjectGrammar, AnyObject) {
  auto g = must(json_object_grammar());
  EXPECT_TRUE(matches(g, R"({})"));
  EXPECT_TRUE(matches(g, R"({"a":[1,{"b":null},"x\"y"],"c":{"d":{}},"e":-1.5E-3})"));
  EXPECT_FALSE(matches(g, R"([1])"));
  EXPECT_FALSE(matches(g, R"({"a":})"));
  EXPECT_FALSE(matches(g, R"({"a":1}})"));
}

TEST(ChoiceGrammar, ExactlyOneOfTheStrings) {
  auto g = must(choice_grammar({"yes", "no", "maybe so"}));
  EXPECT_TRUE(matches(g, "yes"));
  EXPECT_TRUE(matches(g, "maybe so"));
  EXPECT_FALSE(matches(g, "ye"));
  EXPECT_FALSE(matches(g, "yess"));
  EXPECT_FALSE(choice_grammar({}).ok());
}

TEST(GrammarMatcher, RollbackAndSnapshots) {
  auto g = must(regex_grammar("abc|abd"));
  GrammarMatcher m(g);
  ASSERT_TRUE(m.accept_bytes("ab"));
  const GrammarMatcher::Snapshot at_ab = m.snapshot();
  EXPECT_FALSE(m.accept_bytes("x"));  // all-or-nothing: still after "ab"
  ASSERT_TRUE(m.accept_bytes("c"));
  EXPECT_TRUE(m.is_complete());
  EXPECT_TRUE(m.is_terminated());
  m.rollback(1);
  EXPECT_FALSE(m.is_complete());
  ASSERT_TRUE(m.accept_bytes("d"));
  EXPECT_TRUE(m.is_complete());
  m.restore(at_ab);
  EXPECT_TRUE(m.can_accept("c"));
  EXPECT_FALSE(m.can_accept("cc"));
  m.rollback(1);
  EXPECT_EQ(m.accepted_count(), 0U);
  EXPECT_TRUE(m.can_accept("abd"));
}

}  // namespace
}  // namespace longbow::structured
