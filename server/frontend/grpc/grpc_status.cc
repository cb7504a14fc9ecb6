#include "server/frontend/grpc/grpc_status.h"

namespace longbow::grpc_frontend {

grpc::StatusCode grpc_code_for(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return grpc::StatusCode::OK;
    case StatusCode::kInvalidArgument: return grpc::StatusCode::INVALID_ARGUMENT;
    case StatusCode::kNotFound: return grpc::StatusCode::NOT_FOUND;
    // A prompt longer than the context is the caller's argument (REST: 400 context_length_exceeded).
    case StatusCode::kOutOfRange: return grpc::StatusCode::INVALID_ARGUMENT;
    case StatusCode::kResourceExhausted: return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case StatusCode::kUnavailable: return grpc::StatusCode::UNAVAILABLE;
    case StatusCode::kCancelled: return grpc::StatusCode::CANCELLED;
    case StatusCode::kDeadlineExceeded: return grpc::StatusCode::DEADLINE_EXCEEDED;
    case StatusCode::kUnauthenticated: return grpc::StatusCode::UNAUTHENTICATED;
    // As on REST (400): the request asked for something this server does not do.
    case StatusCode::kUnimplemented: return grpc::StatusCode::INVALID_ARGUMENT;
    case StatusCode::kDataLoss: return grpc::StatusCode::DATA_LOSS;
    case StatusCode::kInternal: return grpc::StatusCode::INTERNAL;
  }
  return grpc::StatusCode::INTERNAL;
}

}  // namespace longbow::grpc_frontend
