#include "server/frontend/http/connection_watch.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstdlib>
#include <string>

namespace longbow::http {
namespace {

// "address", port of a socket address (IPv4 or IPv6), as getnameinfo(NI_NUMERICHOST) writes them.
bool describe(const sockaddr_storage& addr, std::string* host, int* port) {
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(addr);
    if (!inet_ntop(AF_INET, &in.sin_addr, text, sizeof(text))) return false;
    *port = ntohs(in.sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(addr);
    if (!inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof(text))) return false;
    *port = ntohs(in6.sin6_port);
  } else {
    return false;
  }
  *host = text;
  return true;
}

// Whether `fd` is a TCP socket from local_port to remote_addr:remote_port.
bool socket_matches(int fd, const httplib::Request& req) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  std::string host;
  int port = -1;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return false;
  if (!describe(addr, &host, &port) || port != req.local_port) return false;
  len = sizeof(addr);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return false;
  return describe(addr, &host, &port) && port == req.remote_port && host == req.remote_addr;
}

int find_socket(const httplib::Request& req) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return -1;
  int found = -1;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    const int fd = std::atoi(entry->d_name);
    if (fd == dirfd(dir)) continue;
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    if (socket_matches(fd, req)) {
      found = fd;
      break;
    }
  }
  closedir(dir);
  return found;
}

}  // namespace

ConnectionWatch ConnectionWatch::for_request(const httplib::Request& req) {
  // A pool thread keeps its connection for many keep-alive requests: try the last socket first.
  thread_local int cached_fd = -1;
  if (cached_fd >= 0 && socket_matches(cached_fd, req)) return ConnectionWatch(cached_fd);
  cached_fd = find_socket(req);
  return ConnectionWatch(cached_fd);
}

bool ConnectionWatch::peer_closed() const {
  if (fd_ < 0) return false;
  pollfd p{fd_, static_cast<short>(POLLRDHUP), 0};
  if (poll(&p, 1, 0) <= 0) return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

}  // namespace longbow::http
