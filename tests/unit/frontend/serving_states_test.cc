// The front ends' answers in the states a real server passes through before and beside normal
// serving, checked in process against both listeners on ephemeral ports:
// - loading (the listeners are up, the model is not): REST /health 503 {"status":"loading"},
//   completions 503 with Retry-After and an OpenAI error body; gRPC health NOT_SERVING and
//   Generate UNAVAILABLE;
// - overloaded (the engine's waiting queue is full): gRPC Generate RESOURCE_EXHAUSTED with a
//   "retry-after" trailer, REST 429 with Retry-After.
// The overloaded engine is never started, so a request it admits stays waiting and the queue stays
// full for as long as the test needs.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <string>

#include "proto/longbow.grpc.pb.h"
#include "server/engine/engine.h"
#include "server/frontend/grpc/grpc_server.h"
#include "server/frontend/http/http_server.h"
#include "server/frontend/serving_context.h"
#include "tests/unit/engine/fake_tokenizer.h"
#include "tests/unit/engine/fake_transformer.h"

namespace longbow {
namespace {

using nlohmann::json;

constexpr char kCompletionBody[] = R"({"prompt": "hello", "max_tokens": 4})";

// Both listeners over one context, on ports the kernel picks.
http::HttpOptions loopback_any_port() {
  http::HttpOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  return options;
}

struct Listeners {
  explicit Listeners(ServingContext& context)
      : http(context, loopback_any_port()), grpc(context, grpc_frontend::GrpcOptions{"127.0.0.1", 0}) {
    StatusOr<int> port = http.start();
    EXPECT_TRUE(port.ok()) << port.status().to_string();
    http_port = port.ok() ? *port : 0;
    port = grpc.start();
    EXPECT_TRUE(port.ok()) << port.status().to_string();
    grpc_port = port.ok() ? *port : 0;
  }
  ~Listeners() {
    grpc.shutdown(std::chrono::milliseconds(0));
    http.stop();
  }

  std::shared_ptr<grpc::Channel> channel() const {
    return grpc::CreateChannel("127.0.0.1:" + std::to_string(grpc_port), grpc::InsecureChannelCredentials());
  }

  http::HttpServer http;
  grpc_frontend::GrpcServer grpc;
  int http_port = 0;
  int grpc_port = 0;
};

// grpc.health.v1.Health/Check for `service`, with the messages encoded by hand (the health proto's
// stubs are not part of Debian's grpc++): the request is field 1 (string), the response field 1
// (enum: 1 SERVING, 2 NOT_SERVING). Returns the status number, or -1 when the call failed.
int health_status(const std::shared_ptr<grpc::Channel>& channel, const std::string& service) {
  std::string request;
  if (!service.empty()) {
    request.push_back(0x0a);
    request.push_back(static_cast<char>(service.size()));  // services here are shorter than 128 bytes
    request += service;
  }
  grpc::Slice slice(request);
  grpc::ByteBuffer request_buffer(&slice, 1);
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  grpc::CompletionQueue queue;
  std::unique_ptr<grpc::ClientAsyncResponseReader<grpc::ByteBuffer>> call =
      stub.PrepareUnaryCall(&context, "/grpc.health.v1.Health/Check", request_buffer, &queue);
  call->StartCall();
  grpc::ByteBuffer response;
  grpc::Status status;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  if (!queue.Next(&tag, &ok) || !ok || !status.ok()) return -1;
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return -1;
  std::string bytes;
  for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  if (bytes.empty()) return 0;  // proto3 default: UNKNOWN
  if (bytes.size() != 2 || bytes[0] != 0x08) return -1;
  return bytes[1];
}

// Runs a Generate stream to its end and returns its final status and trailing metadata.
grpc::Status generate(const std::shared_ptr<grpc::Channel>& channel,
                      std::multimap<grpc::string_ref, grpc::string_ref>* trailers, grpc::ClientContext* context) {
  auto stub = longbow::v1::Longbow::NewStub(channel);
  longbow::v1::GenerateRequest request;
  request.mutable_token_ids()->add_ids(65);
  request.mutable_token_ids()->add_ids(66);
  request.mutable_stop()->set_max_tokens(4);
  std::unique_ptr<grpc::ClientReader<longbow::v1::GenerateResponse>> reader = stub->Generate(context, request);
  longbow::v1::GenerateResponse response;
  while (reader->Read(&response)) {
  }
  grpc::Status status = reader->Finish();
  *trailers = context->GetServerTrailingMetadata();
  return status;
}

TEST(ServingStatesTest, LoadingAnswersNotReadyOnBothFrontEnds) {
  ServingContext context("");
  ASSERT_EQ(context.state(), ServingContext::State::kLoading);
  Listeners listeners(context);
  ASSERT_GT(listeners.http_port, 0);
  ASSERT_GT(listeners.grpc_port, 0);

  httplib::Client client("127.0.0.1", listeners.http_port);
  httplib::Result health = client.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 503);
  EXPECT_EQ(json::parse(health->body).value("status", ""), "loading");

  httplib::Result completion = client.Post("/v1/completions", kCompletionBody, "application/json");
  ASSERT_TRUE(completion);
  EXPECT_EQ(completion->status, 503);
  EXPECT_EQ(completion->get_header_value("Retry-After"), "1");
  json error = json::parse(completion->body);
  ASSERT_TRUE(error.contains("error")) << completion->body;
  EXPECT_NE(error["error"].value("message", "").find("loading"), std::string::npos) << completion->body;

  EXPECT_EQ(health_status(listeners.channel(), ""), 2);  // NOT_SERVING
  EXPECT_EQ(health_status(listeners.channel(), "longbow.v1.Longbow"), 2);

  grpc::ClientContext call;
  std::multimap<grpc::string_ref, grpc::string_ref> trailers;
  grpc::Status status = generate(listeners.channel(), &trailers, &call);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_NE(status.error_message().find("loading"), std::string::npos) << status.error_message();

  // Once the health service is told, it reports SERVING (what serve does after set_ready).
  listeners.grpc.set_serving(true);
  EXPECT_EQ(health_status(listeners.channel(), ""), 1);
}

TEST(ServingStatesTest, FullWaitingQueueIsResourceExhaustedWithRetryAfter) {
  ModelConfig config = fakes::FakeTransformer::default_config();
  fakes::FakeTransformer runtime(config, /*num_pages=*/64);
  fakes::FakeTokenizer tokenizer;
  EngineConfig engine_config;
  engine_config.max_waiting_requests = 1;
  engine_config.scheduler.max_batched_tokens = 256;
  engine_config.scheduler.max_num_seqs = 4;
  engine_config.default_seed = 7;
  StatusOr<std::unique_ptr<Engine>> engine = Engine::create(engine_config, runtime, tokenizer);
  ASSERT_TRUE(engine.ok()) << engine.status().to_string();
  // Not started: the request below stays waiting, so the queue is full.
  GenerateRequest waiting;
  waiting.prompt_tokens = {1, 2, 3};
  waiting.sampling.max_tokens = 2;
  StatusOr<RequestHandle> handle = (*engine)->submit(waiting);
  ASSERT_TRUE(handle.ok()) << handle.status().to_string();

  ServingContext context("");
  ServedModel model;
  model.id = "fake";
  model.max_model_len = config.max_position_embeddings;
  model.vocab_size = config.vocab_size;
  context.set_ready(engine->get(), &tokenizer, model);
  Listeners listeners(context);
  listeners.grpc.set_serving(true);

  grpc::ClientContext call;
  std::multimap<grpc::string_ref, grpc::string_ref> trailers;
  grpc::Status status = generate(listeners.channel(), &trailers, &call);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  auto retry_after = trailers.find("retry-after");
  ASSERT_NE(retry_after, trailers.end()) << "no retry-after trailer";
  EXPECT_EQ(std::string(retry_after->second.data(), retry_after->second.size()), "1");

  httplib::Client client("127.0.0.1", listeners.http_port);
  httplib::Result completion = client.Post("/v1/completions", kCompletionBody, "application/json");
  ASSERT_TRUE(completion);
  EXPECT_EQ(completion->status, 429);
  EXPECT_EQ(completion->get_header_value("Retry-After"), "1");

  (*engine)->stop();
}

}  // namespace
}  // namespace longbow
