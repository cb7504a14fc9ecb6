#include "server/frontend/http/http_connection.h"

#include <sys/socket.h>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/status.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <exception>
#include <utility>

#include "server/frontend/http/http_error.h"

namespace longbow::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

// Header values come from handlers; a CR or LF in one would split the response.
std::string header_safe(std::string_view value) {
  std::string out(value);
  for (char& ch : out) {
    if (ch == '\r' || ch == '\n') ch = ' ';
  }
  return out;
}

std::string_view reason_phrase(int status) {
  if (status == 499) return "Client Closed Request";
  std::string_view reason = bhttp::obsolete_reason(bhttp::int_to_status(static_cast<unsigned>(status)));
  if (reason.empty() || reason.front() == '<') return "Status";
  return reason;
}

bool is_disconnect(const beast::error_code& ec) {
  return ec == bhttp::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == beast::error::timeout || ec == asio::error::operation_aborted ||
         ec == bhttp::error::partial_message;
}

}  // namespace

HttpConnection::HttpConnection(asio::ip::tcp::socket socket, ConnectionHost& host)
    : stream_(std::move(socket)), host_(host), limits_(host.limits()) {
  beast::error_code ec;
  const auto endpoint = stream_.socket().remote_endpoint(ec);
  if (!ec) remote_ = fmt::format("{}:{}", endpoint.address().to_string(), endpoint.port());
}

void HttpConnection::start() {
  asio::post(stream_.get_executor(), [self = shared_from_this()] { self->read_header(); });
}

void HttpConnection::shut_down(bool force) {
  asio::post(stream_.get_executor(), [self = shared_from_this(), force] {
    self->shutting_down_ = true;
    if (self->state_ == State::kReading || force) self->close();
  });
}

// ---- reading -----------------------------------------------------------------------------------

void HttpConnection::read_header() {
  if (state_ == State::kClosed) return;
  if (shutting_down_ || host_.stopping()) return close();
  state_ = State::kReading;
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(std::min<size_t>(limits_.max_header_bytes, UINT32_MAX)));
  parser_->body_limit(limits_.max_body_bytes);
  stream_.expires_after(requests_served_ == 0 ? limits_.header_timeout : limits_.idle_timeout);
  bhttp::async_read_header(stream_, buffer_, *parser_,
                           [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
}

void HttpConnection::on_header(beast::error_code ec) {
  if (state_ == State::kClosed) return;
  if (ec == bhttp::error::header_limit) {
    return reject(431, "request_header_fields_too_large",
                  fmt::format("the request line and headers exceed {} bytes", limits_.max_header_bytes));
  }
  if (ec == bhttp::error::body_limit) {
    return reject(413, "request_too_large", fmt::format("the request body exceeds {} bytes", limits_.max_body_bytes));
  }
  if (ec) {
    if (is_disconnect(ec)) {  // idle, slow (deadline) or gone: nothing to answer
      spdlog::debug("http: {}: closing ({})", remote_, ec.message());
      return close();
    }
    return reject(400, "bad_request", "malformed HTTP request: " + ec.message());
  }
  const auto& message = parser_->get();
  if (static_cast<size_t>(std::distance(message.begin(), message.end())) > limits_.max_header_count) {
    return reject(431, "request_header_fields_too_large",
                  fmt::format("more than {} header fields", limits_.max_header_count));
  }
  // Nothing is decompressed: a small compressed body could expand without bound.
  const auto encoding = message[bhttp::field::content_encoding];
  if (!encoding.empty() && !iequals(encoding, "identity")) {
    return reject(415, "unsupported_media_type", "compressed request bodies (Content-Encoding) are not accepted");
  }
  HttpRequest head = request_head();
  origin_ = head.header("origin");
  if (std::optional<HttpResponse> early = host_.precheck(head)) {
    keep_alive_ = false;  // the body (if any) is not read
    parser_.reset();
    ++requests_served_;
    return write_whole(*early);
  }
  if (parser_->is_done()) return dispatch();
  if (iequals(message[bhttp::field::expect], "100-continue")) {
    // The body fits (body_limit already checked a Content-Length): ask for it.
    out_ = "HTTP/1.1 100 Continue\r\n\r\n";
    stream_.expires_after(limits_.write_timeout);
    asio::async_write(stream_, asio::buffer(out_), [self = shared_from_this()](beast::error_code wec, size_t) {
      if (self->state_ == State::kClosed) return;
      if (wec) return self->close();
      self->read_body();
    });
    return;
  }
  read_body();
}

void HttpConnection::read_body() {
  stream_.expires_after(limits_.body_timeout);
  bhttp::async_read(stream_, buffer_, *parser_,
                    [self = shared_from_this()](beast::error_code ec, size_t) { self->on_body(ec); });
}

void HttpConnection::on_body(beast::error_code ec) {
  if (state_ == State::kClosed) return;
  if (ec == bhttp::error::body_limit) {
    return reject(413, "request_too_large", fmt::format("the request body exceeds {} bytes", limits_.max_body_bytes));
  }
  if (ec) {
    if (is_disconnect(ec)) {
      spdlog::debug("http: {}: closing while reading a body ({})", remote_, ec.message());
      return close();
    }
    return reject(400, "bad_request", "malformed HTTP request body: " + ec.message());
  }
  dispatch();
}

// ---- handling ----------------------------------------------------------------------------------

HttpRequest HttpConnection::request_head() const {
  const auto& message = parser_->get();
  HttpRequest request;
  request.method = std::string(message.method_string());
  request.target = std::string(message.target());
  request.path = request.target.substr(0, request.target.find('?'));
  for (const auto& field : message) request.headers.emplace_back(lower(field.name_string()), std::string(field.value()));
  request.remote = remote_;
  return request;
}

void HttpConnection::dispatch() {
  HttpRequest request = request_head();
  origin_ = request.header("origin");
  keep_alive_ = parser_->get().keep_alive();
  request.body = std::move(parser_->get().body());
  parser_.reset();
  ++requests_served_;

  state_ = State::kHandling;
  stream_.expires_never();
  // No I/O may be pending while a worker or the engine prepares the response: the connection keeps
  // itself alive until the response is written or the connection closes.
  busy_self_ = shared_from_this();
  watch_peer();
  host_.handle(std::move(request), [self = shared_from_this()](HttpResponse response) {
    asio::post(self->stream_.get_executor(), [self, response = std::move(response)]() mutable {
      self->respond(std::move(response));
    });
  });
}

// While a response is prepared nothing is read; a readable socket then means the client hung up
// (or pipelined its next request, which stays in the socket until this response is written).
void HttpConnection::watch_peer() {
  if (watching_) return;
  watching_ = true;
  stream_.socket().async_wait(asio::ip::tcp::socket::wait_read, [self = shared_from_this()](beast::error_code ec) {
    self->watching_ = false;
    if (ec || self->state_ == State::kClosed || self->state_ == State::kReading) return;
    char byte = 0;
    const ssize_t n = ::recv(self->stream_.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      spdlog::debug("http: {} hung up before its response was complete", self->remote_);
      return self->close();
    }
    // Nothing to read: this wait was armed for an earlier request and woken by this one's bytes,
    // which the read took. Watch again. (Pipelined bytes, n > 0, are left for after the response.)
    if (n < 0) self->watch_peer();
  });
}

void HttpConnection::respond(HttpResponse response) {
  if (state_ == State::kClosed) {
    if (response.producer) response.producer->abandon();
    return;
  }
  if (!response.producer) return write_whole(response);
  producer_ = std::move(response.producer);
  producer_streaming_ = false;
  producer_done_ = false;
  std::weak_ptr<HttpConnection> weak = weak_from_this();
  producer_->start([weak] {
    if (std::shared_ptr<HttpConnection> self = weak.lock()) self->wake();
  });
  pump();
}

void HttpConnection::wake() {
  if (wake_pending_.exchange(true)) return;
  asio::post(stream_.get_executor(), [self = shared_from_this()] {
    self->wake_pending_ = false;
    self->pump();
  });
}

void HttpConnection::pump() {
  if (state_ == State::kClosed || !producer_ || writing_ || producer_done_) return;
  ResponseProducer::Output out;
  try {
    out = producer_->poll();
  } catch (const std::exception& e) {
    spdlog::error("http: {}: response failed: {}", remote_, e.what());
    return close();
  }
  std::string bytes;
  if (out.head) {
    producer_streaming_ = out.streaming;
    if (out.streaming) {
      bytes = serialize_head(*out.head, /*chunked=*/true, 0);
    } else {
      bytes = serialize_head(*out.head, /*chunked=*/false, out.head->body.size());
      bytes += out.head->body;
      out.done = true;
    }
  }
  if (producer_streaming_ && !out.chunk.empty()) {
    bytes += fmt::format("{:x}\r\n", out.chunk.size());
    bytes += out.chunk;
    bytes += "\r\n";
  }
  if (out.done) {
    if (producer_streaming_) bytes += "0\r\n\r\n";
    producer_done_ = true;
  }
  if (bytes.empty()) return;  // nothing yet: the next wake polls again
  write(std::move(bytes), out.done);
}

// ---- writing -----------------------------------------------------------------------------------

std::string HttpConnection::serialize_head(const HttpResponse& response, bool chunked, size_t content_length) {
  const bool keep = keep_alive_ && !shutting_down_ && !host_.stopping() &&
                    requests_served_ < limits_.max_requests_per_connection;
  keep_alive_ = keep;  // after_response() follows what this head announced
  std::string head = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\n", response.status, reason_phrase(response.status),
                                 header_safe(response.content_type));
  if (chunked) {
    head += "Transfer-Encoding: chunked\r\n";
  } else if (response.status == 204) {
    // No Content-Length on a 204 (RFC 9110 8.6).
  } else {
    head += fmt::format("Content-Length: {}\r\n", content_length);
  }
  head += keep ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  if (!origin_.empty()) {
    if (const std::string allowed = host_.allow_origin(origin_); !allowed.empty()) {
      head += fmt::format("Access-Control-Allow-Origin: {}\r\nVary: Origin\r\nAccess-Control-Expose-Headers: "
                          "x-request-id\r\n", header_safe(allowed));
    }
  }
  for (const auto& [name, value] : response.headers) {
    head += header_safe(name);
    head += ": ";
    head += header_safe(value);
    head += "\r\n";
  }
  head += "\r\n";
  return head;
}

void HttpConnection::write_whole(const HttpResponse& response) {
  std::string bytes = serialize_head(response, /*chunked=*/false, response.body.size());
  bytes += response.body;
  write(std::move(bytes), /*last=*/true);
}

void HttpConnection::write(std::string bytes, bool last) {
  state_ = State::kWriting;
  writing_ = true;
  out_ = std::move(bytes);
  stream_.expires_after(limits_.write_timeout);
  asio::async_write(stream_, asio::buffer(out_), [self = shared_from_this(), last](beast::error_code ec, size_t) {
    self->on_written(ec, last);
  });
}

void HttpConnection::on_written(beast::error_code ec, bool last) {
  writing_ = false;
  if (state_ == State::kClosed) return;
  if (ec) {
    spdlog::debug("http: {}: write failed ({}); closing", remote_, ec.message());
    return close();
  }
  if (!last) {
    stream_.expires_never();
    watch_peer();
    return pump();
  }
  producer_.reset();
  after_response();
}

void HttpConnection::after_response() {
  // Reading again: the pending read holds the connection (`keep` until it is started).
  const std::shared_ptr<HttpConnection> keep = std::move(busy_self_);
  if (!keep_alive_ || shutting_down_ || host_.stopping() || requests_served_ >= limits_.max_requests_per_connection) {
    return linger_close();
  }
  read_header();
}

// Closing a socket with unread input makes the kernel send a reset, which can destroy the response
// before the client reads it (a 413 while the client is still sending its body). So: end our side,
// read and discard for a moment (bounded in time and bytes), then close.
void HttpConnection::linger_close() {
  state_ = State::kReading;  // shut_down() may close it at once
  beast::error_code ec;
  stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  if (ec) return close();
  stream_.expires_after(kLingerTime);
  linger_read(0);
}

void HttpConnection::linger_read(size_t discarded) {
  if (discarded > kLingerBytes) return close();
  if (!linger_buffer_) linger_buffer_ = std::make_unique<std::array<char, 16384>>();
  stream_.async_read_some(asio::buffer(*linger_buffer_),
                          [self = shared_from_this(), discarded](beast::error_code ec, size_t n) {
                            if (self->state_ == State::kClosed) return;
                            if (ec) return self->close();
                            self->linger_read(discarded + n);
                          });
}

void HttpConnection::reject(int status, std::string_view code, std::string_view message) {
  spdlog::debug("http: {}: {} ({})", remote_, status, message);
  HttpResponse response;
  set_error(response, status, "invalid_request_error", code, message);
  keep_alive_ = false;  // the rest of what the client sends is not read
  parser_.reset();
  write_whole(response);
}

void HttpConnection::close() {
  if (state_ == State::kClosed) return;
  const std::shared_ptr<HttpConnection> keep = std::move(busy_self_);  // released on return
  state_ = State::kClosed;
  if (producer_ && !producer_done_) producer_->abandon();
  producer_.reset();
  beast::error_code ec;
  stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  stream_.close();
  host_.connection_closed(this);
}

}  // namespace longbow::http
