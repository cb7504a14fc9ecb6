// Regex: an Oniguruma pattern (the engine Hugging Face tokenizers itself uses, with the same Ruby
// syntax and UTF-8 encoding), so \p{L}, (?i:...) and look-ahead mean exactly what they mean there.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace longbow::hf {

class Regex {
 public:
  // INVALID_ARGUMENT with Oniguruma's message when `pattern` does not compile.
  static StatusOr<Regex> compile(std::string_view pattern);

  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;
  ~Regex();

  // Every non-overlapping match in `text` as [begin, end) byte offsets, left to right. After an
  // empty match the search resumes one character later (as the onig crate's find_iter).
  // Thread-safe: each call uses its own match region.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

 private:
  struct Impl;
  explicit Regex(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace longbow::hf
