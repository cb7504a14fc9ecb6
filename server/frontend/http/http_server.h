// HttpServer: the OpenAI-compatible REST front end on cpp-httplib.
//
// Routes: POST /v1/completions, POST /v1/chat/completions, GET /v1/models[/{id}], GET /health (200
// ready, 503 loading or draining), GET /metrics (Prometheus text, longbow_*), POST /tokenize,
// POST /detokenize, GET /version. With an API key configured, /v1/*, /tokenize and /detokenize need
// "Authorization: Bearer <key>"; /health, /metrics and /version never do (probes and scrapers).
// Every handler is wrapped: an exception becomes a 500 with an OpenAI error body, never a crash.
#pragma once

#include <httplib.h>

#include <cstddef>
#include <string>
#include <thread>

#include "common/status.h"
#include "server/frontend/http/completion_handler.h"
#include "server/frontend/serving_context.h"

namespace longbow::http {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8000;                        // 0: any free port (start() returns it)
  int threads = 512;                      // one per concurrent connection; a stream holds its thread
  size_t max_body_bytes = 32 << 20;       // larger bodies get 413
  int listen_backlog = 4096;              // connections the kernel queues before accept()
};

// cpp-httplib 0.11 listens with a backlog of 5: a burst of clients connecting at once (256 streams)
// overflows it and some are reset. Calling listen() again on the bound socket raises it (Linux).
class ListenServer : public httplib::Server {
 public:
  bool set_backlog(int backlog);
};

class HttpServer {
 public:
  HttpServer(ServingContext& context, HttpOptions options);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and serves on a background thread. Returns the bound port; UNAVAILABLE when binding fails.
  StatusOr<int> start();
  // Closes the listener and waits for open connections to finish. Idempotent.
  void stop();

 private:
  void register_routes();
  // Runs `handler` with the API-key check (when `authenticated`) and the exception guard.
  httplib::Server::Handler guarded(bool authenticated, httplib::Server::Handler handler);

  void handle_health(httplib::Response& res) const;
  void handle_metrics(httplib::Response& res) const;
  void handle_models(const httplib::Request& req, httplib::Response& res) const;
  void handle_tokenize(const httplib::Request& req, httplib::Response& res) const;
  void handle_detokenize(const httplib::Request& req, httplib::Response& res) const;

  ServingContext& context_;
  HttpOptions options_;
  CompletionHandler completions_;
  ListenServer server_;
  std::thread thread_;
};

}  // namespace longbow::http
