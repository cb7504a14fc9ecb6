// DeepSeek tool calls. The section is
//   <｜tool▁calls▁begin｜> call ... <｜tool▁calls▁end｜>
// and each call is, in V3 / R1:
//   <｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\n{...}\n```<｜tool▁call▁end｜>
// and in V3.1 / V3.2:
//   <｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{...}<｜tool▁call▁end｜>
// The markers are ordinary (non-special) added tokens, so they survive detokenization.
#include "server/frontend/tools/parsers.h"

namespace longbow::tools {
namespace {

constexpr std::string_view kCallsBegin = "<\uff5ctool\u2581calls\u2581begin\uff5c>";
constexpr std::string_view kCallsEnd = "<\uff5ctool\u2581calls\u2581end\uff5c>";
constexpr std::string_view kCallBegin = "<\uff5ctool\u2581call\u2581begin\uff5c>";
constexpr std::string_view kCallEnd = "<\uff5ctool\u2581call\u2581end\uff5c>";
constexpr std::string_view kSep = "<\uff5ctool\u2581sep\uff5c>";

// NAME\n```json\n{...}\n``` (V3) or {...} (V3.1) after the separator.
bool parse_call(std::string_view head, std::string_view body, ToolCall* call) {
  if (head == "function") {
    const size_t newline = body.find('\n');
    if (newline == std::string_view::npos) return false;
    std::string_view name = body.substr(0, newline);
    std::string_view args = body.substr(newline + 1);
    const size_t fence = args.find("```json");
    if (fence != std::string_view::npos) args = args.substr(fence + 7);
    if (const size_t close = args.rfind("```"); close != std::string_view::npos) args = args.substr(0, close);
    return call_from_parts(name, args, call);
  }
  return call_from_parts(head, body, call);
}

class DeepSeekV3Parser : public ToolCallParser {
 public:
  std::string_view name() const override { return "deepseek_v3"; }

  size_t find_start(std::string_view text, size_t* held) const override {
    const size_t start = text.find(kCallsBegin);
    *held = start == std::string_view::npos ? partial_marker(text, kCallsBegin) : 0;
    return start;
  }

  ParsedSection parse_section(std::string_view section, bool final) const override {
    ParsedSection out;
    size_t pos = kCallsBegin.size();
    while (true) {
      pos = skip_space(section, pos);
      if (starts_with_at(section, pos, kCallsEnd)) {
        if (final && !is_blank(section.substr(pos + kCallsEnd.size()))) {
          out.content += section.substr(pos + kCallsEnd.size());
        }
        break;
      }
      if (!starts_with_at(section, pos, kCallBegin)) {
        if (final && pos < section.size()) {
          if (out.calls.empty()) out.valid = false;
          else out.content += section.substr(pos);
        }
        break;
      }
      const size_t head = pos + kCallBegin.size();
      const size_t end = section.find(kCallEnd, head);
      if (end == std::string_view::npos) {
        if (final && out.calls.empty()) out.valid = false;
        else if (final) out.content += section.substr(pos);
        break;
      }
      const size_t sep = section.substr(0, end).find(kSep, head);
      ToolCall call;
      if (sep == std::string_view::npos ||
          !parse_call(section.substr(head, sep - head), section.substr(sep + kSep.size(), end - sep - kSep.size()),
                      &call)) {
        if (out.calls.empty()) out.valid = false;
        else if (final) out.content += section.substr(pos);
        break;
      }
      out.calls.push_back(std::move(call));
      pos = end + kCallEnd.size();
    }
    return out;
  }
};

}  // namespace

std::unique_ptr<ToolCallParser> make_deepseek_v3_parser() { return std::make_unique<DeepSeekV3Parser>(); }

}  // namespace longbow::tools
