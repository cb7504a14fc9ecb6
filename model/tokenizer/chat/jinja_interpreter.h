// Interpreter: renders a parsed template against a context of variables (jinja2 semantics with
// the chat-template environment: for-loops open a scope, if does not; namespace() attributes are
// the way out of a loop; macros see the globals and their arguments; undefined values print as "").
#pragma once

#include <string>

#include "model/tokenizer/chat/jinja_ast.h"
#include "model/tokenizer/chat/jinja_value.h"

namespace longbow::jinja {

// Throws TemplateError; `globals` holds the context variables and global functions.
std::string render_template(const Body& body, const ValueDict& globals);

}  // namespace longbow::jinja
