// KnownSplit: hand-written equivalents of the Split regexes that well-known tokenizer.json files
// use (Llama 3, Qwen 2/3, gpt-oss's o200k, DeepSeek-V3's three). One is chosen only when a
// pattern string equals a known one byte for byte; its matches are then exactly Oniguruma's for
// that regex (tests/unit/tokenizer/known_split_test.cc checks this differentially), at a fraction
// of the cost. Any other pattern goes to Oniguruma.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace longbow::hf {

class KnownSplit {
 public:
  // The matcher for `regex`, or nullopt when it is not one of the known patterns.
  static std::optional<KnownSplit> find(std::string_view regex);
  // Every known pattern, for tests.
  static std::vector<std::string_view> patterns();

  // As Regex::find_all: every non-overlapping match in `text` (valid UTF-8), left to right.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

 private:
  // The end of the match that starts at `pos` (< text.size()), or `pos` when none does; no
  // known pattern matches the empty string.
  using MatchAt = size_t (*)(std::string_view text, size_t pos);
  explicit KnownSplit(MatchAt match_at) : match_at_(match_at) {}
  MatchAt match_at_;
};

}  // namespace longbow::hf
