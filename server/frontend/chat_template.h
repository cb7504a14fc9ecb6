// Chat templates: OpenAI chat messages rendered into a prompt, without a Jinja engine.
//
// Checkpoints carry a Jinja `chat_template` in tokenizer_config.json; no C++ Jinja engine exists in
// Debian 12, so longbow recognises the families it knows by their markers and renders them with
// built-in code: ChatML (Qwen), Llama-2, Llama-3, Mistral ([INST] without <<SYS>>), and "plain"
// (the demo model's "User: ...\nAssistant:" format). A template it does not recognise is an error
// naming the known families (the server then refuses chat requests, never guesses).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace longbow {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant" ("developer" is parsed as "system")
  std::string content;
};

// A rendered prompt: text to tokenize, interleaved with special tokens named by their piece (e.g.
// "<|im_start|>", "<s>"), which must map to single vocabulary ids.
struct PromptPart {
  bool special = false;
  std::string text;
};

enum class ChatTemplateFamily { kPlain, kChatMl, kLlama2, kLlama3, kMistral };

class ChatTemplate {
 public:
  // A family by name: "plain", "chatml", "llama2", "llama3" or "mistral"; INVALID_ARGUMENT otherwise.
  static StatusOr<ChatTemplate> from_name(std::string_view name);
  // The family whose markers `jinja_source` contains. NOT_FOUND (a message naming the families)
  // when it matches none.
  static StatusOr<ChatTemplate> detect(std::string_view jinja_source);

  ChatTemplateFamily family() const { return family_; }
  std::string_view name() const;
  // Whether the rendered parts start with the BOS token (else the prompt encoder adds it when the
  // tokenizer config asks for BOS).
  bool renders_bos() const;

  // INVALID_ARGUMENT for an empty conversation, an unknown role, or a role order the family cannot
  // express (Llama-2 and Mistral need user/assistant turns alternating, starting with user).
  StatusOr<std::vector<PromptPart>> render(const std::vector<ChatMessage>& messages,
                                           bool add_generation_prompt) const;

 private:
  explicit ChatTemplate(ChatTemplateFamily family) : family_(family) {}

  ChatTemplateFamily family_;
};

}  // namespace longbow
