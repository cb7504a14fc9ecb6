// The tool fields of a chat-completions body (tools, tool_choice, parallel_tool_calls) and what
// they make of the answer: which calls the output holds, found by the model's tool-call format
// (auto) or forced by a grammar (required, a named function), as vLLM does it.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "server/frontend/tools/tool_call_parser.h"

namespace longbow::tools {

struct ToolRequest {
  enum class Choice { kNone, kAuto, kRequired, kFunction };

  nlohmann::ordered_json tools;  // as sent (validated); null when none
  Choice choice = Choice::kNone;
  std::string function;          // kFunction: the function's name
  bool parallel = true;          // parallel_tool_calls

  // Whether the template sees the tools (not for tool_choice "none").
  bool render_tools() const { return choice != Choice::kNone; }
  // required / a named function: the output is constrained by forced_schema().
  bool forced() const { return choice == Choice::kRequired || choice == Choice::kFunction; }
  // The JSON schema a forced answer follows: the named function's parameters, or (required) a list
  // of {"name": <const>, "parameters": <its schema>} with at least one item (exactly one when
  // parallel_tool_calls is false).
  std::string forced_schema() const;
};

// tools, tool_choice and parallel_tool_calls of `body`. INVALID_ARGUMENT naming the field in
// *param: a tool that is not {"type": "function", "function": {"name", ...}}, a tool_choice that
// names no listed function, a tool_choice without tools; UNIMPLEMENTED for the deprecated
// functions / function_call.
StatusOr<ToolRequest> parse_tool_request(const nlohmann::json& body, std::string* param);

// How one chat answer's text becomes content and tool calls.
class ToolOutput {
 public:
  ToolOutput() = default;  // no tools: all content
  // `parser` may be null (tool_choice auto with a template that has no tool-call format is refused
  // before this is made).
  ToolOutput(const ToolRequest& request, std::shared_ptr<const ToolCallParser> parser);

  bool active() const { return mode_ != Mode::kNone; }
  SplitOutput split(std::string_view text) const;

  // The split made as the text arrives. Forced answers are JSON that only means something whole,
  // so their calls come at finish().
  class Stream {
   public:
    explicit Stream(const ToolOutput& output);
    ToolCallStream::Delta feed(std::string_view text);
    ToolCallStream::Delta finish();

   private:
    ToolCallStream::Delta limited(ToolCallStream::Delta delta);

    const ToolOutput& output_;
    std::unique_ptr<ToolCallStream> parse_;  // auto
    std::string forced_text_;                // required / named
    size_t calls_ = 0;
  };

 private:
  enum class Mode { kNone, kParse, kNamed, kRequired };
  void limit(std::vector<ToolCall>* calls) const;

  Mode mode_ = Mode::kNone;
  std::shared_ptr<const ToolCallParser> parser_;
  std::string function_;
  bool parallel_ = true;
};

// Whether a chat template takes assistant tool calls' arguments as objects (transformers'
// convention: `arguments | tojson`, or a template that checks `arguments is string`) rather than as
// the JSON text it concatenates (DeepSeek-V3's).
bool template_takes_argument_objects(std::string_view template_source);

// Whether a chat template tells a null assistant content apart (DeepSeek-V3's writes tool calls only
// for `message['content'] is none`); others get "" for null, as vLLM passes it.
bool template_takes_null_content(std::string_view template_source);

// A fresh OpenAI-style tool-call id: "call_" and 24 random alphanumerics.
std::string new_tool_call_id();

}  // namespace longbow::tools
