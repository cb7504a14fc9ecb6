#include "server/frontend/http/http_error.h"

#include <nlohmann/json.hpp>

#include <array>
#include <cctype>

namespace longbow::http {
namespace {

// Seconds a client should wait before retrying an overloaded (429) or unavailable (503) server.
constexpr std::string_view kRetryAfterSeconds = "1";

constexpr std::array<std::string_view, 31> kRequestFields = {
    "model",        "prompt",          "messages",         "max_tokens",        "max_completion_tokens",
    "temperature",  "top_p",           "top_k",            "min_p",             "n",
    "stop",         "stop_token_ids",  "seed",             "stream",            "stream_options",
    "logprobs",     "top_logprobs",    "echo",             "best_of",           "presence_penalty",
    "frequency_penalty", "logit_bias", "repetition_penalty", "ignore_eos",      "min_tokens",
    "return_token_ids",  "suffix",     "response_format", "guided_json",    "guided_regex",
    "guided_choice"};

nlohmann::json error_object(std::string_view message, std::string_view type, std::string_view code,
                            std::string_view param) {
  nlohmann::json error = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) error["param"] = param;
  if (!code.empty()) error["code"] = code;
  return nlohmann::json{{"error", std::move(error)}};
}

std::string dump(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

HttpError http_error_for(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return {200, "", ""};
    case StatusCode::kInvalidArgument: return {400, "invalid_request_error", ""};
    case StatusCode::kNotFound: return {404, "invalid_request_error", "model_not_found"};
    case StatusCode::kOutOfRange: return {400, "invalid_request_error", "context_length_exceeded"};
    case StatusCode::kResourceExhausted: return {429, "rate_limit_error", "rate_limit_exceeded"};
    case StatusCode::kUnavailable: return {503, "server_error", "service_unavailable"};
    case StatusCode::kCancelled: return {499, "invalid_request_error", "request_cancelled"};
    case StatusCode::kDeadlineExceeded: return {504, "server_error", "timeout"};
    case StatusCode::kUnauthenticated: return {401, "authentication_error", "invalid_api_key"};
    // A feature the client asked for and longbow lacks: the client's request must change.
    case StatusCode::kUnimplemented: return {400, "invalid_request_error", "unsupported_parameter"};
    case StatusCode::kDataLoss: return {500, "server_error", ""};
    case StatusCode::kInternal: return {500, "server_error", ""};
  }
  return {500, "server_error", ""};
}

std::string param_from_message(std::string_view message) {
  size_t end = 0;
  while (end < message.size() && (std::islower(static_cast<unsigned char>(message[end])) || message[end] == '_')) ++end;
  std::string_view word = message.substr(0, end);
  for (std::string_view field : kRequestFields) {
    if (word == field) return std::string(field);
  }
  return {};
}

std::string error_json(const Status& status, std::string_view param) {
  const HttpError mapped = http_error_for(status.code());
  std::string derived = param.empty() ? param_from_message(status.message()) : std::string(param);
  return dump(error_object(status.message(), mapped.type, mapped.code, derived));
}

void set_error(HttpResponse& res, const Status& status, std::string_view param) {
  const HttpError mapped = http_error_for(status.code());
  res.status = mapped.http_status;
  if (mapped.http_status == 429 || mapped.http_status == 503) {
    res.set_header("Retry-After", std::string(kRetryAfterSeconds));
  }
  res.set_content(error_json(status, param), "application/json");
}

void set_error(HttpResponse& res, int http_status, std::string_view type, std::string_view code,
               std::string_view message) {
  res.status = http_status;
  res.set_content(dump(error_object(message, type, code, {})), "application/json");
}

}  // namespace longbow::http
