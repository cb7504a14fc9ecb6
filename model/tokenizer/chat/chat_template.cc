#include "model/tokenizer/chat/chat_template.h"

#include <fmt/format.h>

#include "model/tokenizer/chat/jinja_builtins.h"
#include "model/tokenizer/chat/jinja_interpreter.h"
#include "model/tokenizer/chat/jinja_parser.h"

namespace longbow {

StatusOr<ChatTemplate> ChatTemplate::parse(const std::string& source) {
  ChatTemplate t;
  t.source_ = std::make_shared<const std::string>(source);
  try {
    t.body_ = std::make_shared<const jinja::Body>(jinja::parse_template(source));
  } catch (const jinja::TemplateError& e) {
    return invalid_argument(fmt::format("chat template: {}", e.what()));
  }
  return t;
}

StatusOr<std::string> ChatTemplate::render(const ChatTemplateInput& input, const ChatTemplateTokens& tokens) const {
  using jinja::Value;
  // Converting the input throws too (a value nested past the interpreter's limit).
  try {
    jinja::ValueDict globals = jinja::global_functions(now_);
    globals.set("messages", Value::from_json(input.messages));
    globals.set("tools", Value::from_json(input.tools));
    globals.set("documents", Value::from_json(input.documents));
    globals.set("add_generation_prompt", Value(input.add_generation_prompt));
    auto special = [&](const char* name, const std::optional<std::string>& token) {
      if (token) globals.set(name, Value(*token));
    };
    special("bos_token", tokens.bos_token);
    special("eos_token", tokens.eos_token);
    special("unk_token", tokens.unk_token);
    special("pad_token", tokens.pad_token);
    if (input.kwargs.is_object()) {
      for (const auto& [key, value] : input.kwargs.items()) globals.set(key, Value::from_json(value));
    }
    return jinja::render_template(*body_, globals);
  } catch (const jinja::TemplateError& e) {
    return invalid_argument(fmt::format("chat template: {}", e.what()));
  }
}

}  // namespace longbow
