#include "server/frontend/http/http_server.h"

#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "server/frontend/http/api_routes.h"
#include "server/frontend/http/http_connection.h"
#include "server/frontend/http/http_error.h"

namespace longbow::http {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

class HttpServer::Impl : public ConnectionHost {
 public:
  Impl(ServingContext& context, HttpOptions options)
      : options_(std::move(options)), routes_(context), acceptor_(io_) {
    options_.limits.max_body_bytes = options_.max_body_bytes;
    routes_.set_allowed_origins(options_.allowed_origins);
  }

  StatusOr<int> start() {
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(options_.host, ec);
    if (ec) return unavailable(fmt::format("cannot bind HTTP to {}: not an IP address", options_.host));
    const tcp::endpoint endpoint(address, static_cast<unsigned short>(options_.port));
    acceptor_.open(endpoint.protocol(), ec);
    // SO_REUSEADDR (restarts while old connections linger in TIME_WAIT), never SO_REUSEPORT.
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(options_.listen_backlog, ec);
    if (ec) {
      return unavailable(fmt::format("cannot bind HTTP to {}:{} ({})", options_.host, options_.port, ec.message()));
    }
    const int port = acceptor_.local_endpoint().port();
    workers_.emplace(static_cast<size_t>(std::max(1, options_.threads)));
    work_.emplace(io_.get_executor());
    accept();
    for (int i = 0; i < std::max(1, options_.io_threads); ++i) io_threads_.emplace_back([this] { io_.run(); });
    return port;
  }

  void stop() {
    if (io_threads_.empty()) return;
    stopping_ = true;
    asio::post(io_, [this] {
      boost::system::error_code ec;
      acceptor_.close(ec);
    });
    // Idle connections close now; responses in progress get the grace period; then every one goes.
    shut_down_all(/*force=*/false);
    wait_for_connections(options_.limits.stop_grace);
    shut_down_all(/*force=*/true);
    wait_for_connections(std::chrono::seconds(2));
    work_.reset();
    io_.stop();
    for (std::thread& thread : io_threads_) thread.join();
    io_threads_.clear();
    if (workers_) {
      workers_->stop();
      workers_->join();
    }
  }

  int num_connections() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<int>(connections_.size());
  }

  // ---- ConnectionHost ----
  const HttpLimits& limits() const override { return options_.limits; }
  bool stopping() const override { return stopping_.load(); }
  std::string allow_origin(std::string_view origin) const override { return routes_.allow_origin(origin); }

  std::optional<HttpResponse> precheck(HttpRequest& request) override { return routes_.precheck(request); }

  void handle(HttpRequest request, std::function<void(HttpResponse)> respond) override {
    const ApiRoutes::Route* route = routes_.match(request);
    if (!route) {
      HttpResponse res;
      set_error(res, 404, "invalid_request_error", "not_found", "no route for " + request.method + " " + request.path);
      return respond(std::move(res));
    }
    if (!route->on_worker) return respond(routes_.run(*route, request));
    if (queued_.fetch_add(1) >= options_.limits.max_queued_api_requests) {
      --queued_;
      HttpResponse busy;
      set_error(busy, unavailable("the server is busy: too many requests are waiting to be parsed; retry later"));
      return respond(std::move(busy));
    }
    asio::post(*workers_, [this, route, request = std::move(request), respond = std::move(respond)] {
      --queued_;
      respond(routes_.run(*route, request));
    });
  }

  void connection_closed(const HttpConnection* connection) override {
    std::lock_guard<std::mutex> lock(mutex_);
    connections_.erase(connection);
    if (connections_.empty()) closed_.notify_all();
  }

 private:
  void accept() {
    acceptor_.async_accept(asio::make_strand(io_), [this](boost::system::error_code ec, tcp::socket socket) {
      if (!acceptor_.is_open() || ec == asio::error::operation_aborted) return;
      if (ec) {
        // Out of descriptors (EMFILE) and the like: back off instead of spinning on accept().
        spdlog::warn("http: accept failed: {}; retrying in 100 ms", ec.message());
        auto timer = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(100));
        timer->async_wait([this, timer](boost::system::error_code) { accept(); });
        return;
      }
      boost::system::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      if (num_connections() >= options_.limits.max_connections) {
        refuse(std::move(socket));
      } else {
        auto connection = std::make_shared<HttpConnection>(std::move(socket), *this);
        {
          std::lock_guard<std::mutex> lock(mutex_);
          connections_.emplace(connection.get(), connection);
        }
        connection->start();
      }
      accept();
    });
  }

  // Over the connection cap: a short 503 (best effort, never waiting on the client) and close.
  void refuse(tcp::socket socket) {
    static const std::string kRefusal = [] {
      HttpResponse res;
      set_error(res, unavailable("too many connections; retry later"));
      return fmt::format("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\n"
                         "Retry-After: 1\r\nConnection: close\r\n\r\n{}",
                         res.body.size(), res.body);
    }();
    const int fd = socket.native_handle();
    char discard[4096];
    while (::recv(fd, discard, sizeof(discard), MSG_DONTWAIT) > 0) {
    }  // what the client already sent, so that closing does not reset the refusal away
    [[maybe_unused]] const ssize_t sent = ::send(fd, kRefusal.data(), kRefusal.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    if (refusals_++ % 1000 == 0) spdlog::warn("http: connection cap ({}) reached: refusing", options_.limits.max_connections);
  }

  void shut_down_all(bool force) {
    std::vector<std::shared_ptr<HttpConnection>> open;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto& [key, weak] : connections_) {
        if (std::shared_ptr<HttpConnection> connection = weak.lock()) open.push_back(std::move(connection));
      }
    }
    for (const auto& connection : open) connection->shut_down(force);
  }

  void wait_for_connections(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    closed_.wait_for(lock, timeout, [this] { return connections_.empty(); });
  }

  HttpOptions options_;
  ApiRoutes routes_;
  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  tcp::acceptor acceptor_;
  std::vector<std::thread> io_threads_;
  std::optional<asio::thread_pool> workers_;
  mutable std::mutex mutex_;
  std::condition_variable closed_;
  std::unordered_map<const HttpConnection*, std::weak_ptr<HttpConnection>> connections_;
  std::atomic<int> queued_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> refusals_{0};
};

HttpServer::HttpServer(ServingContext& context, HttpOptions options)
    : impl_(std::make_unique<Impl>(context, std::move(options))) {}

HttpServer::~HttpServer() { stop(); }

StatusOr<int> HttpServer::start() { return impl_->start(); }

void HttpServer::stop() { impl_->stop(); }

int HttpServer::num_connections() const { return impl_->num_connections(); }

}  // namespace longbow::http
