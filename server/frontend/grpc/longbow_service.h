// LongbowService: longbow.v1.Longbow (Generate, Tokenize, ListModels) over the engine API.
//
// Synchronous gRPC handlers: each call runs on a gRPC thread; Generate blocks on its request's
// event channel in short waits so that a cancelled or expired call is noticed within one interval.
// Authentication: when an API key is configured, metadata "authorization: Bearer <key>".
#pragma once

#include <grpcpp/grpcpp.h>

#include "proto/longbow.grpc.pb.h"
#include "server/frontend/serving_context.h"

namespace longbow::grpc_frontend {

class LongbowService final : public longbow::v1::Longbow::Service {
 public:
  explicit LongbowService(ServingContext& context) : context_(context) {}

  grpc::Status Generate(grpc::ServerContext* ctx, const longbow::v1::GenerateRequest* request,
                        grpc::ServerWriter<longbow::v1::GenerateResponse>* writer) override;
  grpc::Status Tokenize(grpc::ServerContext* ctx, const longbow::v1::TokenizeRequest* request,
                        longbow::v1::TokenizeResponse* response) override;
  grpc::Status ListModels(grpc::ServerContext* ctx, const longbow::v1::ListModelsRequest* request,
                          longbow::v1::ListModelsResponse* response) override;

 private:
  // OK, or the status that ends the call: UNAUTHENTICATED, UNAVAILABLE, NOT_FOUND.
  Status admit(const grpc::ServerContext& ctx, const std::string& model) const;
  grpc::Status generate(grpc::ServerContext* ctx, const longbow::v1::GenerateRequest& request,
                        grpc::ServerWriter<longbow::v1::GenerateResponse>* writer);

  ServingContext& context_;
};

}  // namespace longbow::grpc_frontend
