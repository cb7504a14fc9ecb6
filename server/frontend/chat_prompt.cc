#include "server/frontend/chat_prompt.h"

#include <fmt/format.h>

namespace longbow {

using nlohmann::json;
using nlohmann::ordered_json;

ChatRequest ChatRequest::from_messages(const std::vector<ChatMessage>& messages) {
  ChatRequest request;
  for (const ChatMessage& m : messages) request.messages.push_back(ordered_json{{"role", m.role}, {"content", m.content}});
  return request;
}

StatusOr<ordered_json> parse_chat_template_kwargs(const json& body) {
  auto kwargs = body.find("chat_template_kwargs");
  if (kwargs == body.end() || kwargs->is_null()) return ordered_json::object();
  if (!kwargs->is_object()) return invalid_argument("chat_template_kwargs must be an object");
  return ordered_json::parse(kwargs->dump());
}

StatusOr<ChatRequest> parse_chat_fields(const json& body, std::string* param) {
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
  for (const char* key : {"tools", "documents"}) {
    auto list = body.find(key);
    if (list == body.end() || list->is_null()) continue;
    *param = key;
    if (!list->is_array()) return invalid_argument(fmt::format("{} must be a list", key));
    (key == std::string("tools") ? request.tools : request.documents) = ordered_json::parse(list->dump());
  }
  *param = "chat_template_kwargs";
  ASSIGN_OR_RETURN(request.chat_template_kwargs, parse_chat_template_kwargs(body));
  param->clear();
  return request;
}

}  // namespace longbow
