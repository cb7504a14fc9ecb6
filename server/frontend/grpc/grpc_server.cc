#include "server/frontend/grpc/grpc_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <utility>

#include "server/frontend/grpc/longbow_service.h"
#include "server/frontend/grpc/reflection_v1_service.h"

namespace longbow::grpc_frontend {

struct GrpcServer::Impl {
  Impl(ServingContext& context, GrpcOptions grpc_options) : options(std::move(grpc_options)), service(context) {}

  GrpcOptions options;
  LongbowService service;
  ReflectionV1Service reflection_v1{{longbow::v1::Longbow::service_full_name(), "grpc.health.v1.Health",
                                     "grpc.reflection.v1alpha.ServerReflection",
                                     grpc::reflection::v1::ServerReflection::service_full_name()}};
  std::unique_ptr<grpc::Server> server;
};

GrpcServer::GrpcServer(ServingContext& context, GrpcOptions options)
    : impl_(std::make_unique<Impl>(context, std::move(options))) {}

GrpcServer::~GrpcServer() { shutdown(std::chrono::milliseconds(0)); }

StatusOr<int> GrpcServer::start() {
  // Both are process-wide switches that must be set before the first ServerBuilder.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default, which lets a second server bind the same port and take half
  // of the connections: a port in use must be an error instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  int port = 0;
  const std::string address = impl_->options.host + ":" + std::to_string(impl_->options.port);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&impl_->service);
  builder.RegisterService(&impl_->reflection_v1);
  impl_->server = builder.BuildAndStart();
  if (!impl_->server || port == 0) {
    impl_->server.reset();
    return unavailable("cannot bind gRPC to " + address + " (in use, or not a local address)");
  }
  set_serving(false);
  return port;
}

void GrpcServer::set_serving(bool serving) {
  if (!impl_->server) return;
  grpc::HealthCheckServiceInterface* health = impl_->server->GetHealthCheckService();
  if (!health) return;
  health->SetServingStatus(serving);  // every registered service, including ""
  health->SetServingStatus("", serving);
  health->SetServingStatus(longbow::v1::Longbow::service_full_name(), serving);
}

void GrpcServer::shutdown(std::chrono::milliseconds deadline) {
  if (!impl_->server) return;
  set_serving(false);
  impl_->server->Shutdown(std::chrono::system_clock::now() + deadline);
  impl_->server->Wait();
  impl_->server.reset();
}

}  // namespace longbow::grpc_frontend
