// The tool-call formats (one file each) and the text helpers they share. Internal to tools/.
#pragma once

#include <memory>
#include <string_view>

#include "server/frontend/tools/tool_call_parser.h"

namespace longbow::tools {

// Qwen 2.5/3 and Hermes: <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>, repeated.
std::unique_ptr<ToolCallParser> make_hermes_parser();
// Llama 3.1-3.3 JSON tool calls: [<|python_tag|>]{"name": ..., "parameters": {...}}, "; "-separated.
std::unique_ptr<ToolCallParser> make_llama3_json_parser();
// DeepSeek-V3 and V3.1/V3.2: <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>...<｜tool▁call▁end｜>...<｜tool▁calls▁end｜>.
std::unique_ptr<ToolCallParser> make_deepseek_v3_parser();
// Mistral: [TOOL_CALLS][{"name": ..., "arguments": {...}}, ...] or [TOOL_CALLS]name[ARGS]{...}.
std::unique_ptr<ToolCallParser> make_mistral_parser();

// Offset of the first byte after whitespace at or after pos.
size_t skip_space(std::string_view text, size_t pos);
bool starts_with_at(std::string_view text, size_t pos, std::string_view prefix);
// The length of the longest suffix of `text` that is a proper prefix of `marker` (a marker that may
// be cut off by the end of what has arrived).
size_t partial_marker(std::string_view text, std::string_view marker);
// A call from a name and an arguments text that must be a JSON object (whitespace around allowed).
bool call_from_parts(std::string_view name, std::string_view arguments, ToolCall* call);
bool is_blank(std::string_view text);
// find_start for formats whose marker is a special token (skipped when decoding): the marker's
// offset, else the first non-blank byte when it is `open` (the JSON the marker precedes), else npos.
// While the text is blank, or ends in a cut-off marker, *held says what must not be shown yet.
size_t find_marker_or_leading_json(std::string_view text, std::string_view marker, char open, size_t* held);

}  // namespace longbow::tools
