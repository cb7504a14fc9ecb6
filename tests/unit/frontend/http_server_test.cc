// The HTTP transport's limits, in process over raw loopback sockets (a ServingContext still
// loading: every route answers without a model): keep-alive and pipelining, Expect: 100-continue,
// header byte and count caps, body caps (Content-Length and chunked), refused compression, the API
// key checked before the body, the connection cap, the header deadline, and a stop() that is
// bounded whatever clients do. Timeouts in the test are liveness bounds, never speed assumptions.
#include "server/frontend/http/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "server/frontend/serving_context.h"

namespace longbow::http {
namespace {

using namespace std::chrono_literals;

class Socket {
 public:
  explicit Socket(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval timeout{30, 0};  // liveness bound: a hung server fails the test instead of hanging it
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~Socket() { ::close(fd_); }
  bool connected() const { return connected_; }
  bool send(const std::string& data) {
    size_t sent = 0;
    while (sent < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }
  // One response: the head, then Content-Length bytes of body (or until the peer closes).
  std::string response() {
    while (true) {
      const size_t head_end = buffer_.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        const size_t length = content_length(buffer_.substr(0, head_end));
        if (buffer_.size() >= head_end + 4 + length) {
          std::string out = buffer_.substr(0, head_end + 4 + length);
          buffer_.erase(0, head_end + 4 + length);
          return out;
        }
      }
      if (!fill()) {
        std::string out = std::move(buffer_);
        buffer_.clear();
        return out;
      }
    }
  }
  // True when the peer closed (reads end) before `bound`.
  bool closed_by_peer() {
    while (fill()) {
    }
    return eof_;
  }

 private:
  static size_t content_length(const std::string& head) {
    const size_t at = head.find("Content-Length: ");
    return at == std::string::npos ? 0 : std::stoul(head.substr(at + 16));
  }
  bool fill() {
    char chunk[65536];
    const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n == 0) eof_ = true;
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<size_t>(n));
    return true;
  }
  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string buffer_;
};

int status_of(const std::string& response) {
  if (response.size() < 12 || response.compare(0, 9, "HTTP/1.1 ") != 0) return 0;
  return std::stoi(response.substr(9, 3));
}

class HttpServerTest : public ::testing::Test {
 protected:
  void start(HttpOptions options = {}, std::string api_key = "") {
    context_ = std::make_unique<ServingContext>(std::move(api_key));
    options.host = "127.0.0.1";
    options.port = 0;
    server_ = std::make_unique<HttpServer>(*context_, options);
    StatusOr<int> port = server_->start();
    ASSERT_TRUE(port.ok()) << port.status().to_string();
    port_ = *port;
  }
  void TearDown() override {
    if (server_) server_->stop();
  }

  std::unique_ptr<ServingContext> context_;
  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
};

TEST_F(HttpServerTest, KeepAliveAndPipelinedRequestsAreAnsweredInOrder) {
  start();
  Socket s(port_);
  ASSERT_TRUE(s.connected());
  ASSERT_TRUE(s.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /version HTTP/1.1\r\nHost: x\r\n\r\n"
                     "GET /no/such HTTP/1.1\r\nHost: x\r\n\r\n"));
  const std::string health = s.response();
  EXPECT_EQ(status_of(health), 503) << health;  // loading
  EXPECT_NE(health.find("\"loading\""), std::string::npos);
  EXPECT_NE(health.find("Connection: keep-alive"), std::string::npos);
  const std::string version = s.response();
  EXPECT_EQ(status_of(version), 200) << version;
  EXPECT_NE(version.find("\"version\""), std::string::npos);
  EXPECT_EQ(status_of(s.response()), 404);
}

TEST_F(HttpServerTest, ExpectContinueGetsA100BeforeTheBody) {
  start();
  Socket s(port_);
  const std::string body = R"({"prompt": "hi"})";
  ASSERT_TRUE(s.send("POST /tokenize HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n"));
  EXPECT_EQ(s.response().substr(0, 25), "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(s.send(body));
  const std::string answer = s.response();
  EXPECT_EQ(status_of(answer), 503) << answer;  // the model is loading: an OpenAI error body
  EXPECT_NE(answer.find("\"error\""), std::string::npos);
}

TEST_F(HttpServerTest, OversizedHeadersAreRefused) {
  HttpOptions options;
  options.limits.max_header_bytes = 4096;
  options.limits.max_header_count = 20;
  start(options);
  {
    Socket s(port_);
    ASSERT_TRUE(s.send("GET /health HTTP/1.1\r\nX-Long: " + std::string(8192, 'a') + "\r\n\r\n"));
    EXPECT_EQ(status_of(s.response()), 431);
  }
  {
    Socket s(port_);
    std::string many = "GET /health HTTP/1.1\r\n";
    for (int i = 0; i < 21; ++i) many += "X-H" + std::to_string(i) + ": v\r\n";
    ASSERT_TRUE(s.send(many + "\r\n"));
    const std::string answer = s.response();
    EXPECT_EQ(status_of(answer), 431);
    EXPECT_NE(answer.find("more than 20 header fields"), std::string::npos) << answer;
  }
}

TEST_F(HttpServerTest, OversizedBodiesAreRefusedBeforeTheyAreRead) {
  HttpOptions options;
  options.max_body_bytes = 1024;
  start(options, "key");
  {  // Content-Length over the cap: 413 without the body being sent.
    Socket s(port_);
    ASSERT_TRUE(s.send("POST /tokenize HTTP/1.1\r\nAuthorization: Bearer key\r\nContent-Length: 100000000\r\n\r\n"));
    EXPECT_EQ(status_of(s.response()), 413);
  }
  {  // Chunked: refused once the chunks pass the cap.
    Socket s(port_);
    ASSERT_TRUE(s.send("POST /tokenize HTTP/1.1\r\nAuthorization: Bearer key\r\nTransfer-Encoding: chunked\r\n\r\n"));
    std::string chunk = "400\r\n" + std::string(1024, 'a') + "\r\n";
    for (int i = 0; i < 4; ++i) s.send(chunk);  // may fail once the server has answered
    EXPECT_EQ(status_of(s.response()), 413);
  }
  {  // Compressed bodies are never inflated.
    Socket s(port_);
    ASSERT_TRUE(s.send("POST /tokenize HTTP/1.1\r\nAuthorization: Bearer key\r\nContent-Encoding: gzip\r\n"
                       "Content-Length: 4\r\n\r\nabcd"));
    EXPECT_EQ(status_of(s.response()), 415);
  }
  {  // Without the key: 401 before the body is read.
    Socket s(port_);
    ASSERT_TRUE(s.send("POST /tokenize HTTP/1.1\r\nContent-Length: 1000\r\n\r\n"));
    const std::string answer = s.response();
    EXPECT_EQ(status_of(answer), 401) << answer;
    EXPECT_NE(answer.find("Connection: close"), std::string::npos);
  }
}

TEST_F(HttpServerTest, ConnectionsOverTheCapAreRefusedWithA503) {
  HttpOptions options;
  options.limits.max_connections = 4;
  options.limits.idle_timeout = std::chrono::hours(1);  // the held connections stay open however slow the test
  start(options);
  std::vector<std::unique_ptr<Socket>> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(std::make_unique<Socket>(port_));
    ASSERT_TRUE(held.back()->send("GET /health HTTP/1.1\r\n\r\n"));
    ASSERT_EQ(status_of(held.back()->response()), 503);  // served (loading): the connection is open
  }
  Socket extra(port_);  // sends nothing: the refusal comes at accept
  const std::string refusal = extra.response();
  EXPECT_EQ(status_of(refusal), 503) << refusal;
  EXPECT_NE(refusal.find("too many connections"), std::string::npos) << refusal;
  EXPECT_NE(refusal.find("Retry-After: 1"), std::string::npos);
  EXPECT_EQ(server_->num_connections(), 4);
}

TEST_F(HttpServerTest, TheHeaderDeadlineDropsSlowClients) {
  HttpOptions options;
  options.limits.header_timeout = 200ms;  // the client never finishes its headers: any deadline will do
  start(options);
  Socket slow(port_);
  ASSERT_TRUE(slow.send("GET /health HTTP/1.1\r\nX-Slow: "));
  EXPECT_TRUE(slow.closed_by_peer());  // within the socket's 30 s liveness bound
}

TEST_F(HttpServerTest, StopIsBoundedWhateverClientsDo) {
  HttpOptions options;
  options.limits.stop_grace = 100ms;
  start(options);
  Socket idle(port_);
  Socket partial(port_);
  ASSERT_TRUE(partial.send("POST /tokenize HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc"));  // body never completes
  Socket keep(port_);
  ASSERT_TRUE(keep.send("GET /health HTTP/1.1\r\n\r\n"));
  ASSERT_EQ(status_of(keep.response()), 503);
  // stop() closes idle and reading connections at once and the rest after the grace period; it
  // returns only when every connection is closed and the threads are joined.
  server_->stop();
  EXPECT_EQ(server_->num_connections(), 0);
  EXPECT_TRUE(idle.closed_by_peer());
  EXPECT_TRUE(partial.closed_by_peer());
  EXPECT_TRUE(keep.closed_by_peer());
  Socket after(port_);
  EXPECT_FALSE(after.connected());
}

}  // namespace
}  // namespace longbow::http
