#include "model/tokenizer/hf/pattern.h"

#include <fmt/format.h>

namespace longbow::hf {

StatusOr<Pattern> Pattern::from_json(const nlohmann::json& j, std::string_view where) {
  Pattern pattern;
  if (j.is_object() && j.contains("String") && j["String"].is_string()) {
    pattern.literal_ = j["String"].get<std::string>();
    if (pattern.literal_.empty()) return invalid_argument(fmt::format("{}: empty String pattern", where));
    return pattern;
  }
  if (j.is_object() && j.contains("Regex") && j["Regex"].is_string()) {
    const std::string& source = j["Regex"].get_ref<const std::string&>();
    pattern.known_ = KnownSplit::find(source);
    if (pattern.known_.has_value()) return pattern;
    StatusOr<Regex> regex = Regex::compile(source);
    if (!regex.ok()) return regex.status().with_context(std::string(where));
    pattern.regex_ = std::move(regex).value();
    return pattern;
  }
  return invalid_argument(fmt::format("{}: a pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}", where));
}

Pattern Pattern::literal(std::string text) {
  Pattern pattern;
  pattern.literal_ = std::move(text);
  return pattern;
}

std::vector<std::pair<size_t, size_t>> Pattern::find_all(std::string_view text) const {
  if (known_.has_value()) return known_->find_all(text);
  if (regex_.has_value()) return regex_->find_all(text);
  std::vector<std::pair<size_t, size_t>> matches;
  for (size_t at = text.find(literal_); at != std::string_view::npos; at = text.find(literal_, at + literal_.size())) {
    matches.emplace_back(at, at + literal_.size());
  }
  return matches;
}

std::string Pattern::replace_all(std::string_view text, std::string_view content) const {
  std::string out;
  size_t previous = 0;
  for (const auto& [begin, end] : find_all(text)) {
    out.append(text.substr(previous, begin - previous));
    out.append(content);
    previous = end;
  }
  if (previous == 0) return std::string(text);
  out.append(text.substr(previous));
  return out;
}

}  // namespace longbow::hf
