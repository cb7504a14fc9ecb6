#include "server/frontend/serving_context.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <random>
#include <algorithm>
#include <utility>

namespace longbow {

ServingContext::ServingContext(std::string api_key)
    : api_key_(std::move(api_key)), id_salt_((static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}()) {}

void ServingContext::set_ready(Engine* engine, const Tokenizer* tokenizer, ServedModel model) {
  engine_ = engine;
  tokenizer_ = tokenizer;
  model_ = std::move(model);
  if (!tokenizer_->parses_special_tokens()) {
    for (TokenId id = 0; id < tokenizer_->vocab_size(); ++id) {
      if (tokenizer_->is_control(id) && !tokenizer_->piece(id).empty()) {
        control_pieces_.emplace_back(std::string(tokenizer_->piece(id)), id);
      }
    }
    std::stable_sort(control_pieces_.begin(), control_pieces_.end(),
                     [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
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
  if (!add_special_tokens) return tokenizer_->encode(text);
  std::vector<TokenId> ids = tokenizer_->encode_with_special_tokens(text);
  const std::optional<TokenId> bos = tokenizer_->bos_id();
  if (bos && model_.add_bos.has_value()) {
    const bool starts = !ids.empty() && ids.front() == *bos;
    if (*model_.add_bos && !starts) ids.insert(ids.begin(), *bos);
    if (!*model_.add_bos && starts) ids.erase(ids.begin());
  }
  return ids;
}

std::vector<TokenId> ServingContext::encode_with_specials(std::string_view text) const {
  if (control_pieces_.empty()) return tokenizer_->encode(text);
  std::vector<TokenId> ids;
  size_t start = 0;  // beginning of the text not yet encoded
  for (size_t pos = 0; pos < text.size(); ++pos) {
    for (const auto& [piece, id] : control_pieces_) {
      if (text.compare(pos, piece.size(), piece) != 0) continue;
      std::vector<TokenId> before = tokenizer_->encode(text.substr(start, pos - start));
      ids.insert(ids.end(), before.begin(), before.end());
      ids.push_back(id);
      start = pos + piece.size();
      pos = start - 1;
      break;
    }
  }
  std::vector<TokenId> rest = tokenizer_->encode(text.substr(start));
  ids.insert(ids.end(), rest.begin(), rest.end());
  return ids;
}

StatusOr<std::string> ServingContext::render_chat(const ChatRequest& request) const {
  // The client cannot fix a missing template, but the request is what cannot be served: 400 (as vLLM).
  if (!model_.chat_template.ok()) return invalid_argument(model_.chat_template.status().message());
  ChatTemplateInput input;
  input.messages = request.messages;
  input.tools = request.tools;
  input.documents = request.documents;
  input.add_generation_prompt = request.add_generation_prompt;
  input.kwargs = request.chat_template_kwargs;
  return model_.chat_template->render(input, model_.chat_tokens);
}

StatusOr<std::vector<TokenId>> ServingContext::encode_chat(const ChatRequest& request) const {
  ASSIGN_OR_RETURN(std::string text, render_chat(request));
  std::vector<TokenId> ids = encode_with_specials(text);
  const std::optional<TokenId> bos = tokenizer_->bos_id();
  const bool wants_bos = model_.add_bos.value_or(tokenizer_->encode_with_special_tokens("").size() > 0 &&
                                                 tokenizer_->encode_with_special_tokens("").front() == bos);
  if (bos && wants_bos && (ids.empty() || ids.front() != *bos)) ids.insert(ids.begin(), *bos);
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
