// The gRPC side of a Status, mapped once (no default: a new StatusCode must be mapped here).
#pragma once

#include <grpcpp/support/status.h>

#include "common/status.h"

namespace longbow::grpc_frontend {

grpc::StatusCode grpc_code_for(StatusCode code);

inline grpc::Status to_grpc_status(const Status& status) {
  return status.ok() ? grpc::Status::OK : grpc::Status(grpc_code_for(status.code()), status.message());
}

}  // namespace longbow::grpc_frontend
