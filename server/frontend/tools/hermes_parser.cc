// Hermes-style tool calls (Qwen 2.5, Qwen 3, NousResearch Hermes): each call is
//   <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>
// and a turn may hold several, separated by whitespace. <tool_call> is an ordinary added token in
// these vocabularies, so it survives detokenization.
#include "server/frontend/tools/parsers.h"

namespace longbow::tools {
namespace {

constexpr std::string_view kOpen = "<tool_call>";
constexpr std::string_view kClose = "</tool_call>";

class HermesParser : public ToolCallParser {
 public:
  std::string_view name() const override { return "hermes"; }

  size_t find_start(std::string_view text, size_t* held) const override {
    const size_t start = text.find(kOpen);
    *held = start == std::string_view::npos ? partial_marker(text, kOpen) : 0;
    return start;
  }

  ParsedSection parse_section(std::string_view section, bool final) const override {
    ParsedSection out;
    size_t pos = 0;  // first byte not yet accounted for
    while (true) {
      const size_t open = section.find(kOpen, pos);
      if (open == std::string_view::npos) {
        // Text after the last call: content once the output has ended (until then it may still
        // become the start of another call).
        if (final && !is_blank(section.substr(pos))) out.content += section.substr(pos);
        break;
      }
      if (!is_blank(section.substr(pos, open - pos))) out.content += section.substr(pos, open - pos);
      const size_t body = open + kOpen.size();
      const size_t close = section.find(kClose, body);
      // An unterminated last call (the model stopped before </tool_call>) counts if its JSON is whole.
      const std::string_view json =
          close == std::string_view::npos ? section.substr(body) : section.substr(body, close - body);
      if (close == std::string_view::npos && !final) break;
      ToolCall call;
      if (!call_from_json(json, &call)) {
        if (out.calls.empty()) out.valid = false;
        else out.content += section.substr(open);
        break;
      }
      out.calls.push_back(std::move(call));
      if (close == std::string_view::npos) break;
      pos = close + kClose.size();
    }
    return out;
  }
};

}  // namespace

std::unique_ptr<ToolCallParser> make_hermes_parser() { return std::make_unique<HermesParser>(); }

}  // namespace longbow::tools
