#include "server/engine/request_validation.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>

namespace longbow {
namespace {

std::string str(double value) {
  std::string text = std::to_string(value);
  text.erase(text.find_last_not_of('0') + 1);
  if (!text.empty() && text.back() == '.') text.pop_back();
  return text;
}

Status check_range(const char* field, double value, double lo, double hi, bool lo_open = false) {
  bool ok = std::isfinite(value) && (lo_open ? value > lo : value >= lo) && value <= hi;
  if (ok) return Status::Ok();
  return invalid_argument(std::string(field) + " must be in " + (lo_open ? "(" : "[") + str(lo) + ", " + str(hi) +
                          "], got " + str(value));
}

Status check_token(const char* what, TokenId token, int vocab_size) {
  if (token >= 0 && token < vocab_size) return Status::Ok();
  return invalid_argument(std::string(what) + " " + std::to_string(token) + " is outside the vocabulary [0, " +
                          std::to_string(vocab_size) + ")");
}

Status validate_sampling(const SamplingParams& p, const RequestLimits& limits) {
  if (p.n < 1 || p.n > limits.max_n) {
    return invalid_argument("n must be in [1, " + std::to_string(limits.max_n) + "], got " + std::to_string(p.n));
  }
  RETURN_IF_ERROR(check_range("temperature", p.temperature, 0.0, kMaxTemperature));
  if (p.top_k < -1) return invalid_argument("top_k must be -1 (off), 0 (off) or positive, got " + std::to_string(p.top_k));
  RETURN_IF_ERROR(check_range("top_p", p.top_p, 0.0, 1.0, /*lo_open=*/true));
  RETURN_IF_ERROR(check_range("min_p", p.min_p, 0.0, 1.0));
  RETURN_IF_ERROR(check_range("repetition_penalty", p.repetition_penalty, 0.0, 100.0, /*lo_open=*/true));
  RETURN_IF_ERROR(check_range("presence_penalty", p.presence_penalty, -2.0, 2.0));
  RETURN_IF_ERROR(check_range("frequency_penalty", p.frequency_penalty, -2.0, 2.0));
  RETURN_IF_ERROR(check_request_counts(p.stop.size(), p.stop_token_ids.size(), p.logit_bias.size()));
  for (const auto& [token, bias] : p.logit_bias) {
    RETURN_IF_ERROR(check_token("logit_bias token", token, limits.vocab_size));
    RETURN_IF_ERROR(check_range("logit_bias value", bias, -100.0, 100.0));
  }
  for (TokenId token : p.stop_token_ids) RETURN_IF_ERROR(check_token("stop_token_ids entry", token, limits.vocab_size));
  for (const std::string& stop : p.stop) {
    if (stop.empty()) return invalid_argument("stop strings must not be empty");
    if (stop.size() > kMaxStopStringBytes) {
      return invalid_argument(fmt::format("stop strings are at most {} bytes, got one of {}", kMaxStopStringBytes, stop.size()));
    }
  }
  if (p.min_tokens < 0) return invalid_argument("min_tokens must be >= 0, got " + std::to_string(p.min_tokens));
  if (p.max_tokens) {
    if (*p.max_tokens < 1) return invalid_argument("max_tokens must be >= 1, got " + std::to_string(*p.max_tokens));
    if (p.min_tokens > *p.max_tokens) {
      return invalid_argument("min_tokens (" + std::to_string(p.min_tokens) + ") must not exceed max_tokens (" +
                              std::to_string(*p.max_tokens) + ")");
    }
  }
  if (p.logprobs && (*p.logprobs < 0 || *p.logprobs > limits.max_logprobs)) {
    return invalid_argument("logprobs must be in [0, " + std::to_string(limits.max_logprobs) + "], got " +
                            std::to_string(*p.logprobs));
  }
  if (p.prompt_logprobs && (*p.prompt_logprobs < 0 || *p.prompt_logprobs > limits.max_logprobs)) {
    return invalid_argument(
        fmt::format("prompt_logprobs must be in [0, {}], got {}", limits.max_logprobs, *p.prompt_logprobs));
  }
  return Status::Ok();
}

}  // namespace

Status check_request_counts(size_t num_stop, size_t num_stop_token_ids, size_t num_logit_bias) {
  if (num_stop > static_cast<size_t>(kMaxStopStrings)) {
    return invalid_argument(fmt::format("stop holds at most {} strings, got {}", kMaxStopStrings, num_stop));
  }
  if (num_stop_token_ids > static_cast<size_t>(kMaxStopTokenIds)) {
    return invalid_argument(
        fmt::format("stop_token_ids holds at most {} token ids, got {}", kMaxStopTokenIds, num_stop_token_ids));
  }
  if (num_logit_bias > static_cast<size_t>(kMaxLogitBias)) {
    return invalid_argument(fmt::format("logit_bias holds at most {} entries, got {}", kMaxLogitBias, num_logit_bias));
  }
  return Status::Ok();
}

StatusOr<int> validate_request(const GenerateRequest& request, const RequestLimits& limits) {
  const std::vector<TokenId>& prompt = request.prompt_tokens;
  if (prompt.empty()) return invalid_argument("the prompt is empty");
  for (size_t i = 0; i < prompt.size(); ++i) {
    if (prompt[i] < 0 || prompt[i] >= limits.vocab_size) {
      return invalid_argument("prompt token " + std::to_string(prompt[i]) + " at position " + std::to_string(i) +
                              " is outside the vocabulary [0, " + std::to_string(limits.vocab_size) + ")");
    }
  }
  RETURN_IF_ERROR(validate_sampling(request.sampling, limits));

  const int prompt_len = static_cast<int>(prompt.size());
  const int limit = std::min(limits.max_model_len, limits.max_kv_tokens);
  auto limit_name = [&] {
    return limits.max_model_len <= limits.max_kv_tokens
               ? "the model's context of " + std::to_string(limits.max_model_len) + " tokens"
               : "the KV cache capacity of " + std::to_string(limits.max_kv_tokens) + " tokens";
  };
  if (!request.sampling.max_tokens) {
    if (prompt_len >= limit) {
      return out_of_range("the prompt has " + std::to_string(prompt_len) + " tokens, which leaves no room to generate in " +
                          limit_name());
    }
    return limit - prompt_len;
  }
  int64_t total = static_cast<int64_t>(prompt_len) + *request.sampling.max_tokens;
  if (total > limit) {
    return out_of_range("the prompt (" + std::to_string(prompt_len) + " tokens) plus max_tokens (" +
                        std::to_string(*request.sampling.max_tokens) + ") is " + std::to_string(total) +
                        " tokens, more than " + limit_name());
  }
  return *request.sampling.max_tokens;
}

}  // namespace longbow
