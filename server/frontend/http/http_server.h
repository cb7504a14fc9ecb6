// HttpServer: the OpenAI-compatible REST front end: an event-driven HTTP/1.1 server (Boost.Beast
// over Asio; docs/http-server-choice.md says why) with explicit limits (http_limits.h).
//
// A few I/O threads run every connection (http_connection.h): no connection ever holds a thread,
// so idle, slow or streaming clients cannot starve the others, and /health and /metrics are
// answered on the I/O threads while the worker threads (parsing, tokenizing) are all busy. At most
// `limits.max_connections` connections are open at once; the next ones get a 503 and are closed.
// stop() is bounded whatever clients do: it closes idle connections at once, lets responses in
// progress finish for `limits.stop_grace`, then closes everything.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "server/frontend/http/http_limits.h"
#include "server/frontend/serving_context.h"

namespace longbow::http {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8000;                   // 0: any free port (start() returns it)
  int threads = 4;                   // worker threads for handlers that parse bodies or tokenize
  size_t max_body_bytes = 32 << 20;  // larger bodies get 413 (overrides limits.max_body_bytes)
  int listen_backlog = 4096;         // connections the kernel queues before accept()
  int io_threads = 2;                // threads running the connections
  // CORS: origins allowed to call the API from a browser ("*": any); empty: no CORS headers.
  std::vector<std::string> allowed_origins;
  HttpLimits limits;
};

class HttpServer {
 public:
  HttpServer(ServingContext& context, HttpOptions options);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds (without SO_REUSEPORT: a port in use is an error) and serves on background threads.
  // Returns the bound port; UNAVAILABLE when binding fails.
  StatusOr<int> start();
  // Stops accepting, finishes or closes every connection (within limits.stop_grace plus a moment)
  // and joins the threads. Idempotent.
  void stop();

  // Connections open now (for tests and metrics).
  int num_connections() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace longbow::http
