// The guided-decoding request kinds of vLLM besides JSON: guided_regex (the whole output matches
// the regex) and guided_choice (the output is exactly one of the strings).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "server/structured/grammar.h"

namespace longbow::structured {

StatusOr<Grammar> regex_grammar(std::string_view pattern);
StatusOr<Grammar> choice_grammar(const std::vector<std::string>& choices);

}  // namespace longbow::structured
