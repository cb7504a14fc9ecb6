// HttpConnection: one client connection of the event-driven HTTP/1.1 server (Boost.Beast over Asio).
//
// Every operation runs on the connection's strand; no thread ever waits on a client. The connection
// reads a request's headers within HttpLimits::header_timeout (idle_timeout between keep-alive
// requests), refuses oversized headers (431), bodies (413, chunked included, before they are
// read), compressed bodies (415, nothing is decompressed), then hands the request to its host and
// writes the response it gets back. While the response is being prepared it watches the socket, so
// a client that hangs up cancels its work. Streams are written one batch at a time (backpressure),
// each write bounded by write_timeout. Range headers are ignored: every response is whole.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "server/frontend/http/http_limits.h"
#include "server/frontend/http/http_message.h"

namespace longbow::http {

class HttpConnection;

// What a connection needs from its server.
class ConnectionHost {
 public:
  virtual ~ConnectionHost() = default;
  virtual const HttpLimits& limits() const = 0;
  // With only the request line and headers read: a response to send without reading the body (an
  // unknown route, a missing API key), or nullopt to go on.
  virtual std::optional<HttpResponse> precheck(HttpRequest& head) = 0;
  // Produces the response to `request`: calls `respond` exactly once, on any thread.
  virtual void handle(HttpRequest request, std::function<void(HttpResponse)> respond) = 0;
  // The server is stopping: no keep-alive.
  virtual bool stopping() const = 0;
  // CORS: the Access-Control-Allow-Origin value for a request from `origin` ("" when that origin
  // is not allowed or CORS is off).
  virtual std::string allow_origin(std::string_view origin) const = 0;
  virtual void connection_closed(const HttpConnection* connection) = 0;
};

class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
 public:
  // `socket`'s executor must be a strand of its own.
  HttpConnection(boost::asio::ip::tcp::socket socket, ConnectionHost& host);
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  void start();
  // From any thread. Closes the connection now if it is between requests; otherwise after the
  // response in progress, or at once when `force`.
  void shut_down(bool force);

 private:
  enum class State { kReading, kHandling, kWriting, kClosed };

  void read_header();
  void on_header(boost::beast::error_code ec);
  void read_body();
  void on_body(boost::beast::error_code ec);
  HttpRequest request_head() const;
  void dispatch();
  void respond(HttpResponse response);
  // Writes a complete response, then reads the next request or closes.
  void write_whole(const HttpResponse& response);
  void write(std::string bytes, bool last);
  void on_written(boost::beast::error_code ec, bool last);
  void pump();  // drives producer_: polls it when no write is pending and writes what it gives
  void wake();  // from any thread: schedule pump()
  void watch_peer();
  void reject(int status, std::string_view code, std::string_view message);
  void after_response();
  void linger_close();
  void linger_read(size_t discarded);
  void close();

  static constexpr std::chrono::milliseconds kLingerTime{2000};
  static constexpr size_t kLingerBytes = 4 << 20;

  std::string serialize_head(const HttpResponse& response, bool chunked, size_t content_length);

  boost::beast::tcp_stream stream_;
  ConnectionHost& host_;
  const HttpLimits& limits_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  std::string remote_;
  std::string origin_;  // the current request's Origin header (CORS)
  State state_ = State::kReading;
  int requests_served_ = 0;
  bool keep_alive_ = false;
  bool shutting_down_ = false;
  bool watching_ = false;
  std::string out_;  // the bytes being written
  std::unique_ptr<std::array<char, 16384>> linger_buffer_;

  std::shared_ptr<HttpConnection> busy_self_;  // set while a response is prepared (no I/O pending)
  std::shared_ptr<ResponseProducer> producer_;
  bool producer_streaming_ = false;
  bool producer_done_ = false;
  bool writing_ = false;
  std::atomic<bool> wake_pending_{false};
};

}  // namespace longbow::http
