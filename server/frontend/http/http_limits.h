// HttpLimits: every bound the HTTP transport enforces, so that no client can hold a thread, memory it
// was not granted, or the server's shutdown. Defaults suit a server behind nothing; each is a flag
// or config value of `longbow serve` where an operator may need another.
#pragma once

#include <chrono>
#include <cstddef>

namespace longbow::http {

struct HttpLimits {
  // Time from accepting a connection to having read the request line and every header: a client
  // sending one byte per second (slowloris) is dropped after this.
  std::chrono::milliseconds header_timeout{10'000};
  // Time a keep-alive connection may sit idle between requests (it must then send the next
  // request's headers within this time too).
  std::chrono::milliseconds idle_timeout{5'000};
  // Time to read a request's body once its headers are in.
  std::chrono::milliseconds body_timeout{30'000};
  // Time one write may wait for the client to read (a full response, or one batch of a stream):
  // a client that stops reading is dropped (and its requests cancelled) after this.
  std::chrono::milliseconds write_timeout{30'000};
  // On stop(): time responses in progress get to finish before every connection is closed.
  std::chrono::milliseconds stop_grace{2'000};

  size_t max_header_bytes = 64 << 10;  // request line + headers; more: 431
  size_t max_header_count = 100;       // more: 431
  size_t max_body_bytes = 32 << 20;    // Content-Length or chunked; more: 413 (before reading it)
  int max_connections = 8192;          // open at once; more are answered 503 and closed
  int max_requests_per_connection = 10000;
  int max_queued_api_requests = 1024;  // waiting for a worker thread; more: 503
  size_t max_stream_batch_bytes = 256 << 10;  // one write of a stream, at most (then it polls again)
};

}  // namespace longbow::http
