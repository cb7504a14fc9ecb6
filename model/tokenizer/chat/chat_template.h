// ChatTemplate: a checkpoint's Jinja chat template, parsed once and rendered per request by
// longbow's own interpreter (jinja_*.h) in the environment transformers' apply_chat_template uses:
// trim_blocks, lstrip_blocks, loop controls, tojson (ensure_ascii=False), raise_exception and
// strftime_now; messages, tools, documents, add_generation_prompt, the special tokens and any
// chat_template_kwargs are the template's variables.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"

namespace longbow {

namespace jinja {
struct Stmt;
}

struct ChatTemplateInput {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();  // OpenAI chat messages, as sent
  nlohmann::ordered_json tools;       // null: none
  nlohmann::ordered_json documents;   // null: none
  bool add_generation_prompt = true;
  nlohmann::ordered_json kwargs = nlohmann::ordered_json::object();  // chat_template_kwargs
};

// The tokenizer's special tokens the template sees as variables (unset: undefined there).
struct ChatTemplateTokens {
  std::optional<std::string> bos_token, eos_token, unk_token, pad_token;
};

class ChatTemplate {
 public:
  // INVALID_ARGUMENT naming the construct (and line) the interpreter cannot parse.
  static StatusOr<ChatTemplate> parse(const std::string& source);

  // The prompt text. INVALID_ARGUMENT with the template's own message for raise_exception, or
  // naming the construct that failed (unsupported filter, bad operand...).
  StatusOr<std::string> render(const ChatTemplateInput& input, const ChatTemplateTokens& tokens) const;

  const std::string& source() const { return *source_; }
  // strftime_now's clock (tests fix it); the system clock by default.
  void set_clock(std::function<std::chrono::system_clock::time_point()> now) { now_ = std::move(now); }

 private:
  std::shared_ptr<const std::string> source_;
  std::shared_ptr<const std::vector<std::unique_ptr<jinja::Stmt>>> body_;
  std::function<std::chrono::system_clock::time_point()> now_ = [] { return std::chrono::system_clock::now(); };
};

}  // namespace longbow
