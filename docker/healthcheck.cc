// longbow-healthcheck: the image's HEALTHCHECK probe.
//
// Sends `GET /health` to the server inside the same container (127.0.0.1) and exits 0 when the
// answer is HTTP 200, 1 otherwise (refused, timed out, 503 while loading or draining, ...),
// which is exactly the contract of Docker's HEALTHCHECK. It exists so the runtime image needs
// no curl (and so no libcurl, OpenSSL, nghttp2, ... in the image): plain POSIX sockets, one file.
//
//   longbow-healthcheck [--port N] [--path /health] [--timeout SECONDS]
//
// The port defaults to $LONGBOW_PORT, then 8000 (the entrypoint passes $LONGBOW_PORT to
// `longbow serve --port`, so the probe and the server agree).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

[[noreturn]] void unhealthy(const std::string& why) {
  std::fprintf(stderr, "unhealthy: %s\n", why.c_str());
  std::exit(1);
}

// SIGALRM bounds the whole probe (connect + request + response) by one deadline.
void on_alarm(int) {
  static const char kMsg[] = "unhealthy: timed out\n";
  ssize_t ignored = write(STDERR_FILENO, kMsg, sizeof(kMsg) - 1);
  (void)ignored;
  _exit(1);
}

int parse_int(const char* text, const char* what, int lo, int hi) {
  char* end = nullptr;
  long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || v < lo || v > hi) {
    std::fprintf(stderr, "longbow-healthcheck: bad %s '%s'\n", what, text);
    std::exit(2);  // usage error: distinct from "unhealthy"
  }
  return static_cast<int>(v);
}

}  // namespace

int main(int argc, char** argv) {
  const char* env_port = std::getenv("LONGBOW_PORT");
  int port = parse_int(env_port && *env_port ? env_port : "8000", "LONGBOW_PORT", 1, 65535);
  std::string path = "/health";
  int timeout_s = 5;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "usage: %s [--port N] [--path /health] [--timeout SECONDS]\n", argv[0]);
      return 2;
    }
    const char* value = argv[++i];
    if (arg == "--port") {
      port = parse_int(value, "--port", 1, 65535);
    } else if (arg == "--path") {
      path = value;
    } else if (arg == "--timeout") {
      timeout_s = parse_int(value, "--timeout", 1, 3600);
    } else {
      std::fprintf(stderr, "longbow-healthcheck: unknown option %s\n", arg.c_str());
      return 2;
    }
  }

  std::signal(SIGALRM, on_alarm);
  alarm(static_cast<unsigned>(timeout_s));

  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) unhealthy(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    unhealthy("connect 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(errno));
  }

  // HTTP/1.0 + Connection: close: the server closes after one answer, so reading to EOF is safe.
  std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  for (size_t sent = 0; sent < request.size();) {
    ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) unhealthy(std::string("send: ") + std::strerror(errno));
    sent += static_cast<size_t>(n);
  }

  // Only the status line matters: "HTTP/1.x 200 ...".
  std::string head;
  char buf[512];
  while (head.find("\r\n") == std::string::npos && head.size() < 4096) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0) unhealthy(std::string("recv: ") + std::strerror(errno));
    if (n == 0) break;
    head.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  std::string status_line = head.substr(0, head.find("\r\n"));
  if (status_line.rfind("HTTP/1.", 0) != 0 || status_line.size() < 12) {
    unhealthy("not an HTTP answer: '" + status_line + "'");
  }
  if (status_line.compare(9, 3, "200") != 0) unhealthy(status_line);
  std::printf("healthy: %s\n", status_line.c_str());
  return 0;
}
