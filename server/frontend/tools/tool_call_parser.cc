#include "server/frontend/tools/tool_call_parser.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>

#include "server/frontend/tools/parsers.h"

namespace longbow::tools {

using nlohmann::ordered_json;

StatusOr<std::unique_ptr<ToolCallParser>> make_tool_call_parser(std::string_view name) {
  if (name == "hermes") return make_hermes_parser();
  if (name == "llama3_json") return make_llama3_json_parser();
  if (name == "deepseek_v3") return make_deepseek_v3_parser();
  if (name == "mistral") return make_mistral_parser();
  return invalid_argument(
      fmt::format("unknown tool-call parser \"{}\" (hermes, llama3_json, deepseek_v3, mistral)", name));
}

std::unique_ptr<ToolCallParser> detect_tool_call_parser(std::string_view source) {
  auto has = [&](std::string_view s) { return source.find(s) != std::string_view::npos; };
  if (has("<tool_call>")) return make_hermes_parser();
  if (has("tool\u2581calls\u2581begin")) return make_deepseek_v3_parser();
  if (has("[TOOL_CALLS]")) return make_mistral_parser();
  if (has("<|python_tag|>") || (has("tools") && has("\"parameters\""))) return make_llama3_json_parser();
  return nullptr;
}

SplitOutput split_tool_calls(const ToolCallParser& parser, std::string_view text) {
  SplitOutput out;
  size_t held = 0;
  const size_t start = parser.find_start(text, &held);
  if (start == std::string_view::npos) {
    out.content = std::string(text);
    return out;
  }
  ParsedSection section = parser.parse_section(text.substr(start), /*final=*/true);
  if (!section.valid || section.calls.empty()) {
    out.content = std::string(text);
    return out;
  }
  out.content = std::string(text.substr(0, start)) + section.content;
  out.calls = std::move(section.calls);
  return out;
}

ToolCallStream::Delta ToolCallStream::feed(std::string_view text) {
  text_.append(text);
  return advance(false);
}

ToolCallStream::Delta ToolCallStream::finish() { return advance(true); }

ToolCallStream::Delta ToolCallStream::advance(bool final) {
  Delta delta;
  auto release_rest = [&] {
    delta.content += text_.substr(content_emitted_);
    content_emitted_ = text_.size();
  };
  if (plain_) {
    release_rest();
    return delta;
  }
  if (section_start_ == std::string::npos) {
    if (content_emitted_ == text_.size() && !final) return delta;
    size_t held = 0;
    const size_t start = parser_.find_start(text_, &held);
    if (start == std::string::npos) {
      const size_t release = final ? text_.size() : text_.size() - std::min(held, text_.size());
      if (release > content_emitted_) {
        delta.content = text_.substr(content_emitted_, release - content_emitted_);
        content_emitted_ = release;
      }
      return delta;
    }
    delta.content = text_.substr(content_emitted_, start - content_emitted_);
    content_emitted_ = start;
    section_start_ = start;
  }
  ParsedSection section = parser_.parse_section(std::string_view(text_).substr(section_start_), final);
  if (!section.valid || (final && section.calls.empty())) {
    // Not tool calls after all (parsers only call a section invalid before its first call).
    plain_ = true;
    release_rest();
    return delta;
  }
  for (size_t i = calls_emitted_; i < section.calls.size(); ++i) delta.calls.push_back(std::move(section.calls[i]));
  calls_emitted_ = std::max(calls_emitted_, section.calls.size());
  if (section.content.size() > section_content_emitted_) {
    delta.content += section.content.substr(section_content_emitted_);
    section_content_emitted_ = section.content.size();
  }
  if (final) content_emitted_ = text_.size();
  return delta;
}

size_t json_value_end(std::string_view text, size_t pos) {
  pos = skip_space(text, pos);
  if (pos >= text.size()) return std::string_view::npos;
  const char first = text[pos];
  if (first != '{' && first != '[' && first != '"') return std::string_view::npos;
  int depth = 0;
  bool in_string = false;
  for (size_t i = pos; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
        if (depth == 0) return i + 1;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) return i + 1;
    }
  }
  return std::string_view::npos;
}

namespace {

bool arguments_text(const ordered_json& value, std::string* out) {
  if (value.is_object()) {
    *out = value.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
    return true;
  }
  if (value.is_string()) {  // some models write the arguments as a JSON string
    ordered_json inner = ordered_json::parse(value.get<std::string>(), nullptr, false);
    return !inner.is_discarded() && arguments_text(inner, out);
  }
  return false;
}

}  // namespace

bool call_from_json(std::string_view json_text, ToolCall* call) {
  ordered_json value = ordered_json::parse(json_text, nullptr, false);
  if (value.is_discarded() || !value.is_object()) return false;
  auto name = value.find("name");
  if (name == value.end() || !name->is_string() || name->get<std::string>().empty()) return false;
  auto arguments = value.find("arguments");
  if (arguments == value.end()) arguments = value.find("parameters");
  ToolCall parsed;
  parsed.name = name->get<std::string>();
  if (arguments == value.end()) {
    parsed.arguments = "{}";
  } else if (!arguments_text(*arguments, &parsed.arguments)) {
    return false;
  }
  *call = std::move(parsed);
  return true;
}

size_t skip_space(std::string_view text, size_t pos) {
  while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\n' || text[pos] == '\t' || text[pos] == '\r')) ++pos;
  return pos;
}

bool starts_with_at(std::string_view text, size_t pos, std::string_view prefix) {
  return pos <= text.size() && text.substr(pos).substr(0, prefix.size()) == prefix;
}

size_t partial_marker(std::string_view text, std::string_view marker) {
  for (size_t n = std::min(text.size(), marker.size() - 1); n > 0; --n) {
    if (text.substr(text.size() - n) == marker.substr(0, n)) return n;
  }
  return 0;
}

bool call_from_parts(std::string_view name, std::string_view arguments, ToolCall* call) {
  while (!name.empty() && (name.back() == ' ' || name.back() == '\n')) name.remove_suffix(1);
  while (!name.empty() && (name.front() == ' ' || name.front() == '\n')) name.remove_prefix(1);
  if (name.empty()) return false;
  ordered_json value = ordered_json::parse(arguments, nullptr, false);
  ToolCall parsed;
  parsed.name = std::string(name);
  if (value.is_discarded() || !arguments_text(value, &parsed.arguments)) return false;
  *call = std::move(parsed);
  return true;
}

bool is_blank(std::string_view text) { return skip_space(text, 0) == text.size(); }

size_t find_marker_or_leading_json(std::string_view text, std::string_view marker, char open, size_t* held) {
  *held = 0;
  if (const size_t at = text.find(marker); at != std::string_view::npos) return at;
  const size_t first = skip_space(text, 0);
  if (first == text.size()) {  // only whitespace so far: it may still open a call
    *held = text.size();
    return std::string_view::npos;
  }
  if (text[first] == open) return first;
  *held = partial_marker(text, marker);
  return std::string_view::npos;
}

}  // namespace longbow::tools
