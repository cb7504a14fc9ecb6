// Pattern: what a tokenizer.json Split pre-tokenizer or Replace step looks for, either
// {"String": s} (a literal) or {"Regex": r} (an Oniguruma regex, or its hand-written KnownSplit
// equivalent when r is one of those patterns).
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "model/tokenizer/hf/known_split.h"
#include "model/tokenizer/hf/regex.h"

namespace longbow::hf {

class Pattern {
 public:
  // `where` names the JSON location in error messages.
  static StatusOr<Pattern> from_json(const nlohmann::json& j, std::string_view where);
  static Pattern literal(std::string text);

  // Non-overlapping matches, left to right, as [begin, end) byte offsets.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

  // Every match replaced by `content`.
  std::string replace_all(std::string_view text, std::string_view content) const;

 private:
  std::string literal_;  // used when neither known_ nor regex_ is set
  std::optional<KnownSplit> known_;
  std::optional<Regex> regex_;
};

}  // namespace longbow::hf
