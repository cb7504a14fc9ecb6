#include "server/frontend/grpc/reflection_v1_service.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>

#include <unordered_set>

namespace longbow::grpc_frontend {
namespace {

namespace pb = grpc::reflection::v1;
using google::protobuf::DescriptorPool;
using google::protobuf::FileDescriptor;

void set_error(pb::ServerReflectionResponse* response, grpc::StatusCode code, const std::string& message) {
  pb::ErrorResponse* error = response->mutable_error_response();
  error->set_error_code(static_cast<int32_t>(code));
  error->set_error_message(message);
}

// `file` and (depth first) its imports not yet in *sent, each as a serialized FileDescriptorProto.
void add_file(const FileDescriptor* file, std::unordered_set<std::string>* sent, pb::FileDescriptorResponse* out) {
  if (!sent->insert(file->name()).second) return;
  google::protobuf::FileDescriptorProto proto;
  file->CopyTo(&proto);
  out->add_file_descriptor_proto(proto.SerializeAsString());
  for (int i = 0; i < file->dependency_count(); ++i) add_file(file->dependency(i), sent, out);
}

}  // namespace

grpc::Status ReflectionV1Service::ServerReflectionInfo(
    grpc::ServerContext* /*context*/,
    grpc::ServerReaderWriter<pb::ServerReflectionResponse, pb::ServerReflectionRequest>* stream) {
  const DescriptorPool* pool = DescriptorPool::generated_pool();
  std::unordered_set<std::string> sent;  // files this stream has sent (clients cache them)
  pb::ServerReflectionRequest request;
  while (stream->Read(&request)) {
    pb::ServerReflectionResponse response;
    response.set_valid_host(request.host());
    *response.mutable_original_request() = request;
    const FileDescriptor* file = nullptr;
    switch (request.message_request_case()) {
      case pb::ServerReflectionRequest::kFileByFilename:
        file = pool->FindFileByName(request.file_by_filename());
        if (!file) set_error(&response, grpc::StatusCode::NOT_FOUND, "file not found: " + request.file_by_filename());
        break;
      case pb::ServerReflectionRequest::kFileContainingSymbol:
        file = pool->FindFileContainingSymbol(request.file_containing_symbol());
        if (!file) {
          set_error(&response, grpc::StatusCode::NOT_FOUND, "symbol not found: " + request.file_containing_symbol());
        }
        break;
      case pb::ServerReflectionRequest::kFileContainingExtension: {
        const auto* type = pool->FindMessageTypeByName(request.file_containing_extension().containing_type());
        const auto* extension =
            type ? pool->FindExtensionByNumber(type, request.file_containing_extension().extension_number()) : nullptr;
        if (extension) file = extension->file();
        else set_error(&response, grpc::StatusCode::NOT_FOUND, "extension not found");
        break;
      }
      case pb::ServerReflectionRequest::kAllExtensionNumbersOfType: {
        const auto* type = pool->FindMessageTypeByName(request.all_extension_numbers_of_type());
        if (!type) {
          set_error(&response, grpc::StatusCode::NOT_FOUND, "type not found: " + request.all_extension_numbers_of_type());
          break;
        }
        std::vector<const google::protobuf::FieldDescriptor*> extensions;
        pool->FindAllExtensions(type, &extensions);
        pb::ExtensionNumberResponse* numbers = response.mutable_all_extension_numbers_response();
        numbers->set_base_type_name(type->full_name());
        for (const auto* extension : extensions) numbers->add_extension_number(extension->number());
        break;
      }
      case pb::ServerReflectionRequest::kListServices:
        for (const std::string& name : services_) response.mutable_list_services_response()->add_service()->set_name(name);
        break;
      case pb::ServerReflectionRequest::MESSAGE_REQUEST_NOT_SET:
        set_error(&response, grpc::StatusCode::INVALID_ARGUMENT, "the request names no query");
        break;
    }
    if (file) add_file(file, &sent, response.mutable_file_descriptor_response());
    if (!stream->Write(response)) break;
  }
  return grpc::Status::OK;
}

}  // namespace longbow::grpc_frontend
