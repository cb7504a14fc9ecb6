// Mistral tool calls, in the two forms Mistral's templates write:
//   [TOOL_CALLS][{"name": "f", "arguments": {...}}, ...]      (v0.3 tokenizers)
//   [TOOL_CALLS]f[ARGS]{...}[TOOL_CALLS]g[ARGS]{...}          (tokenizer v11 and later)
// [TOOL_CALLS] is a control token, skipped when decoding, so a turn that starts with a JSON list is
// a candidate too; a list that is not calls stays content.
#include "server/frontend/tools/parsers.h"

#include <nlohmann/json.hpp>

namespace longbow::tools {
namespace {

constexpr std::string_view kToolCalls = "[TOOL_CALLS]";
constexpr std::string_view kArgs = "[ARGS]";

class MistralParser : public ToolCallParser {
 public:
  std::string_view name() const override { return "mistral"; }

  size_t find_start(std::string_view text, size_t* held) const override {
    // A "[TOOL_CALLS]" still arriving at the start is taken as the section's start too: parse_section
    // skips the marker once it is whole.
    return find_marker_or_leading_json(text, kToolCalls, '[', held);
  }

  ParsedSection parse_section(std::string_view section, bool final) const override {
    ParsedSection out;
    size_t pos = 0;
    while (true) {
      if (starts_with_at(section, pos, kToolCalls)) pos += kToolCalls.size();
      pos = skip_space(section, pos);
      if (pos >= section.size()) {
        if (final && out.calls.empty()) out.valid = false;
        break;
      }
      size_t end = std::string_view::npos;
      if (section[pos] == '[') {
        end = json_value_end(section, pos);
        if (end == std::string_view::npos) {
          if (final) fail_or_keep(section.substr(pos), &out);
          break;
        }
        const nlohmann::ordered_json list = nlohmann::ordered_json::parse(section.substr(pos, end - pos), nullptr, false);
        bool ok = list.is_array() && !list.empty();
        std::vector<ToolCall> calls;
        for (size_t i = 0; ok && i < list.size(); ++i) {
          ToolCall call;
          ok = call_from_json(list[i].dump(), &call);
          calls.push_back(std::move(call));
        }
        if (!ok) {
          fail_or_keep(section.substr(pos), &out);
          break;
        }
        for (ToolCall& call : calls) out.calls.push_back(std::move(call));
      } else {
        const size_t args = section.find(kArgs, pos);
        if (args == std::string_view::npos || (end = json_value_end(section, args + kArgs.size())) ==
                                                  std::string_view::npos) {
          if (final) fail_or_keep(section.substr(pos), &out);
          break;
        }
        ToolCall call;
        const size_t json = args + kArgs.size();
        if (!call_from_parts(section.substr(pos, args - pos), section.substr(json, end - json), &call)) {
          fail_or_keep(section.substr(pos), &out);
          break;
        }
        out.calls.push_back(std::move(call));
      }
      pos = skip_space(section, end);
      if (starts_with_at(section, pos, kToolCalls)) continue;
      // Text after the calls is content once the output has ended (until then it may still
      // become another [TOOL_CALLS]).
      if (final && pos < section.size()) out.content += section.substr(pos);
      break;
    }
    return out;
  }

 private:
  // Before the first call a malformed section is not Mistral tool calls; after one it is content.
  static void fail_or_keep(std::string_view rest, ParsedSection* out) {
    if (out->calls.empty()) out->valid = false;
    else out->content += rest;
  }
};

}  // namespace

std::unique_ptr<ToolCallParser> make_mistral_parser() { return std::make_unique<MistralParser>(); }

}  // namespace longbow::tools
