// Parser: Jinja source -> syntax tree. Statements: if/elif/else, for (with tuple targets, an
// "if" filter, else and loop controls), set (names, tuples, namespace attributes, blocks), macro,
// raw, generation; expressions with Jinja's precedence (filters and tests bind tighter than
// arithmetic). Anything else is a TemplateError naming the construct and its line.
#pragma once

#include <string_view>

#include "model/tokenizer/chat/jinja_ast.h"

namespace longbow::jinja {

Body parse_template(std::string_view source);

}  // namespace longbow::jinja
