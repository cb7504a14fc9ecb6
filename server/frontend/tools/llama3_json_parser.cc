// Llama 3.1-3.3 JSON tool calls: the assistant turn is
//   [<|python_tag|>]{"name": "f", "parameters": {...}}
// optionally several separated by "; ". <|python_tag|> is a special token, skipped when decoding,
// so a turn that starts with a JSON object is a candidate too; one that is not a call stays content.
#include "server/frontend/tools/parsers.h"

namespace longbow::tools {
namespace {

constexpr std::string_view kPythonTag = "<|python_tag|>";

class Llama3JsonParser : public ToolCallParser {
 public:
  std::string_view name() const override { return "llama3_json"; }

  size_t find_start(std::string_view text, size_t* held) const override {
    return find_marker_or_leading_json(text, kPythonTag, '{', held);
  }

  ParsedSection parse_section(std::string_view section, bool final) const override {
    ParsedSection out;
    size_t pos = starts_with_at(section, 0, kPythonTag) ? kPythonTag.size() : 0;
    while (true) {
      const size_t begin = skip_space(section, pos);
      const size_t end = json_value_end(section, begin);
      if (end == std::string_view::npos) {
        if (final) {
          if (out.calls.empty()) out.valid = false;
          else if (!is_blank(section.substr(pos))) out.content += section.substr(pos);
        }
        break;
      }
      ToolCall call;
      if (!call_from_json(section.substr(begin, end - begin), &call)) {
        if (out.calls.empty()) out.valid = false;
        else if (final) out.content += section.substr(pos);
        break;
      }
      out.calls.push_back(std::move(call));
      pos = skip_space(section, end);
      if (pos < section.size() && section[pos] == ';') {
        ++pos;
        continue;
      }
      if (final && pos < section.size()) out.content += section.substr(pos);
      break;
    }
    return out;
  }
};

}  // namespace

std::unique_ptr<ToolCallParser> make_llama3_json_parser() { return std::make_unique<Llama3JsonParser>(); }

}  // namespace longbow::tools
