#include "server/frontend/chat_prompt.h"

#include <fmt/format.h>

namespace longbow {

using nlohmann::json;
using nlohmann::ordered_json;

const ordered_json& OrderedBody::field(std::string_view key) const {
  static const ordered_json kNull;
  if (!document_) document_ = ordered_json::parse(text_, nullptr, false);
  if (!document_->is_object()) return kNull;
  auto it = document_->find(key);
  return it == document_->end() ? kNull : *it;
}

void adapt_messages_to_template(ordered_json* messages, bool arguments_as_objects, bool null_content_as_null) {
  for (ordered_json& message : *messages) {
    if (!message.is_object()) continue;
    if (auto content = message.find("content"); content != message.end() && content->is_null() && !null_content_as_null) {
      *content = "";
    }
    auto calls = message.find("tool_calls");
    if (!arguments_as_objects || calls == message.end() || !calls->is_array()) continue;
    for (ordered_json& call : *calls) {
      if (!call.is_object() || !call.contains("function") || !call["function"].is_object()) continue;
      ordered_json& arguments = call["function"]["arguments"];
      if (!arguments.is_string()) continue;
      ordered_json parsed = ordered_json::parse(arguments.get<std::string>(), nullptr, false);
      if (!parsed.is_discarded() && parsed.is_object()) arguments = std::move(parsed);
    }
  }
}

StatusOr<ordered_json> parse_chat_template_kwargs(const json& body) {
  auto kwargs = body.find("chat_template_kwargs");
  if (kwargs == body.end() || kwargs->is_null()) return ordered_json::object();
  if (!kwargs->is_object()) return invalid_argument("chat_template_kwargs must be an object");
  return ordered_json::parse(kwargs->dump());
}

StatusOr<ChatRequest> parse_chat_fields(const json& body, std::string_view body_text, std::string* param) {
  ChatRequest request;
  *param = "messages";
  auto messages = body.find("messages");
  if (messages == body.end() || !messages->is_array() || messages->empty()) {
    return invalid_argument("messages must be a non-empty list");
  }
  for (size_t i = 0; i < messages->size(); ++i) {
    const json& m = (*messages)[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      *param = fmt::format("messages[{}].role", i);
      return invalid_argument(fmt::format("messages[{}] must be an object with a string role", i));
    }
    ordered_json message = ordered_json::parse(m.dump());
    if (message["role"] == "developer") message["role"] = "system";
    request.messages.push_back(std::move(message));
  }
  if (auto gen = body.find("add_generation_prompt"); gen != body.end() && !gen->is_null()) {
    *param = "add_generation_prompt";
    if (!gen->is_boolean()) return invalid_argument("add_generation_prompt must be a boolean");
    request.add_generation_prompt = gen->get<bool>();
  }
  const OrderedBody ordered(body_text);
  for (const char* key : {"tools", "documents"}) {
    auto list = body.find(key);
    if (list == body.end() || list->is_null()) continue;
    *param = key;
    if (!list->is_array()) return invalid_argument(fmt::format("{} must be a list", key));
    (key == std::string("tools") ? request.tools : request.documents) = ordered.field(key);
  }
  *param = "chat_template_kwargs";
  ASSIGN_OR_RETURN(request.chat_template_kwargs, parse_chat_template_kwargs(body));
  if (!request.chat_template_kwargs.empty()) request.chat_template_kwargs = ordered.field("chat_template_kwargs");
  param->clear();
  return request;
}

}  // namespace longbow
