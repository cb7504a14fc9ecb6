// GrpcServer: the gRPC front end (proto/longbow.proto), plus grpc.health.v1 and server reflection.
//
// This header keeps grpcpp out of its includers (a TU that includes grpcpp costs ~12 s to compile):
// the service lives behind a pointer to an implementation in grpc_server.cc.
// Generate streams one message per engine event; a client cancel or deadline cancels the engine
// request within one poll interval (its pages are freed at the engine's next step). Health: the
// overall status ("") and "longbow.v1.Longbow" are NOT_SERVING until set_serving(true).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "common/status.h"
#include "server/frontend/serving_context.h"

namespace longbow::grpc_frontend {

struct GrpcOptions {
  std::string host = "127.0.0.1";
  int port = 8001;  // 0: any free port (start() returns it)
};

class GrpcServer {
 public:
  GrpcServer(ServingContext& context, GrpcOptions options);
  ~GrpcServer();  // shutdown(0)
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  // Builds and starts the server. Returns the bound port; UNAVAILABLE when binding fails.
  StatusOr<int> start();
  // The health service's answer for the whole server and for longbow.v1.Longbow.
  void set_serving(bool serving);
  // Stops accepting calls, lets running ones finish until `deadline` from now, then cancels them.
  void shutdown(std::chrono::milliseconds deadline);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace longbow::grpc_frontend
