// ChatRequest: what a chat prompt is rendered from (the model's Jinja template, see
// model/tokenizer/chat/chat_template.h), gathered from a REST body by the front ends.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "common/status.h"

namespace longbow {

// One message as the OpenAI request parser validates it (role and text content).
struct ChatMessage {
  std::string role;  // "system", "user" or "assistant" ("developer" is parsed as "system")
  std::string content;
};

struct ChatRequest {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();  // as the template sees them
  nlohmann::ordered_json tools;      // null: none
  nlohmann::ordered_json documents;  // null: none
  bool add_generation_prompt = true;
  nlohmann::ordered_json chat_template_kwargs = nlohmann::ordered_json::object();

  static ChatRequest from_messages(const std::vector<ChatMessage>& messages);
};

// The chat fields of a vLLM-style body (/tokenize with "messages"): messages (objects with a string
// role; passed to the template as sent), add_generation_prompt (default true), tools, documents and
// chat_template_kwargs (an object). INVALID_ARGUMENT naming the field; *param gets its name.
StatusOr<ChatRequest> parse_chat_fields(const nlohmann::json& body, std::string* param);

// chat_template_kwargs of a chat-completions body (absent: empty); INVALID_ARGUMENT unless an object.
StatusOr<nlohmann::ordered_json> parse_chat_template_kwargs(const nlohmann::json& body);

}  // namespace longbow
