// Tool calls: each family's format parsed from whole outputs and from the same outputs arriving a
// byte at a time (the streaming split must release exactly what the whole split finds), the
// request's tool fields, and the forced (required / named) schemas compiled by the grammar engine.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "server/frontend/tools/tool_call_parser.h"
#include "server/frontend/tools/tool_request.h"
#include "server/structured/json_schema.h"

namespace longbow::tools {
namespace {

using nlohmann::json;

std::unique_ptr<ToolCallParser> parser(const char* name) {
  auto made = make_tool_call_parser(name);
  EXPECT_TRUE(made.ok()) << made.status().to_string();
  return std::move(*made);
}

// The stream fed in pieces of `step` bytes.
SplitOutput stream_split(const ToolCallParser& p, const std::string& text, size_t step) {
  ToolCallStream stream(p);
  SplitOutput out;
  auto take = [&](ToolCallStream::Delta d) {
    out.content += d.content;
    for (ToolCall& c : d.calls) out.calls.push_back(std::move(c));
  };
  for (size_t i = 0; i < text.size(); i += step) take(stream.feed(std::string_view(text).substr(i, step)));
  take(stream.finish());
  return out;
}

void expect_same(const SplitOutput& a, const SplitOutput& b, const std::string& what) {
  EXPECT_EQ(a.content, b.content) << what;
  ASSERT_EQ(a.calls.size(), b.calls.size()) << what;
  for (size_t i = 0; i < a.calls.size(); ++i) {
    EXPECT_EQ(a.calls[i].name, b.calls[i].name) << what;
    EXPECT_EQ(a.calls[i].arguments, b.calls[i].arguments) << what;
  }
}

struct Case {
  const char* parser;
  std::string text;
  std::string content;
  std::vector<std::pair<std::string, std::string>> calls;  // name, compact arguments
};

class ToolCallFormats : public ::testing::TestWithParam<Case> {};

TEST_P(ToolCallFormats, WholeAndStreamedSplitsAgree) {
  const Case& c = GetParam();
  auto p = parser(c.parser);
  const SplitOutput whole = split_tool_calls(*p, c.text);
  EXPECT_EQ(whole.content, c.content);
  ASSERT_EQ(whole.calls.size(), c.calls.size()) << c.text;
  for (size_t i = 0; i < c.calls.size(); ++i) {
    EXPECT_EQ(whole.calls[i].name, c.calls[i].first);
    EXPECT_EQ(whole.calls[i].arguments, c.calls[i].second);
  }
  for (size_t step : {1, 2, 3, 7, 1000}) expect_same(stream_split(*p, c.text, step), whole, c.text);
}

const std::string kDsBegin = "<\uff5ctool\u2581calls\u2581begin\uff5c>";
const std::string kDsEnd = "<\uff5ctool\u2581calls\u2581end\uff5c>";
const std::string kDsCall = "<\uff5ctool\u2581call\u2581begin\uff5c>";
const std::string kDsCallEnd = "<\uff5ctool\u2581call\u2581end\uff5c>";
const std::string kDsSep = "<\uff5ctool\u2581sep\uff5c>";

INSTANTIATE_TEST_SUITE_P(
    Formats, ToolCallFormats,
    ::testing::Values(
        // Hermes / Qwen
        Case{"hermes", "Hello there.", "Hello there.", {}},
        Case{"hermes", "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
             "Let me look.\n", {{"get_weather", R"({"city":"Paris"})"}}},
        Case{"hermes",
             "<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n{\"name\": \"b\", "
             "\"arguments\": {\"x\": [1, 2]}}\n</tool_call>",
             "", {{"a", "{}"}, {"b", R"({"x":[1,2]})"}}},
        Case{"hermes", "<tool_call>\n{\"name\": \"a\", \"arguments\": {\"q\": \"</tool_call> in a string\"}}",
             "<tool_call>\n{\"name\": \"a\", \"arguments\": {\"q\": \"</tool_call> in a string\"}}", {}},
        Case{"hermes", "<tool_call>\n{\"name\": \"a\", \"arguments\": {\"k\": 1}}", "", {{"a", R"({"k":1})"}}},
        Case{"hermes", "<tool_call>not json</tool_call> after", "<tool_call>not json</tool_call> after", {}},
        Case{"hermes", "a < b <tool", "a < b <tool", {}},
        Case{"hermes", "<tool_call>{\"name\": \"a\", \"arguments\": \"{\\\"k\\\": 2}\"}</tool_call>\nDone.",
             "\nDone.", {{"a", R"({"k":2})"}}},
        // Llama 3 JSON
        Case{"llama3_json", R"({"name": "get_weather", "parameters": {"city": "Rome"}})", "",
             {{"get_weather", R"({"city":"Rome"})"}}},
        Case{"llama3_json", R"( {"name": "a", "parameters": {}}; {"name": "b", "parameters": {"n": 2}})", " ",
             {{"a", "{}"}, {"b", R"({"n":2})"}}},
        Case{"llama3_json", R"({"answer": 42})", R"({"answer": 42})", {}},
        Case{"llama3_json", "The weather is fine.", "The weather is fine.", {}},
        Case{"llama3_json", "<|python_tag|>{\"name\": \"f\", \"parameters\": {\"a\": \"b\"}}", "",
             {{"f", R"({"a":"b"})"}}},
        // DeepSeek V3 and V3.1
        Case{"deepseek_v3",
             "Sure." + kDsBegin + kDsCall + "function" + kDsSep + "get_weather\n```json\n{\"city\": \"Oslo\"}\n```" +
                 kDsCallEnd + "\n" + kDsCall + "function" + kDsSep + "now\n```json\n{}\n```" + kDsCallEnd + kDsEnd,
             "Sure.", {{"get_weather", R"({"city":"Oslo"})"}, {"now", "{}"}}},
        Case{"deepseek_v3", kDsBegin + kDsCall + "get_weather" + kDsSep + "{\"city\": \"Lima\"}" + kDsCallEnd + kDsEnd,
             "", {{"get_weather", R"({"city":"Lima"})"}}},
        Case{"deepseek_v3", kDsBegin + "garbage", kDsBegin + "garbage", {}},
        // Mistral
        Case{"mistral", R"([TOOL_CALLS][{"name": "f", "arguments": {"a": 1}}, {"name": "g", "arguments": {}}])", "",
             {{"f", R"({"a":1})"}, {"g", "{}"}}},
        Case{"mistral", R"([{"name": "f", "arguments": {"a": 1}}])", "", {{"f", R"({"a":1})"}}},
        Case{"mistral", R"([TOOL_CALLS]f[ARGS]{"a": 1}[TOOL_CALLS]g[ARGS]{"b": "x"})", "",
             {{"f", R"({"a":1})"}, {"g", R"({"b":"x"})"}}},
        Case{"mistral", "[1, 2, 3] are numbers", "[1, 2, 3] are numbers", {}}));

TEST(ToolCallStreamTest, ContentIsReleasedBeforeTheOutputEndsAndMarkersAreHeld) {
  auto p = parser("hermes");
  ToolCallStream stream(*p);
  EXPECT_EQ(stream.feed("Hello ").content, "Hello ");
  EXPECT_EQ(stream.feed("world <tool").content, "world ");  // "<tool" may open a call
  ToolCallStream::Delta d = stream.feed("_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>");
  EXPECT_EQ(d.content, "");
  ASSERT_EQ(d.calls.size(), 1u);  // released as soon as it is complete
  EXPECT_EQ(d.calls[0].name, "f");
  EXPECT_TRUE(stream.finish().calls.empty());
}

TEST(ToolCallParserTest, DetectedFromTheTemplateAndNamedByTheFlag) {
  EXPECT_EQ(detect_tool_call_parser("{{- '<tool_call>\\n' }}")->name(), "hermes");
  EXPECT_EQ(detect_tool_call_parser("{{'<\uff5ctool\u2581calls\u2581begin\uff5c>'}}")->name(), "deepseek_v3");
  EXPECT_EQ(detect_tool_call_parser("{{ '[TOOL_CALLS]' }}")->name(), "mistral");
  EXPECT_EQ(detect_tool_call_parser("{% if tools %}{\"name\": function name, \"parameters\": ...}{% endif %}")->name(),
            "llama3_json");
  EXPECT_EQ(detect_tool_call_parser("{{ messages[0].content }}"), nullptr);
  EXPECT_FALSE(make_tool_call_parser("qwen").ok());
  EXPECT_TRUE(template_takes_argument_objects("{{ tool_call.arguments | tojson }}"));
  EXPECT_FALSE(template_takes_argument_objects("{{ tool['function']['arguments'] }}"));
  EXPECT_TRUE(template_takes_argument_objects("{{ messages }}"));
  EXPECT_TRUE(template_takes_null_content("{%- if message['role'] == 'assistant' and message['content'] is none %}"));
  EXPECT_FALSE(template_takes_null_content("{%- if message.reasoning_content is not none %}"));
}

json weather_tools() {
  return json::parse(R"([{"type": "function", "function": {"name": "get_weather", "description": "d",
      "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12},
                                                       "days": {"type": "integer", "minimum": 1, "maximum": 7}},
                     "required": ["city"]}}},
     {"type": "function", "function": {"name": "now"}}])");
}

StatusOr<ToolRequest> parse(json body, std::string* param) { return parse_tool_request(body, param); }

TEST(ToolRequestTest, ChoicesAndTheirErrors) {
  std::string param;
  auto none = parse(json::object(), &param);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->choice, ToolRequest::Choice::kNone);
  auto automatic = parse(json{{"tools", weather_tools()}}, &param);
  ASSERT_TRUE(automatic.ok());
  EXPECT_EQ(automatic->choice, ToolRequest::Choice::kAuto);
  EXPECT_TRUE(automatic->render_tools());
  auto off = parse(json{{"tools", weather_tools()}, {"tool_choice", "none"}}, &param);
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off->render_tools());
  auto named = parse(json{{"tools", weather_tools()},
                          {"tool_choice", {{"type", "function"}, {"function", {{"name", "now"}}}}}},
                     &param);
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(named->choice, ToolRequest::Choice::kFunction);
  EXPECT_EQ(named->function, "now");

  struct Bad {
    json body;
    const char* param;
  };
  for (const Bad& bad : std::vector<Bad>{
           {json{{"tools", json::array({{{"type", "code_interpreter"}}})}}, "tools[0]"},
           {json{{"tools", json::array({{{"type", "function"}, {"function", {{"name", "has space"}}}}})}}, "tools[0]"},
           {json{{"tools", "get_weather"}}, "tools"},
           {json{{"tool_choice", "required"}}, "tool_choice"},
           {json{{"tools", weather_tools()}, {"tool_choice", "sometimes"}}, "tool_choice"},
           {json{{"tools", weather_tools()}, {"tool_choice", {{"type", "function"}, {"function", {{"name", "x"}}}}}},
            "tool_choice"},
           {json{{"tools", weather_tools()}, {"parallel_tool_calls", "yes"}}, "parallel_tool_calls"},
           {json{{"functions", json::array()}}, "functions"}}) {
    auto parsed = parse(bad.body, &param);
    EXPECT_FALSE(parsed.ok()) << bad.body.dump();
    EXPECT_EQ(param, bad.param) << bad.body.dump();
  }
}

TEST(ToolRequestTest, ForcedSchemasCompileAndTheirOutputsBecomeCalls) {
  std::string param;
  auto required = parse(json{{"tools", weather_tools()}, {"tool_choice", "required"}}, &param);
  ASSERT_TRUE(required.ok());
  ASSERT_TRUE(required->forced());
  auto grammar = structured::json_schema_to_grammar(required->forced_schema());
  EXPECT_TRUE(grammar.ok()) << grammar.status().to_string() << "\n" << required->forced_schema();
  ToolOutput output(*required, nullptr);
  SplitOutput split = output.split(R"([{"name":"get_weather","parameters":{"city":"Paris"}},{"name":"now","parameters":{}}])");
  ASSERT_EQ(split.calls.size(), 2u);
  EXPECT_EQ(split.calls[0].name, "get_weather");
  EXPECT_EQ(split.calls[0].arguments, R"({"city":"Paris"})");
  EXPECT_EQ(output.split(R"([{"name":"get_weather","param)").content, R"([{"name":"get_weather","param)");

  auto single = parse(json{{"tools", weather_tools()}, {"tool_choice", "required"}, {"parallel_tool_calls", false}},
                      &param);
  ASSERT_TRUE(single.ok());
  EXPECT_EQ(json::parse(single->forced_schema())["maxItems"], 1);

  auto named = parse(json{{"tools", weather_tools()},
                          {"tool_choice", {{"type", "function"}, {"function", {{"name", "get_weather"}}}}}},
                     &param);
  ASSERT_TRUE(named.ok());
  EXPECT_TRUE(structured::json_schema_to_grammar(named->forced_schema()).ok());
  ToolOutput named_output(*named, nullptr);
  split = named_output.split(R"({"city": "Rome", "days": 3})");
  ASSERT_EQ(split.calls.size(), 1u);
  EXPECT_EQ(split.calls[0].name, "get_weather");
  EXPECT_EQ(split.calls[0].arguments, R"({"city":"Rome","days":3})");

  // Streaming a forced answer: nothing until the end, then the calls.
  ToolOutput::Stream stream(named_output);
  EXPECT_TRUE(stream.feed(R"({"city": )").calls.empty());
  EXPECT_TRUE(stream.feed(R"("Rome"})").calls.empty());
  EXPECT_EQ(stream.finish().calls.size(), 1u);
}

TEST(ToolRequestTest, ParallelToolCallsFalseKeepsTheFirstCall) {
  std::string param;
  auto request = parse(json{{"tools", weather_tools()}, {"parallel_tool_calls", false}}, &param);
  ASSERT_TRUE(request.ok());
  ToolOutput output(*request, std::shared_ptr<const ToolCallParser>(parser("hermes")));
  const std::string text =
      "<tool_call>{\"name\": \"now\", \"arguments\": {}}</tool_call><tool_call>{\"name\": \"now\", \"arguments\": {}}"
      "</tool_call>";
  EXPECT_EQ(output.split(text).calls.size(), 1u);
  ToolOutput::Stream stream(output);
  size_t calls = stream.feed(text).calls.size();
  calls += stream.finish().calls.size();
  EXPECT_EQ(calls, 1u);
}

}  // namespace
}  // namespace longbow::tools
