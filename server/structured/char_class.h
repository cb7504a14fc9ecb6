// Character classes over Unicode code points, lowered to UTF-8 byte-sequence grammars. The regex
// translator ([a-z], \d, ., negations) and the JSON string rules use them.
#pragma once

#include <cstdint>
#include <vector>

#include "server/structured/grammar.h"

namespace longbow::structured {

inline constexpr uint32_t kMaxCodePoint = 0x10FFFF;

// A set of code points as sorted, disjoint, non-adjacent closed ranges.
class CharClass {
 public:
  CharClass() = default;
  static CharClass any();  // every scalar value (surrogates excluded)

  void add(uint32_t lo, uint32_t hi);
  void add(const CharClass& other);
  CharClass complement() const;  // within any()
  CharClass minus(const CharClass& other) const;
  bool empty() const { return ranges_.empty(); }
  bool contains(uint32_t cp) const;
  const std::vector<std::pair<uint32_t, uint32_t>>& ranges() const { return ranges_; }

  // The UTF-8 encodings of exactly these code points (shortest form only): an alternation of
  // byte-class sequences, one to four bytes long.
  ExprPtr to_utf8_expr() const;

 private:
  void normalize();
  std::vector<std::pair<uint32_t, uint32_t>> ranges_;
};

}  // namespace longbow::structured
