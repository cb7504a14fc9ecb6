// ChatRequest: what a chat prompt is rendered from (the model's Jinja template, see
// model/tokenizer/chat/chat_template.h), gathered from a REST body by the front ends.
#pragma once

#include <nlohmann/json.hpp>

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

// Field `key` of the JSON object `body_text`, parsed keeping key order (null when absent or not an
// object): tools and chat_template_kwargs reach the template in the order the client wrote them
// (tojson prints them), as Python dicts keep it. Call after the body passed the bounded parse.
nlohmann::ordered_json ordered_field(std::string_view body_text, const char* key);

// OpenAI messages adapted to what a template expects (see ServedModel): an assistant's null content
// becomes "" unless `null_content_as_null`; tool_calls' arguments JSON texts become objects when
// `arguments_as_objects` (texts that are not JSON objects stay as sent).
void adapt_messages_to_template(nlohmann::ordered_json* messages, bool arguments_as_objects, bool null_content_as_null);

// chat_template_kwargs of a chat-completions body (absent: empty); INVALID_ARGUMENT unless an object.
StatusOr<nlohmann::ordered_json> parse_chat_template_kwargs(const nlohmann::json& body);

}  // namespace longbow
