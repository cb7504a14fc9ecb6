// ChatRequest: what a chat prompt is rendered from (the model's Jinja template, see
// model/tokenizer/chat/chat_template.h), gathered from a REST body by the front ends.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace longbow {

struct ChatRequest {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();  // as the template sees them
  nlohmann::ordered_json tools;      // null: none
  nlohmann::ordered_json documents;  // null: none
  bool add_generation_prompt = true;
  nlohmann::ordered_json chat_template_kwargs = nlohmann::ordered_json::object();
};

// The chat fields of a vLLM-style body (/tokenize with "messages"): messages (objects with a string
// role; passed to the template as sent), add_generation_prompt (default true), tools, documents and
// chat_template_kwargs (an object). INVALID_ARGUMENT naming the field; *param gets its name.
// `body_text` is the body's text (for the key order of tools).
StatusOr<ChatRequest> parse_chat_fields(const nlohmann::json& body, std::string_view body_text, std::string* param);

// A request body re-read keeping key order, parsed at most once and only when a field is asked for:
// tools and chat_template_kwargs reach the template in the order the client wrote them (tojson
// prints them), as Python dicts keep it, and a JSON schema's properties are produced in its order.
// Use after the body passed the bounded parse; `text` must outlive this.
class OrderedBody {
 public:
  explicit OrderedBody(std::string_view text) : text_(text) {}
  // body[key] (null when absent or when the body is not an object).
  const nlohmann::ordered_json& field(std::string_view key) const;

 private:
  std::string_view text_;
  mutable std::optional<nlohmann::ordered_json> document_;
};

// OpenAI messages adapted to what a template expects (see ServedModel): an assistant's null content
// becomes "" unless `null_content_as_null`; tool_calls' arguments JSON texts become objects when
// `arguments_as_objects` (texts that are not JSON objects stay as sent).
void adapt_messages_to_template(nlohmann::ordered_json* messages, bool arguments_as_objects, bool null_content_as_null);

// chat_template_kwargs of a chat-completions body (absent: empty); INVALID_ARGUMENT unless an object.
StatusOr<nlohmann::ordered_json> parse_chat_template_kwargs(const nlohmann::json& body);

}  // namespace longbow
