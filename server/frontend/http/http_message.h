// HttpRequest / HttpResponse: what the REST handlers see, independent of the transport (Boost.Beast in
// http_connection.cc), so no handler includes Asio or Beast.
//
// A response is either complete (status, headers, body) or produced later by a ResponseProducer: a
// completion waits for the engine, a stream writes server-sent events as they come. The connection
// drives a producer on its own strand: it polls only when the previous write has completed, so a
// client that reads slowly slows its own stream down (backpressure) and never makes the server
// buffer more than one poll's output for it.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace longbow::http {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as sent: path and query
  std::string path;    // target without the query
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  std::string body;
  std::string remote;        // "address:port" of the client, for logs
  std::string route_param;   // the {id} of /v1/models/{id}

  // The first value of header `name` (lower case), or "" when absent.
  std::string header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
      if (key == name) return value;
    }
    return {};
  }
};

class ResponseProducer;

struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;  // besides Content-Type/-Length, Connection
  std::string content_type = "application/json";
  std::string body;
  // When set, the response comes from this producer instead (the fields above are not sent).
  std::shared_ptr<ResponseProducer> producer;

  void set_header(std::string name, std::string value) { headers.emplace_back(std::move(name), std::move(value)); }
  void set_content(std::string text, std::string type) {
    body = std::move(text);
    content_type = std::move(type);
  }
};

// A response produced over time. The connection calls start() once, then poll() on its strand after
// each wake (and once right after start) whenever no write is pending, and abandon() if it ends
// first (client gone, write stalled, server stopping). poll() never blocks.
class ResponseProducer {
 public:
  struct Output {
    // The first output with anything in it carries the head: status and headers, and, unless
    // `streaming`, the whole body (then `done` is set too).
    std::optional<HttpResponse> head;
    bool streaming = false;  // with head: the body follows as chunks
    std::string chunk;       // streaming body bytes ready now (may be empty)
    bool done = false;       // nothing follows
  };
  virtual ~ResponseProducer() = default;

  // `wake` may be called from any thread, any number of times, when more output may be ready.
  virtual void start(std::function<void()> wake) = 0;
  virtual Output poll() = 0;
  // The connection ended before the producer was done: cancel the work behind it.
  virtual void abandon() = 0;
};

}  // namespace longbow::http
