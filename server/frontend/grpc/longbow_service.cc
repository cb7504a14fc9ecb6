#include "server/frontend/grpc/longbow_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/engine/request_validation.h"
#include "server/frontend/grpc/grpc_status.h"

namespace longbow::grpc_frontend {
namespace {

namespace pb = longbow::v1;

// How often a waiting Generate checks whether its call was cancelled or its deadline passed.
constexpr std::chrono::milliseconds kPollInterval(50);
constexpr char kRetryAfterSeconds[] = "1";

// Limits are the engine's (request_validation.h), the same as REST's; the counts are checked first so
// that nothing is encoded or copied for a request that asks too much.
StatusOr<GenerateRequest> to_engine_request(const pb::GenerateRequest& request, const ServingContext& context) {
  RETURN_IF_ERROR(check_request_counts(static_cast<size_t>(request.stop().stop_size()),
                                       static_cast<size_t>(request.stop().stop_token_ids_size()),
                                       static_cast<size_t>(request.sampling().logit_bias_size())));
  GenerateRequest out;
  switch (request.prompt_case()) {
    case pb::GenerateRequest::kText:
      out.prompt_tokens = context.encode_text(request.text());
      break;
    case pb::GenerateRequest::kTokenIds:
      out.prompt_tokens.assign(request.token_ids().ids().begin(), request.token_ids().ids().end());
      break;
    case pb::GenerateRequest::PROMPT_NOT_SET:
      return invalid_argument("prompt: give text or token_ids");
  }
  SamplingParams& s = out.sampling;
  const pb::SamplingParams& in = request.sampling();
  if (in.has_temperature()) s.temperature = in.temperature();
  if (in.has_top_p()) s.top_p = in.top_p();
  if (in.has_top_k()) s.top_k = in.top_k();
  if (in.has_min_p()) s.min_p = in.min_p();
  if (in.has_repetition_penalty()) s.repetition_penalty = in.repetition_penalty();
  if (in.has_presence_penalty()) s.presence_penalty = in.presence_penalty();
  if (in.has_frequency_penalty()) s.frequency_penalty = in.frequency_penalty();
  if (in.has_seed()) s.seed = in.seed();
  if (in.has_n()) {
    if (in.n() > 1024) return invalid_argument("n must be in [1, 1024], got " + std::to_string(in.n()));
    s.n = static_cast<int>(in.n());
  }
  for (const auto& [token, bias] : in.logit_bias()) s.logit_bias.emplace_back(token, bias);

  const pb::StopCriteria& stop = request.stop();
  if (stop.has_max_tokens()) {
    if (stop.max_tokens() > static_cast<uint32_t>(INT32_MAX)) return invalid_argument("max_tokens is too large");
    s.max_tokens = static_cast<int>(stop.max_tokens());
  }
  if (stop.min_tokens() > static_cast<uint32_t>(INT32_MAX)) return invalid_argument("min_tokens is too large");
  s.min_tokens = static_cast<int>(stop.min_tokens());
  s.stop.assign(stop.stop().begin(), stop.stop().end());
  s.stop_token_ids.assign(stop.stop_token_ids().begin(), stop.stop_token_ids().end());
  s.ignore_eos = stop.ignore_eos();
  s.include_stop_str_in_output = stop.include_stop_str_in_output();
  if (request.has_structured_output()) {
    const pb::StructuredOutput& structured = request.structured_output();
    switch (structured.kind_case()) {
      case pb::StructuredOutput::kJsonSchema:
        s.structured_output = StructuredOutputSpec{StructuredOutputSpec::Kind::kJsonSchema, structured.json_schema(), {}};
        break;
      case pb::StructuredOutput::kJsonObject:
        if (!structured.json_object()) return invalid_argument("structured_output.json_object must be true when set");
        s.structured_output = StructuredOutputSpec{StructuredOutputSpec::Kind::kJsonObject, "", {}};
        break;
      case pb::StructuredOutput::kRegex:
        s.structured_output = StructuredOutputSpec{StructuredOutputSpec::Kind::kRegex, structured.regex(), {}};
        break;
      case pb::StructuredOutput::kChoice:
        if (structured.choice().choices_size() == 0) return invalid_argument("structured_output.choice needs choices");
        s.structured_output = StructuredOutputSpec{
            StructuredOutputSpec::Kind::kChoice, "",
            std::vector<std::string>(structured.choice().choices().begin(), structured.choice().choices().end())};
        break;
      case pb::StructuredOutput::KIND_NOT_SET:
        break;
    }
  }
  if (request.has_logprobs()) {
    if (request.logprobs() > 1024) return invalid_argument("logprobs is too large");
    s.logprobs = static_cast<int>(request.logprobs());
  }
  if (request.has_prompt_logprobs()) {
    if (request.prompt_logprobs() > 1024) return invalid_argument("prompt_logprobs is too large");
    s.prompt_logprobs = static_cast<int>(request.prompt_logprobs());
  }
  return out;
}

void fill_logprob(const TokenLogprob& lp, pb::TokenLogprob* entry) {
  entry->set_token_id(lp.token);
  entry->set_logprob(lp.logprob);
  entry->set_rank(static_cast<uint32_t>(std::max(0, lp.rank)));
  for (const auto& [token, logprob] : lp.top) {
    pb::TopLogprob* top = entry->add_top();
    top->set_token_id(token);
    top->set_logprob(logprob);
  }
}

void fill_response(const GenerateEvent& event, pb::GenerateResponse* out) {
  out->set_index(static_cast<uint32_t>(event.index));
  out->mutable_token_ids()->Add(event.token_ids.begin(), event.token_ids.end());
  out->set_text(event.text);
  for (const TokenLogprob& lp : event.logprobs) fill_logprob(lp, out->add_logprobs());
  for (const TokenLogprob& lp : event.prompt_logprobs) fill_logprob(lp, out->add_prompt_logprobs());
  if (event.finish_reason) {
    switch (*event.finish_reason) {
      case FinishReason::kStop: out->set_finish_reason(pb::FINISH_REASON_STOP); break;
      case FinishReason::kLength: out->set_finish_reason(pb::FINISH_REASON_LENGTH); break;
    }
  }
  if (event.stop_string) out->set_stop_string(*event.stop_string);
  if (event.stop_token) out->set_stop_token_id(*event.stop_token);
  if (event.usage) {
    out->mutable_usage()->set_prompt_tokens(static_cast<uint32_t>(event.usage->prompt_tokens));
    out->mutable_usage()->set_completion_tokens(static_cast<uint32_t>(event.usage->completion_tokens));
    out->mutable_usage()->set_cached_prompt_tokens(static_cast<uint32_t>(event.usage->cached_prompt_tokens));
  }
}

// A handler's exception becomes INTERNAL, never a crash.
template <typename F>
grpc::Status guarded(std::string_view method, F&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    spdlog::error("gRPC {}: handler failed: {}", method, e.what());
    return grpc::Status(grpc::StatusCode::INTERNAL, std::string("internal error: ") + e.what());
  } catch (...) {
    spdlog::error("gRPC {}: handler failed with an unknown exception", method);
    return grpc::Status(grpc::StatusCode::INTERNAL, "internal error");
  }
}

}  // namespace

Status LongbowService::admit(const grpc::ServerContext& ctx, const std::string& model) const {
  if (context_.requires_api_key()) {
    constexpr std::string_view kBearer = "Bearer ";
    const auto& metadata = ctx.client_metadata();
    auto it = metadata.find("authorization");
    std::string_view value = it == metadata.end() ? std::string_view() : std::string_view(it->second.data(), it->second.size());
    const bool has_bearer = value.substr(0, kBearer.size()) == kBearer;
    if (!has_bearer || !context_.api_key_matches(value.substr(kBearer.size()))) {
      return Status(StatusCode::kUnauthenticated, "missing or incorrect API key (metadata authorization: Bearer <key>)");
    }
  }
  RETURN_IF_ERROR(context_.check_serving());
  return context_.check_model(model);
}

grpc::Status LongbowService::Generate(grpc::ServerContext* ctx, const pb::GenerateRequest* request,
                                      grpc::ServerWriter<pb::GenerateResponse>* writer) {
  return guarded("Generate", [&] { return generate(ctx, *request, writer); });
}

grpc::Status LongbowService::generate(grpc::ServerContext* ctx, const pb::GenerateRequest& request,
                                      grpc::ServerWriter<pb::GenerateResponse>* writer) {
  if (Status admitted = admit(*ctx, request.model()); !admitted.ok()) return to_grpc_status(admitted);
  StatusOr<GenerateRequest> engine_request = to_engine_request(request, context_);
  if (!engine_request.ok()) return to_grpc_status(engine_request.status());
  const std::string id = context_.new_request_id("grpc");
  engine_request->request_id = id;
  const auto start = std::chrono::steady_clock::now();
  const size_t prompt_tokens = engine_request->prompt_tokens.size();

  ServingContext::InFlight in_flight(context_);
  StatusOr<RequestHandle> handle = context_.engine().submit(std::move(*engine_request));
  if (!handle.ok()) {
    spdlog::info("[{}] rejected: {}", id, handle.status().to_string());
    if (handle.status().code() == StatusCode::kResourceExhausted) ctx->AddTrailingMetadata("retry-after", kRetryAfterSeconds);
    return to_grpc_status(handle.status());
  }
  spdlog::info("[{}] Generate: {} prompt tokens", id, prompt_tokens);
  while (true) {
    std::optional<GenerateEvent> event = handle->events->next(kPollInterval);
    if (!event) {
      if (handle->events->done()) return grpc::Status::OK;  // (the last event was taken)
      if (ctx->IsCancelled()) {
        context_.engine().cancel(id);
        const bool expired = ctx->deadline() <= std::chrono::system_clock::now();
        spdlog::info("[{}] {} after {:.3f} s; cancelled", id, expired ? "deadline passed" : "client cancelled",
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        return expired ? grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "deadline exceeded")
                       : grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client");
      }
      continue;
    }
    if (!event->error.ok()) {
      spdlog::info("[{}] failed: {}", id, event->error.to_string());
      return to_grpc_status(event->error);
    }
    pb::GenerateResponse response;
    response.set_request_id(id);
    fill_response(*event, &response);
    if (!writer->Write(response)) {
      context_.engine().cancel(id);
      spdlog::info("[{}] client went away; cancelled", id);
      return grpc::Status(grpc::StatusCode::CANCELLED, "the stream was closed");
    }
    if (event->last) {
      spdlog::info("[{}] done in {:.3f} s", id,
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      return grpc::Status::OK;
    }
  }
}

grpc::Status LongbowService::Tokenize(grpc::ServerContext* ctx, const pb::TokenizeRequest* request,
                                      pb::TokenizeResponse* response) {
  return guarded("Tokenize", [&] {
    if (Status admitted = admit(*ctx, request->model()); !admitted.ok()) return to_grpc_status(admitted);
    std::vector<TokenId> ids = context_.encode_text(request->text(), request->add_special_tokens());
    response->mutable_token_ids()->Add(ids.begin(), ids.end());
    response->set_max_model_len(static_cast<uint32_t>(context_.model().max_model_len));
    return grpc::Status::OK;
  });
}

grpc::Status LongbowService::ListModels(grpc::ServerContext* ctx, const pb::ListModelsRequest* /*request*/,
                                        pb::ListModelsResponse* response) {
  return guarded("ListModels", [&] {
    if (Status admitted = admit(*ctx, ""); !admitted.ok()) return to_grpc_status(admitted);
    const ServedModel& model = context_.model();
    pb::ModelInfo* info = response->add_models();
    info->set_id(model.id);
    info->set_max_model_len(static_cast<uint32_t>(model.max_model_len));
    info->set_vocab_size(static_cast<uint32_t>(model.vocab_size));
    info->set_owned_by("longbow");
    info->set_created(model.created);
    return grpc::Status::OK;
  });
}

}  // namespace longbow::grpc_frontend
