// ConnectionWatch: tells a handler that the client behind its request has gone away.
//
// cpp-httplib 0.11 gives handlers no access to the socket, and for a non-streaming request a
// handler writes nothing until generation ends, so a write error comes too late to cancel. A
// worker thread of its pool serves one connection at a time, and the request records both ends'
// addresses; the watch finds the socket with those addresses among the process's descriptors (once
// per connection: the result is cached per thread and re-verified) and polls it for a hang-up.
#pragma once

#include <httplib.h>

namespace longbow::http {

class ConnectionWatch {
 public:
  // The socket carrying `req`; when none is found, peer_closed() is always false.
  static ConnectionWatch for_request(const httplib::Request& req);

  // The peer closed or reset the connection (a non-blocking check).
  bool peer_closed() const;
  bool found() const { return fd_ >= 0; }

 private:
  explicit ConnectionWatch(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace longbow::http
