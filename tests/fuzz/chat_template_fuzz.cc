// libFuzzer target: a chat template's source -> ChatTemplate::parse -> render, as the server does
// for a checkpoint's tokenizer_config.json "chat_template". Without a NUL byte the whole input is
// the template, rendered with a fixed conversation (system message, tools, a tool call and its
// result) with and without add_generation_prompt; with one, the bytes before it are the template
// and the bytes after a JSON value standing for the request: an array of messages, or an object
// with "messages", "tools", "documents" and "kwargs" (parsed with the depth limit, as requests are).
// Any crash, sanitizer report, hang or exception escaping is a bug; errors are fine.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/bounded_json.h"
#include "model/tokenizer/chat/chat_template.h"

namespace {

using ojson = nlohmann::ordered_json;

ojson fixed_conversation() {
  return ojson::parse(R"([
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Weather in Paris? {{ 1 }} <|im_end|>"},
    {"role": "assistant", "content": null, "reasoning_content": "Ask the tool.", "tool_calls": [
      {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21}"},
    {"role": "assistant", "content": "21 degrees."},
    {"role": "user", "content": [{"type": "text", "text": "Thanks! "}, {"type": "text", "text": "日本語 😀"}]}
  ])");
}

ojson fixed_tools() {
  return ojson::parse(R"([{"type": "function", "function": {"name": "get_weather",
    "description": "Get the weather for a city", "parameters": {"type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city"]}}}])");
}

void render(const longbow::ChatTemplate& tmpl, longbow::ChatTemplateInput input) {
  longbow::ChatTemplateTokens tokens;
  tokens.bos_token = "<s>";
  tokens.eos_token = "</s>";
  for (const bool generation_prompt : {true, false}) {
    input.add_generation_prompt = generation_prompt;
    (void)tmpl.render(input, tokens);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const size_t split = text.find('\0');
  auto tmpl = longbow::ChatTemplate::parse(std::string(text.substr(0, split)));
  if (!tmpl.ok()) return 0;
  tmpl->set_clock([] { return std::chrono::system_clock::time_point(std::chrono::seconds(1700000000)); });
  longbow::ChatTemplateInput input;
  if (split == std::string_view::npos) {
    input.messages = fixed_conversation();
    input.tools = fixed_tools();
    input.kwargs = ojson{{"enable_thinking", false}};
    render(*tmpl, input);
    return 0;
  }
  const std::string_view body = text.substr(split + 1);
  if (!longbow::parse_json(body, "fuzz request").ok()) return 0;  // the front end's depth limit
  const ojson value = ojson::parse(body);  // key order kept, as the front end passes messages on
  if (value.is_array()) {
    input.messages = value;
  } else if (value.is_object()) {
    if (value.contains("messages")) input.messages = value["messages"];
    if (value.contains("tools")) input.tools = value["tools"];
    if (value.contains("documents")) input.documents = value["documents"];
    if (value.contains("kwargs")) input.kwargs = value["kwargs"];
  } else {
    return 0;
  }
  render(*tmpl, input);
  return 0;
}
