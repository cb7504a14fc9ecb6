#include "server/frontend/http/api_routes.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <exception>
#include <string_view>
#include <utility>
#include <vector>

#include "common/bounded_json.h"
#include "server/engine/metrics.h"
#include "server/frontend/chat_prompt.h"
#include "server/frontend/http/http_error.h"

#ifndef LONGBOW_VERSION
#define LONGBOW_VERSION "dev"
#endif

namespace longbow::http {
namespace {

using nlohmann::json;

HttpResponse json_response(const json& body, int status = 200) {
  HttpResponse res;
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
  return res;
}

HttpResponse error_response(const Status& status, std::string_view param = {}) {
  HttpResponse res;
  set_error(res, status, param);
  return res;
}

// The body as a JSON object, or the 400 to answer.
StatusOr<json> parse_object(const HttpRequest& req) {
  StatusOr<json> body = parse_json(req.body, "the request body");
  if (!body.ok()) return invalid_argument(body.status().message());
  if (!body->is_object()) return invalid_argument("the request body must be a JSON object");
  return body;
}

json model_card(const ServedModel& model) {
  return json{{"id", model.id},
              {"object", "model"},
              {"created", model.created},
              {"owned_by", "longbow"},
              {"root", model.id},
              {"max_model_len", model.max_model_len}};
}

}  // namespace

ApiRoutes::ApiRoutes(ServingContext& context) : context_(context), completions_(context) {
  auto on = [this](const char* method, const char* path, bool authenticated, bool on_worker,
                   std::function<HttpResponse(const HttpRequest&)> run, bool prefix = false) {
    routes_.push_back(Route{method, path, prefix, authenticated, on_worker, std::move(run)});
  };
  on("POST", "/v1/completions", true, true,
     [this](const HttpRequest& req) { return completions_.handle(Endpoint::kCompletions, req); });
  on("POST", "/v1/chat/completions", true, true,
     [this](const HttpRequest& req) { return completions_.handle(Endpoint::kChatCompletions, req); });
  on("GET", "/v1/models", true, false, [this](const HttpRequest& req) { return models(req); });
  on("GET", "/v1/models/", true, false, [this](const HttpRequest& req) { return models(req); }, /*prefix=*/true);
  on("POST", "/tokenize", true, true, [this](const HttpRequest& req) { return tokenize(req); });
  on("POST", "/detokenize", true, true, [this](const HttpRequest& req) { return detokenize(req); });
  on("GET", "/health", false, false, [this](const HttpRequest&) { return health(); });
  on("GET", "/ping", false, false, [this](const HttpRequest&) { return health(); });
  on("POST", "/ping", false, false, [this](const HttpRequest&) { return health(); });
  on("GET", "/metrics", false, false, [this](const HttpRequest&) { return metrics(); });
  on("GET", "/version", false, false, [](const HttpRequest&) { return json_response(json{{"version", LONGBOW_VERSION}}); });
}

const ApiRoutes::Route* ApiRoutes::match(HttpRequest& request) const {
  for (const Route& route : routes_) {
    if (request.method != route.method) continue;
    const std::string_view path = route.path;
    if (!route.prefix && request.path == path) return &route;
    if (route.prefix && request.path.size() > path.size() && request.path.compare(0, path.size(), path) == 0) {
      request.route_param = request.path.substr(path.size());
      return &route;
    }
  }
  return nullptr;
}

std::optional<HttpResponse> ApiRoutes::check_key(const HttpRequest& request) const {
  if (!context_.requires_api_key()) return std::nullopt;
  constexpr std::string_view kBearer = "Bearer ";
  const std::string header = request.header("authorization");
  const bool has_bearer = std::string_view(header).substr(0, kBearer.size()) == kBearer;
  if (has_bearer && context_.api_key_matches(std::string_view(header).substr(kBearer.size()))) return std::nullopt;
  return error_response(Status(StatusCode::kUnauthenticated, has_bearer ? "Incorrect API key provided"
                                                                        : "Missing API key: send \"Authorization: Bearer <key>\""));
}

std::string ApiRoutes::allow_origin(std::string_view origin) const {
  for (const std::string& allowed : allowed_origins_) {
    if (allowed == "*") return "*";
    if (allowed == origin) return allowed;
  }
  return "";
}

std::optional<HttpResponse> ApiRoutes::precheck(HttpRequest& request) const {
  const Route* route = match(request);
  if (!route) {
    // The methods the path has, if any: 405 (or the OPTIONS answer) rather than 404.
    std::string allow;
    for (const Route& other : routes_) {
      const std::string_view path = other.path;
      const bool same_path = other.prefix ? request.path.size() > path.size() && request.path.starts_with(path)
                                          : request.path == path;
      if (same_path && allow.find(other.method) == std::string::npos) allow += std::string(allow.empty() ? "" : ", ") + other.method;
    }
    HttpResponse res;
    if (allow.empty()) {
      set_error(res, 404, "invalid_request_error", "not_found", "no route for " + request.method + " " + request.path);
      return res;
    }
    allow += ", OPTIONS";
    if (request.method == "OPTIONS") {
      res.status = 204;
      res.set_header("Allow", allow);
      if (!allowed_origins_.empty()) {
        res.set_header("Access-Control-Allow-Methods", allow);
        const std::string asked = request.header("access-control-request-headers");
        res.set_header("Access-Control-Allow-Headers", asked.empty() ? "Authorization, Content-Type, X-Request-Id" : asked);
        res.set_header("Access-Control-Max-Age", "600");
      }
      return res;
    }
    set_error(res, 405, "invalid_request_error", "method_not_allowed",
              fmt::format("{} is not allowed on {} (allowed: {})", request.method, request.path, allow));
    res.set_header("Allow", allow);
    return res;
  }
  if (route->authenticated) return check_key(request);
  return std::nullopt;
}

HttpResponse ApiRoutes::run(const Route& route, const HttpRequest& request) const {
  try {
    if (route.authenticated) {
      if (std::optional<HttpResponse> refused = check_key(request)) return std::move(*refused);
    }
    return route.run(request);
  } catch (const std::exception& e) {
    spdlog::error("{} {}: handler failed: {}", request.method, request.path, e.what());
    return error_response(internal_error(std::string("internal error: ") + e.what()));
  } catch (...) {
    spdlog::error("{} {}: handler failed with an unknown exception", request.method, request.path);
    return error_response(internal_error("internal error"));
  }
}

HttpResponse ApiRoutes::health() const {
  switch (context_.state()) {
    case ServingContext::State::kLoading: return json_response(json{{"status", "loading"}}, 503);
    case ServingContext::State::kReady: return json_response(json{{"status", "ok"}});
    case ServingContext::State::kDraining: return json_response(json{{"status", "draining"}}, 503);
  }
  return json_response(json{{"status", "unknown"}}, 500);
}

HttpResponse ApiRoutes::metrics() const {
  const bool ready = context_.state() != ServingContext::State::kLoading;
  const std::string model_name = ready ? context_.model().id : std::string();
  std::string text = render_prometheus(ready ? context_.engine().metrics() : MetricsSnapshot{}, model_name);
  text += "# HELP longbow_server_ready Whether the server accepts requests (0 while loading or draining).\n";
  text += "# TYPE longbow_server_ready gauge\n";
  text += fmt::format("longbow_server_ready{{model_name=\"{}\"}} {}\n", escape_label_value(model_name),
                      context_.state() == ServingContext::State::kReady ? 1 : 0);
  HttpResponse res;
  res.set_content(std::move(text), "text/plain; version=0.0.4; charset=utf-8");
  return res;
}

HttpResponse ApiRoutes::models(const HttpRequest& req) const {
  if (Status serving = context_.check_serving(); !serving.ok()) return error_response(serving);
  const ServedModel& model = context_.model();
  if (!req.route_param.empty()) {
    if (Status found = context_.check_model(req.route_param); !found.ok()) return error_response(found, "model");
    return json_response(model_card(model));
  }
  return json_response(json{{"object", "list"}, {"data", json::array({model_card(model)})}});
}

HttpResponse ApiRoutes::tokenize(const HttpRequest& req) const {
  if (Status serving = context_.check_serving(); !serving.ok()) return error_response(serving);
  StatusOr<json> parsed = parse_object(req);
  if (!parsed.ok()) return error_response(parsed.status());
  const json& body = *parsed;
  if (auto model = body.find("model"); model != body.end() && !model->is_null()) {
    if (!model->is_string()) return error_response(invalid_argument("model must be a string"), "model");
    if (Status found = context_.check_model(model->get<std::string>()); !found.ok()) return error_response(found, "model");
  }
  bool add_special_tokens = true;
  if (auto add = body.find("add_special_tokens"); add != body.end() && !add->is_null()) {
    if (!add->is_boolean()) return error_response(invalid_argument("add_special_tokens must be a boolean"));
    add_special_tokens = add->get<bool>();
  }
  std::vector<TokenId> tokens;
  if (auto prompt = body.find("prompt"); prompt != body.end()) {
    if (!prompt->is_string()) return error_response(invalid_argument("prompt must be a string"), "prompt");
    tokens = context_.encode_text(prompt->get<std::string>(), add_special_tokens);
  } else if (body.contains("messages")) {
    std::string param;
    StatusOr<ChatRequest> chat = parse_chat_fields(body, req.body, &param);
    if (!chat.ok()) return error_response(chat.status(), param);
    adapt_messages_to_template(&chat->messages, context_.model().tool_arguments_as_objects,
                               context_.model().null_content_as_null);
    StatusOr<std::vector<TokenId>> ids = context_.encode_chat(*chat);
    if (!ids.ok()) return error_response(ids.status(), "messages");
    tokens = std::move(*ids);
  } else {
    return error_response(invalid_argument("give prompt (a string) or messages (a list)"), "prompt");
  }
  return json_response(json{{"count", tokens.size()}, {"max_model_len", context_.model().max_model_len}, {"tokens", tokens}});
}

HttpResponse ApiRoutes::detokenize(const HttpRequest& req) const {
  if (Status serving = context_.check_serving(); !serving.ok()) return error_response(serving);
  StatusOr<json> parsed = parse_object(req);
  if (!parsed.ok()) return error_response(parsed.status());
  auto tokens = parsed->find("tokens");
  if (tokens == parsed->end() || !tokens->is_array()) {
    return error_response(invalid_argument("tokens must be a list of token ids"), "tokens");
  }
  std::vector<TokenId> ids;
  for (const json& token : *tokens) {
    if (!token.is_number_integer() || token.get<int64_t>() < 0 || token.get<int64_t>() > INT32_MAX) {
      return error_response(invalid_argument("tokens must be a list of token ids"), "tokens");
    }
    ids.push_back(static_cast<TokenId>(token.get<int64_t>()));
  }
  StatusOr<std::string> text = context_.tokenizer().decode_checked(ids);
  if (!text.ok()) return error_response(invalid_argument(text.status().message()), "tokens");
  return json_response(json{{"prompt", *text}});
}

}  // namespace longbow::http
