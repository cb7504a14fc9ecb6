#include "server/frontend/serving_context.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <random>
#include <unordered_set>
#include <utility>

namespace longbow {
namespace {

// The special pieces a template emits, found by rendering a conversation that uses every role.
std::unordered_set<std::string> special_pieces(const ChatTemplate& chat_template) {
  const std::vector<ChatMessage> probe = {
      {"system", "s"}, {"user", "u"}, {"assistant", "a"}, {"user", "u"}};
  std::unordered_set<std::string> pieces;
  for (const std::vector<ChatMessage>& messages :
       {probe, std::vector<ChatMessage>(probe.begin() + 1, probe.end())}) {
    StatusOr<std::vector<PromptPart>> parts = chat_template.render(messages, /*add_generation_prompt=*/true);
    if (!parts.ok()) continue;
    for (const PromptPart& part : *parts) {
      if (part.special) pieces.insert(part.text);
    }
  }
  return pieces;
}

}  // namespace

ServingContext::ServingContext(std::string api_key)
    : api_key_(std::move(api_key)), id_salt_((static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}()) {}

void ServingContext::set_ready(Engine* engine, const Tokenizer* tokenizer, ServedModel model) {
  engine_ = engine;
  tokenizer_ = tokenizer;
  model_ = std::move(model);
  if (model_.chat_template.ok()) {
    std::unordered_set<std::string> wanted = special_pieces(*model_.chat_template);
    for (TokenId id = 0; id < tokenizer_->vocab_size() && special_ids_.size() < wanted.size(); ++id) {
      std::string piece(tokenizer_->piece(id));
      if (wanted.count(piece)) special_ids_.emplace(std::move(piece), id);
    }
    for (const std::string& piece : wanted) {
      if (!special_ids_.count(piece)) {
        model_.chat_template = invalid_argument("the chat template \"" + std::string(model_.chat_template->name()) +
                                                "\" needs the token " + piece + ", which the vocabulary lacks");
        break;
      }
    }
  }
  if (!model_.chat_template.ok()) {
    spdlog::warn("chat completions are disabled: {}", model_.chat_template.status().message());
  }
  state_.store(State::kReady, std::memory_order_release);
}

void ServingContext::set_draining() { state_.store(State::kDraining, std::memory_order_release); }

Status ServingContext::check_serving() const {
  switch (state()) {
    case State::kLoading: return unavailable("the model is still loading");
    case State::kReady: return Status::Ok();
    case State::kDraining: return unavailable("the server is shutting down");
  }
  return internal_error("unknown serving state");
}

Status ServingContext::check_model(std::string_view name) const {
  if (name.empty() || name == model_.id) return Status::Ok();
  return not_found("The model `" + std::string(name) + "` does not exist (this server serves `" + model_.id + "`)");
}

bool ServingContext::api_key_matches(std::string_view presented) const {
  // Touches every byte of the configured key whatever `presented` holds; only its length can leak.
  unsigned char diff = presented.size() != api_key_.size() ? 1 : 0;
  for (size_t i = 0; i < api_key_.size(); ++i) {
    const unsigned char other = i < presented.size() ? static_cast<unsigned char>(presented[i]) : 0;
    diff |= static_cast<unsigned char>(static_cast<unsigned char>(api_key_[i]) ^ other);
  }
  return diff == 0;
}

std::vector<TokenId> ServingContext::encode_text(std::string_view text, bool add_special_tokens) const {
  std::vector<TokenId> ids;
  if (add_special_tokens && model_.add_bos && tokenizer_->bos_id()) ids.push_back(*tokenizer_->bos_id());
  std::vector<TokenId> encoded = tokenizer_->encode(text);
  ids.insert(ids.end(), encoded.begin(), encoded.end());
  return ids;
}

StatusOr<std::vector<TokenId>> ServingContext::encode_chat(const std::vector<ChatMessage>& messages,
                                                           bool add_generation_prompt) const {
  // The client cannot fix a missing template, but the request is what cannot be served: 400 (as vLLM).
  if (!model_.chat_template.ok()) return invalid_argument(model_.chat_template.status().message());
  ASSIGN_OR_RETURN(std::vector<PromptPart> parts, model_.chat_template->render(messages, add_generation_prompt));
  return encode_parts(parts, model_.add_bos && !model_.chat_template->renders_bos());
}

StatusOr<std::vector<TokenId>> ServingContext::encode_parts(const std::vector<PromptPart>& parts, bool add_bos) const {
  std::vector<TokenId> ids;
  if (add_bos && tokenizer_->bos_id()) ids.push_back(*tokenizer_->bos_id());
  for (const PromptPart& part : parts) {
    if (part.special) {
      auto it = special_ids_.find(part.text);
      if (it == special_ids_.end()) return internal_error("special token " + part.text + " is not in the vocabulary");
      ids.push_back(it->second);
    } else {
      std::vector<TokenId> encoded = tokenizer_->encode(part.text);
      ids.insert(ids.end(), encoded.begin(), encoded.end());
    }
  }
  return ids;
}

std::string ServingContext::new_request_id(std::string_view prefix) {
  // A counter scrambled by a per-process salt (splitmix64's finaliser): unique, not guessable.
  uint64_t x = next_id_.fetch_add(1, std::memory_order_relaxed) + id_salt_;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  x ^= x >> 31;
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(x));
  return std::string(prefix) + "-" + hex;
}

ServingContext::InFlight::InFlight(ServingContext& context) : context_(context) {
  std::lock_guard<std::mutex> lock(context_.in_flight_mutex_);
  ++context_.in_flight_;
}

ServingContext::InFlight::~InFlight() {
  std::lock_guard<std::mutex> lock(context_.in_flight_mutex_);
  if (--context_.in_flight_ == 0) context_.in_flight_cv_.notify_all();
}

bool ServingContext::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(in_flight_mutex_);
  return in_flight_cv_.wait_for(lock, timeout, [&] { return in_flight_ == 0; });
}

}  // namespace longbow
