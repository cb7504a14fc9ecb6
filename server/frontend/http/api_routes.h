// ApiRoutes: the REST API's routes and handlers, on HttpRequest/HttpResponse (no transport here).
//
// Routes: POST /v1/completions, POST /v1/chat/completions, GET /v1/models[/{id}], GET /health (200
// ready, 503 loading or draining), GET|POST /ping (the same, as SageMaker probes it), GET /metrics
// (Prometheus text, longbow_*), POST /tokenize, POST /detokenize, GET /version. A known path with
// another method gets 405 and Allow; OPTIONS gets 204 and Allow (and CORS headers when enabled). With an API key configured, /v1/*, /tokenize and /detokenize need
// "Authorization: Bearer <key>"; /health, /metrics and /version never do (probes and scrapers).
// Cheap routes (probes, metrics, model cards) are answered on the connection's I/O thread, so they
// answer while every worker is busy; routes that parse bodies or tokenize run on worker threads.
// Every handler is guarded: an exception becomes a 500 with an OpenAI error body, never a crash.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/frontend/http/completion_handler.h"
#include "server/frontend/http/http_message.h"
#include "server/frontend/serving_context.h"

namespace longbow::http {

class ApiRoutes {
 public:
  struct Route {
    const char* method;
    const char* path;        // exact, or a prefix ending in '/' when `prefix`
    bool prefix = false;     // the rest of the path is HttpRequest::route_param
    bool authenticated = false;
    bool on_worker = false;  // parses a body or tokenizes: not on an I/O thread
    std::function<HttpResponse(const HttpRequest&)> run;
  };

  explicit ApiRoutes(ServingContext& context);

  // CORS (set before serving): origins allowed ("*": any). With any set, OPTIONS preflights get 204
  // with the allowed methods and headers.
  void set_allowed_origins(std::vector<std::string> origins) { allowed_origins_ = std::move(origins); }
  // The Access-Control-Allow-Origin value for `origin`, or "" when it is not allowed.
  std::string allow_origin(std::string_view origin) const;

  // The route for the request's method and path (filling route_param), or nullptr.
  const Route* match(HttpRequest& request) const;
  // Before the body is read: the 404, 405 (with Allow), 401 or OPTIONS answer the request will get
  // whatever its body, if any. So an unauthenticated client cannot make the server read (and hold)
  // a body.
  std::optional<HttpResponse> precheck(HttpRequest& request) const;
  // Runs `route` with the API-key check and the exception guard.
  HttpResponse run(const Route& route, const HttpRequest& request) const;

 private:
  std::optional<HttpResponse> check_key(const HttpRequest& request) const;
  HttpResponse health() const;
  HttpResponse metrics() const;
  HttpResponse models(const HttpRequest& request) const;
  HttpResponse tokenize(const HttpRequest& request) const;
  HttpResponse detokenize(const HttpRequest& request) const;

  ServingContext& context_;
  mutable CompletionHandler completions_;
  std::vector<Route> routes_;
  std::vector<std::string> allowed_origins_;
};

}  // namespace longbow::http
