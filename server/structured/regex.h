// Regular expressions (the common ECMAScript/PCRE subset) to grammar expressions: literals (UTF-8),
// escapes (\d \w \s and negations, \n \t \r \f \v \xHH \uHHHH, escaped punctuation), classes with
// ranges and negation, ., groups ((...), (?:...), named), alternation, ? * + {m} {m,} {m,n} (lazy
// forms have the same language), ^ at the start and $ at the end. Backreferences, lookaround and
// word boundaries are refused with a message naming them.
#pragma once

#include <string_view>

#include "common/status.h"
#include "server/structured/grammar.h"

namespace longbow::structured {

struct RegexOptions {
  // The match is the content of a JSON string: characters that JSON must escape (", \, controls)
  // are produced in their escaped form.
  bool json_string = false;
  // Unanchored ends match any text there (JSON Schema `pattern` is a search, not a full match).
  bool search = false;
  // Unbounded repetitions (*, +, {m,}) are capped at this many (-1: left unbounded).
  int max_repeat = -1;
};

StatusOr<ExprPtr> regex_to_expr(std::string_view pattern, const RegexOptions& options);

}  // namespace longbow::structured
