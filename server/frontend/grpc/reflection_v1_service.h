// grpc.reflection.v1.ServerReflection: what a client needs to call the server without its .proto
// files (grpcurl list / describe / call), answered from the process's generated descriptor pool.
// Debian's gRPC 1.51 provides only v1alpha (registered by the reflection plugin); newer clients ask
// v1 first.
#pragma once

#include <string>
#include <vector>

#include "proto/grpc_reflection_v1.grpc.pb.h"

namespace longbow::grpc_frontend {

class ReflectionV1Service final : public grpc::reflection::v1::ServerReflection::Service {
 public:
  // `services`: the fully qualified names list_services reports.
  explicit ReflectionV1Service(std::vector<std::string> services) : services_(std::move(services)) {}

  grpc::Status ServerReflectionInfo(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<grpc::reflection::v1::ServerReflectionResponse,
                               grpc::reflection::v1::ServerReflectionRequest>* stream) override;

 private:
  std::vector<std::string> services_;
};

}  // namespace longbow::grpc_frontend
