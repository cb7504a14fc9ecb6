// Tool calls in a model's output text: the formats of the families longbow serves, each in its own
// file, behind one interface, plus the streaming splitter the SSE answers use.
//
// A parser sees decoded text (special tokens skipped), so formats whose markers are special tokens
// (Llama 3's <|python_tag|>, Mistral's [TOOL_CALLS]) are also recognised by their JSON alone at the
// start of the output. Text that does not parse as the format's tool calls is content: nothing the
// model wrote is dropped.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace longbow::tools {

struct ToolCall {
  std::string name;
  std::string arguments;  // JSON text of an object, compact
};

// What a parser makes of one section of output that begins with a tool-call marker.
struct ParsedSection {
  std::vector<ToolCall> calls;  // complete calls, in order
  std::string content;          // text inside the section that is not a call (between or after calls)
  bool valid = true;            // false: the section is not this format; all of it is content
};

class ToolCallParser {
 public:
  virtual ~ToolCallParser() = default;

  // The name --tool-call-parser takes ("hermes", "llama3_json", "deepseek_v3", "mistral").
  virtual std::string_view name() const = 0;

  // Where a tool-call section begins in `text`: its offset, or npos. `complete_text` false: `text`
  // may still grow, so a marker that might be cut off at its end is reported by *held, the number
  // of trailing bytes that must not be shown as content yet.
  virtual size_t find_start(std::string_view text, size_t* held) const = 0;

  // Parses the section (text from find_start on). `final` false: the output may still grow, so only
  // calls whose end is seen are returned and an incomplete tail is neither content nor invalid.
  virtual ParsedSection parse_section(std::string_view section, bool final) const = 0;
};

// The parser named `name`; INVALID_ARGUMENT listing the names when unknown.
StatusOr<std::unique_ptr<ToolCallParser>> make_tool_call_parser(std::string_view name);

// The parser a chat template's tool-call markup implies (Qwen's <tool_call>, DeepSeek's
// <｜tool▁calls▁begin｜>, Mistral's [TOOL_CALLS], Llama 3's <|python_tag|> or "parameters"
// objects), or null when the template writes no tool calls.
std::unique_ptr<ToolCallParser> detect_tool_call_parser(std::string_view template_source);

// A whole output split into content and calls. When the section is invalid or holds no call, the
// whole text is content.
struct SplitOutput {
  std::string content;
  std::vector<ToolCall> calls;
};
SplitOutput split_tool_calls(const ToolCallParser& parser, std::string_view text);

// The same split made as the text arrives: feed() each piece, then finish(). Content is released as
// soon as it cannot be the start of a tool call; a call is released once it is complete.
class ToolCallStream {
 public:
  explicit ToolCallStream(const ToolCallParser& parser) : parser_(parser) {}

  struct Delta {
    std::string content;
    std::vector<ToolCall> calls;
  };
  Delta feed(std::string_view text);
  Delta finish();
  size_t calls_emitted() const { return calls_emitted_; }

 private:
  Delta advance(bool final);

  const ToolCallParser& parser_;
  std::string text_;
  size_t content_emitted_ = 0;         // bytes of text_ released as content
  size_t section_start_ = std::string::npos;
  size_t section_content_emitted_ = 0;  // bytes of the section's own content released
  size_t calls_emitted_ = 0;
  bool plain_ = false;  // the section turned out not to be tool calls: everything is content
};

// JSON helpers the parsers share.
// The end (one past) of the JSON value starting at text[pos] (after whitespace), or npos when the
// value is incomplete or not JSON. Strings and nesting are tracked; the value is not validated.
size_t json_value_end(std::string_view text, size_t pos);
// {"name": string, <arguments_key>: object} (arguments_key: "arguments" or "parameters"; an
// arguments string holding a JSON object is accepted too) as a call; false if it is not one.
bool call_from_json(std::string_view json_text, ToolCall* call);

}  // namespace longbow::tools
