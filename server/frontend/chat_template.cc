#include "server/frontend/chat_template.h"

#include <cstddef>
#include <utility>

namespace longbow {
namespace {

constexpr std::string_view kKnownFamilies = "plain, chatml, llama2, llama3, mistral";

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// Python's str.strip() over ASCII whitespace, which the Llama templates apply to contents.
std::string strip(std::string_view text) {
  constexpr std::string_view kSpace = " \t\n\r\f\v";
  size_t begin = text.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return "";
  size_t end = text.find_last_not_of(kSpace);
  return std::string(text.substr(begin, end - begin + 1));
}

class PartWriter {
 public:
  void text(std::string_view text) {
    if (text.empty()) return;
    if (!parts_.empty() && !parts_.back().special) {
      parts_.back().text += text;
    } else {
      parts_.push_back(PromptPart{false, std::string(text)});
    }
  }
  void special(std::string_view piece) { parts_.push_back(PromptPart{true, std::string(piece)}); }
  std::vector<PromptPart> take() { return std::move(parts_); }

 private:
  std::vector<PromptPart> parts_;
};

Status check_roles(const std::vector<ChatMessage>& messages) {
  if (messages.empty()) return invalid_argument("messages must hold at least one message");
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& role = messages[i].role;
    if (role != "system" && role != "user" && role != "assistant") {
      return invalid_argument("messages[" + std::to_string(i) + "].role \"" + role +
                              "\" is not supported (system, developer, user, assistant)");
    }
  }
  return Status::Ok();
}

// Llama-2 and Mistral: an optional leading system message, then user/assistant alternating from user.
Status check_alternating(const std::vector<ChatMessage>& messages, size_t first) {
  for (size_t i = first; i < messages.size(); ++i) {
    const bool want_user = (i - first) % 2 == 0;
    if ((messages[i].role == "user") != want_user || messages[i].role == "system") {
      return invalid_argument("messages[" + std::to_string(i) +
                              "]: this model's chat template needs user and assistant turns alternating, "
                              "starting with user, after at most one leading system message");
    }
  }
  return Status::Ok();
}

std::vector<PromptPart> render_plain(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  PartWriter out;
  for (const ChatMessage& m : messages) {
    const char* label = m.role == "system" ? "System: " : m.role == "user" ? "User: " : "Assistant: ";
    out.text(label);
    out.text(m.content);
    out.text("\n");
  }
  if (add_generation_prompt) out.text("Assistant:");
  return out.take();
}

std::vector<PromptPart> render_chatml(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  PartWriter out;
  for (const ChatMessage& m : messages) {
    out.special("<|im_start|>");
    out.text(m.role + "\n" + m.content);
    out.special("<|im_end|>");
    out.text("\n");
  }
  if (add_generation_prompt) {
    out.special("<|im_start|>");
    out.text("assistant\n");
  }
  return out.take();
}

std::vector<PromptPart> render_llama3(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  PartWriter out;
  out.special("<|begin_of_text|>");
  for (const ChatMessage& m : messages) {
    out.special("<|start_header_id|>");
    out.text(m.role);
    out.special("<|end_header_id|>");
    out.text("\n\n" + strip(m.content));
    out.special("<|eot_id|>");
  }
  if (add_generation_prompt) {
    out.special("<|start_header_id|>");
    out.text("assistant");
    out.special("<|end_header_id|>");
    out.text("\n\n");
  }
  return out.take();
}

StatusOr<std::vector<PromptPart>> render_llama2(const std::vector<ChatMessage>& messages) {
  const bool has_system = messages[0].role == "system";
  const size_t first = has_system ? 1 : 0;
  RETURN_IF_ERROR(check_alternating(messages, first));
  PartWriter out;
  for (size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    std::string content = m.content;
    if (i == first && has_system) content = "<<SYS>>\n" + messages[0].content + "\n<</SYS>>\n\n" + content;
    if (m.role == "user") {
      out.special("<s>");
      out.text("[INST] " + strip(content) + " [/INST]");
    } else {
      out.text(" " + strip(content) + " ");
      out.special("</s>");
    }
  }
  return out.take();
}

StatusOr<std::vector<PromptPart>> render_mistral(const std::vector<ChatMessage>& messages) {
  const bool has_system = messages[0].role == "system";
  const size_t first = has_system ? 1 : 0;
  RETURN_IF_ERROR(check_alternating(messages, first));
  PartWriter out;
  out.special("<s>");
  for (size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == "user") {
      std::string content = m.content;
      if (i == first && has_system) content = messages[0].content + "\n\n" + content;
      out.text("[INST] " + content + " [/INST]");
    } else {
      out.text(m.content);
      out.special("</s>");
    }
  }
  return out.take();
}

}  // namespace

StatusOr<ChatTemplate> ChatTemplate::from_name(std::string_view name) {
  if (name == "plain") return ChatTemplate(ChatTemplateFamily::kPlain);
  if (name == "chatml") return ChatTemplate(ChatTemplateFamily::kChatMl);
  if (name == "llama2") return ChatTemplate(ChatTemplateFamily::kLlama2);
  if (name == "llama3") return ChatTemplate(ChatTemplateFamily::kLlama3);
  if (name == "mistral") return ChatTemplate(ChatTemplateFamily::kMistral);
  return invalid_argument("unknown chat template \"" + std::string(name) + "\" (known: " +
                          std::string(kKnownFamilies) + ")");
}

StatusOr<ChatTemplate> ChatTemplate::detect(std::string_view source) {
  if (contains(source, "<|im_start|>")) return ChatTemplate(ChatTemplateFamily::kChatMl);
  if (contains(source, "<|start_header_id|>")) return ChatTemplate(ChatTemplateFamily::kLlama3);
  if (contains(source, "[INST]") && contains(source, "<<SYS>>")) return ChatTemplate(ChatTemplateFamily::kLlama2);
  if (contains(source, "[INST]")) return ChatTemplate(ChatTemplateFamily::kMistral);
  if (contains(source, "'User: '") && contains(source, "'Assistant:'")) return ChatTemplate(ChatTemplateFamily::kPlain);
  return not_found("the model's chat_template is not one of the families longbow renders (" +
                   std::string(kKnownFamilies) + "); start the server with --chat-template NAME");
}

std::string_view ChatTemplate::name() const {
  switch (family_) {
    case ChatTemplateFamily::kPlain: return "plain";
    case ChatTemplateFamily::kChatMl: return "chatml";
    case ChatTemplateFamily::kLlama2: return "llama2";
    case ChatTemplateFamily::kLlama3: return "llama3";
    case ChatTemplateFamily::kMistral: return "mistral";
  }
  return "?";
}

bool ChatTemplate::renders_bos() const {
  switch (family_) {
    case ChatTemplateFamily::kPlain:
    case ChatTemplateFamily::kChatMl: return false;
    case ChatTemplateFamily::kLlama2:
    case ChatTemplateFamily::kLlama3:
    case ChatTemplateFamily::kMistral: return true;
  }
  return false;
}

StatusOr<std::vector<PromptPart>> ChatTemplate::render(const std::vector<ChatMessage>& messages,
                                                       bool add_generation_prompt) const {
  RETURN_IF_ERROR(check_roles(messages));
  switch (family_) {
    case ChatTemplateFamily::kPlain: return render_plain(messages, add_generation_prompt);
    case ChatTemplateFamily::kChatMl: return render_chatml(messages, add_generation_prompt);
    case ChatTemplateFamily::kLlama3: return render_llama3(messages, add_generation_prompt);
    case ChatTemplateFamily::kLlama2: return render_llama2(messages);
    case ChatTemplateFamily::kMistral: return render_mistral(messages);
  }
  return internal_error("unhandled chat template family");
}

}  // namespace longbow
