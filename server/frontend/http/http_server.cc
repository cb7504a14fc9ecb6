#include "server/frontend/http/http_server.h"

#include <nlohmann/json.hpp>
#include <sys/socket.h>
#include <spdlog/spdlog.h>

#include <exception>
#include <string_view>
#include <utility>
#include <vector>

#include "server/engine/metrics.h"
#include "server/frontend/http/http_error.h"

#ifndef LONGBOW_VERSION
#define LONGBOW_VERSION "dev"
#endif

namespace longbow::http {
namespace {

using nlohmann::json;

constexpr time_t kKeepAliveSeconds = 5;
constexpr size_t kKeepAliveMaxRequests = 1000;

void set_json(httplib::Response& res, const json& body) {
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

// The body as a JSON object, or a 400 already written to `res`.
std::optional<json> parse_object(const httplib::Request& req, httplib::Response& res) {
  json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    set_error(res, invalid_argument("the request body must be a JSON object"));
    return std::nullopt;
  }
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

bool ListenServer::set_backlog(int backlog) { return ::listen(svr_sock_, backlog) == 0; }

HttpServer::HttpServer(ServingContext& context, HttpOptions options)
    : context_(context), options_(std::move(options)), completions_(context) {
  const size_t threads = static_cast<size_t>(options_.threads);
  server_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server_.set_tcp_nodelay(true);
  server_.set_payload_max_length(options_.max_body_bytes);
  server_.set_keep_alive_timeout(kKeepAliveSeconds);
  server_.set_keep_alive_max_count(kKeepAliveMaxRequests);
  register_routes();
}

HttpServer::~HttpServer() { stop(); }

StatusOr<int> HttpServer::start() {
  int port = options_.port;
  if (port == 0) {
    port = server_.bind_to_any_port(options_.host);
    if (port <= 0) return unavailable("cannot bind an HTTP port on " + options_.host);
  } else if (!server_.bind_to_port(options_.host, port)) {
    return unavailable("cannot bind HTTP to " + options_.host + ":" + std::to_string(port) +
                       " (in use, or not a local address)");
  }
  if (!server_.set_backlog(options_.listen_backlog)) spdlog::warn("cannot raise the HTTP listen backlog");
  thread_ = std::thread([this] { server_.listen_after_bind(); });
  return port;
}

void HttpServer::stop() {
  if (!thread_.joinable()) return;
  server_.stop();
  thread_.join();
}

httplib::Server::Handler HttpServer::guarded(bool authenticated, httplib::Server::Handler handler) {
  return [this, authenticated, handler = std::move(handler)](const httplib::Request& req, httplib::Response& res) {
    try {
      if (authenticated && context_.requires_api_key()) {
        constexpr std::string_view kBearer = "Bearer ";
        const std::string header = req.get_header_value("Authorization");
        const bool has_bearer = std::string_view(header).substr(0, kBearer.size()) == kBearer;
        if (!has_bearer || !context_.api_key_matches(std::string_view(header).substr(kBearer.size()))) {
          set_error(res, Status(StatusCode::kUnauthenticated,
                                has_bearer ? "Incorrect API key provided"
                                           : "Missing API key: send \"Authorization: Bearer <key>\""));
          return;
        }
      }
      handler(req, res);
    } catch (const std::exception& e) {
      spdlog::error("{} {}: handler failed: {}", req.method, req.path, e.what());
      res = httplib::Response();
      set_error(res, internal_error(std::string("internal error: ") + e.what()));
    } catch (...) {
      spdlog::error("{} {}: handler failed with an unknown exception", req.method, req.path);
      res = httplib::Response();
      set_error(res, internal_error("internal error"));
    }
  };
}

void HttpServer::register_routes() {
  server_.Post("/v1/completions", guarded(true, [this](const httplib::Request& req, httplib::Response& res) {
                 completions_.handle(Endpoint::kCompletions, req, res);
               }));
  server_.Post("/v1/chat/completions", guarded(true, [this](const httplib::Request& req, httplib::Response& res) {
                 completions_.handle(Endpoint::kChatCompletions, req, res);
               }));
  server_.Get("/v1/models", guarded(true, [this](const httplib::Request& req, httplib::Response& res) {
                handle_models(req, res);
              }));
  server_.Get(R"(/v1/models/(.+))", guarded(true, [this](const httplib::Request& req, httplib::Response& res) {
                handle_models(req, res);
              }));
  server_.Post("/tokenize", guarded(true, [this](const httplib::Request& req, httplib::Response& res) {
                 handle_tokenize(req, res);
               }));
  server_.Post("/detokenize", guarded(true, [this](const httplib::Request& req, httplib::Response& res) {
                 handle_detokenize(req, res);
               }));
  server_.Get("/health", guarded(false, [this](const httplib::Request&, httplib::Response& res) {
                handle_health(res);
              }));
  server_.Get("/metrics", guarded(false, [this](const httplib::Request&, httplib::Response& res) {
                handle_metrics(res);
              }));
  server_.Get("/version", guarded(false, [](const httplib::Request&, httplib::Response& res) {
                set_json(res, json{{"version", LONGBOW_VERSION}});
              }));

  // Transport-level errors (unknown route, oversized body, bad request line) get OpenAI bodies too;
  // a handler's own error body is left alone.
  server_.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    switch (res.status) {
      case 404: set_error(res, 404, "invalid_request_error", "not_found", "no route for " + req.method + " " + req.path); break;
      case 413: set_error(res, 413, "invalid_request_error", "request_too_large", "the request body is too large"); break;
      default: set_error(res, res.status, "invalid_request_error", "", "bad request"); break;
    }
    return httplib::Server::HandlerResponse::Handled;
  }));
  server_.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr) {
    spdlog::error("{} {}: unhandled exception", req.method, req.path);
    set_error(res, internal_error("internal error"));
  });
  server_.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    spdlog::debug("{} {} -> {}", req.method, req.path, res.status);
  });
}

void HttpServer::handle_health(httplib::Response& res) const {
  switch (context_.state()) {
    case ServingContext::State::kLoading:
      res.status = 503;
      set_json(res, json{{"status", "loading"}});
      return;
    case ServingContext::State::kReady:
      set_json(res, json{{"status", "ok"}});
      return;
    case ServingContext::State::kDraining:
      res.status = 503;
      set_json(res, json{{"status", "draining"}});
      return;
  }
}

void HttpServer::handle_metrics(httplib::Response& res) const {
  const bool ready = context_.state() != ServingContext::State::kLoading;
  std::string text = render_prometheus(ready ? context_.engine().metrics() : MetricsSnapshot{});
  text += "# HELP longbow_server_ready Whether the server accepts requests (0 while loading or draining).\n";
  text += "# TYPE longbow_server_ready gauge\n";
  text += context_.state() == ServingContext::State::kReady ? "longbow_server_ready 1\n" : "longbow_server_ready 0\n";
  res.set_content(text, "text/plain; version=0.0.4; charset=utf-8");
}

void HttpServer::handle_models(const httplib::Request& req, httplib::Response& res) const {
  if (Status serving = context_.check_serving(); !serving.ok()) return set_error(res, serving);
  const ServedModel& model = context_.model();
  if (req.matches.size() > 1) {
    if (Status found = context_.check_model(req.matches[1].str()); !found.ok()) return set_error(res, found, "model");
    return set_json(res, model_card(model));
  }
  set_json(res, json{{"object", "list"}, {"data", json::array({model_card(model)})}});
}

void HttpServer::handle_tokenize(const httplib::Request& req, httplib::Response& res) const {
  if (Status serving = context_.check_serving(); !serving.ok()) return set_error(res, serving);
  std::optional<json> body = parse_object(req, res);
  if (!body) return;
  if (auto model = body->find("model"); model != body->end() && !model->is_null()) {
    if (!model->is_string()) return set_error(res, invalid_argument("model must be a string"), "model");
    if (Status found = context_.check_model(model->get<std::string>()); !found.ok()) return set_error(res, found, "model");
  }
  bool add_special_tokens = true;
  if (auto add = body->find("add_special_tokens"); add != body->end() && !add->is_null()) {
    if (!add->is_boolean()) return set_error(res, invalid_argument("add_special_tokens must be a boolean"));
    add_special_tokens = add->get<bool>();
  }
  std::vector<TokenId> tokens;
  if (auto prompt = body->find("prompt"); prompt != body->end()) {
    if (!prompt->is_string()) return set_error(res, invalid_argument("prompt must be a string"), "prompt");
    tokens = context_.encode_text(prompt->get<std::string>(), add_special_tokens);
  } else if (body->contains("messages")) {
    std::string param;
    StatusOr<ChatRequest> chat = parse_chat_fields(*body, &param);
    if (!chat.ok()) return set_error(res, chat.status(), param);
    StatusOr<std::vector<TokenId>> ids = context_.encode_chat(*chat);
    if (!ids.ok()) return set_error(res, ids.status(), "messages");
    tokens = std::move(*ids);
  } else {
    return set_error(res, invalid_argument("give prompt (a string) or messages (a list)"), "prompt");
  }
  set_json(res, json{{"count", tokens.size()}, {"max_model_len", context_.model().max_model_len}, {"tokens", tokens}});
}

void HttpServer::handle_detokenize(const httplib::Request& req, httplib::Response& res) const {
  if (Status serving = context_.check_serving(); !serving.ok()) return set_error(res, serving);
  std::optional<json> body = parse_object(req, res);
  if (!body) return;
  auto tokens = body->find("tokens");
  if (tokens == body->end() || !tokens->is_array()) {
    return set_error(res, invalid_argument("tokens must be a list of token ids"), "tokens");
  }
  std::vector<TokenId> ids;
  for (const json& token : *tokens) {
    if (!token.is_number_integer() || token.get<int64_t>() < 0 || token.get<int64_t>() > INT32_MAX) {
      return set_error(res, invalid_argument("tokens must be a list of token ids"), "tokens");
    }
    ids.push_back(static_cast<TokenId>(token.get<int64_t>()));
  }
  StatusOr<std::string> text = context_.tokenizer().decode_checked(ids);
  if (!text.ok()) return set_error(res, invalid_argument(text.status().message()), "tokens");
  set_json(res, json{{"prompt", *text}});
}

}  // namespace longbow::http
