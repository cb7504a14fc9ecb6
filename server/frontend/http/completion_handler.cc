#include "server/frontend/http/completion_handler.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "server/frontend/http/connection_watch.h"
#include "server/frontend/http/event_merger.h"
#include "server/frontend/http/http_error.h"
#include "server/frontend/http/openai_response.h"

namespace longbow::http {
namespace {

// How often a waiting handler checks whether its client is still connected.
constexpr std::chrono::milliseconds kPollInterval(50);

int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void add_usage(Usage* total, const Usage& part) {
  total->prompt_tokens += part.prompt_tokens;
  total->completion_tokens += part.completion_tokens;
  total->cached_prompt_tokens += part.cached_prompt_tokens;
}

// Everything a response needs after the request was submitted.
struct Submitted {
  ResponseMeta meta;
  int n = 1;
  std::vector<std::string> echo_texts;  // per prompt; empty without echo
  bool include_usage = false;
  std::unique_ptr<EventMerger> merger;
  size_t merger_streams = 0;  // engine requests (prompts) behind the merger
  std::chrono::steady_clock::time_point start;
};

void answer_blocking(ServingContext& context, const httplib::Request& req, httplib::Response& res, Submitted s) {
  ServingContext::InFlight in_flight(context);
  const ConnectionWatch watch = ConnectionWatch::for_request(req);
  if (!watch.found()) {
    spdlog::warn("[{}] cannot watch the connection from {}:{} to port {}; a disconnect will not cancel", s.meta.id,
                 req.remote_addr, req.remote_port, req.local_port);
  }
  const size_t num_prompts = s.echo_texts.empty() ? 0 : s.echo_texts.size();
  std::vector<ChoiceOutput> choices;
  Usage usage;
  Status failure;
  auto next_check = std::chrono::steady_clock::now() + kPollInterval;
  while (true) {
    std::optional<EventMerger::Tagged> tagged = s.merger->next(kPollInterval);
    // Events may arrive every step without pause: check the connection by the clock, not on timeouts.
    if (std::chrono::steady_clock::now() >= next_check) {
      next_check = std::chrono::steady_clock::now() + kPollInterval;
      if (watch.peer_closed()) {
        s.merger->cancel(context.engine());
        spdlog::info("[{}] client disconnected after {:.3f} s; cancelled", s.meta.id, seconds_since(s.start));
        res.status = 499;
        return;
      }
    }
    if (!tagged) {
      if (s.merger->done()) break;
      continue;
    }
    const GenerateEvent& event = tagged->event;
    if (!event.error.ok()) {
      failure = event.error;
      s.merger->cancel(context.engine());
      break;
    }
    const size_t index = tagged->stream * static_cast<size_t>(s.n) + static_cast<size_t>(event.index);
    if (index >= choices.size()) choices.resize(index + 1);
    choices[index].append(event);
    if (event.usage) add_usage(&usage, *event.usage);
  }
  if (!failure.ok()) {
    spdlog::warn("[{}] failed: {}", s.meta.id, failure.to_string());
    set_error(res, failure);
    return;
  }
  for (size_t p = 0; p < num_prompts; ++p) {
    for (int i = 0; i < s.n; ++i) {
      const size_t index = p * static_cast<size_t>(s.n) + static_cast<size_t>(i);
      if (index < choices.size()) choices[index].text.insert(0, s.echo_texts[p]);
    }
  }
  res.set_content(to_json_text(full_response(s.meta, choices, usage, context.tokenizer())), "application/json");
  spdlog::info("[{}] done in {:.3f} s: {} prompt + {} completion tokens", s.meta.id, seconds_since(s.start),
               usage.prompt_tokens, usage.completion_tokens);
}

// The state of one SSE response, shared by httplib's content provider and its releaser.
class SseStream {
 public:
  SseStream(ServingContext& context, const httplib::Request& req, Submitted s)
      : context_(context), in_flight_(context), watch_(ConnectionWatch::for_request(req)), s_(std::move(s)) {}

  // One call of httplib's chunked content provider: writes what is ready; false aborts the response.
  bool provide(httplib::DataSink& sink) {
    try {
      return provide_unguarded(sink);
    } catch (const std::exception& e) {
      spdlog::error("[{}] stream failed: {}", s_.meta.id, e.what());
      return false;
    }
  }

  // httplib is done with the response (written, failed, or the client went away).
  void release(bool success) {
    if (!finished_) {
      s_.merger->cancel(context_.engine());
      spdlog::info("[{}] stream ended early after {:.3f} s ({}); cancelled", s_.meta.id, seconds_since(s_.start),
                   success ? "server" : "client disconnected");
    }
    s_.merger.reset();
  }

 private:
  bool write_event(httplib::DataSink& sink, const std::string& data) {
    const std::string event = "data: " + data + "\n\n";
    return sink.write(event.data(), event.size());
  }

  bool finish(httplib::DataSink& sink) {
    if (s_.include_usage && !write_event(sink, to_json_text(usage_chunk(s_.meta, usage_)))) return false;
    if (!write_event(sink, "[DONE]")) return false;
    finished_ = true;
    sink.done();
    spdlog::info("[{}] stream done in {:.3f} s: {} prompt + {} completion tokens", s_.meta.id,
                 seconds_since(s_.start), usage_.prompt_tokens, usage_.completion_tokens);
    return true;
  }

  bool open(httplib::DataSink& sink) {
    static const std::string kAssistant = "assistant";
    const bool chat = s_.meta.endpoint == Endpoint::kChatCompletions;
    const size_t num_prompts = s_.merger_streams;
    for (size_t p = 0; p < num_prompts; ++p) {
      for (int i = 0; i < s_.n; ++i) {
        const int index = static_cast<int>(p) * s_.n + i;
        if (chat) {
          if (!write_event(sink, to_json_text(stream_chunk(s_.meta, index, &kAssistant, "", nullptr,
                                                           context_.tokenizer())))) {
            return false;
          }
        } else if (!s_.echo_texts.empty()) {
          if (!write_event(sink, to_json_text(stream_chunk(s_.meta, index, nullptr, s_.echo_texts[p], nullptr,
                                                           context_.tokenizer())))) {
            return false;
          }
        }
      }
    }
    return true;
  }

  bool provide_unguarded(httplib::DataSink& sink) {
    if (!opened_) {
      opened_ = true;
      return open(sink);
    }
    std::optional<EventMerger::Tagged> tagged = s_.merger->next(kPollInterval);
    if (!tagged) {
      if (s_.merger->done()) return finish(sink);
      return !watch_.peer_closed();
    }
    const GenerateEvent& event = tagged->event;
    if (!event.error.ok()) {
      spdlog::warn("[{}] stream failed: {}", s_.meta.id, event.error.to_string());
      s_.merger->cancel(context_.engine());
      if (!write_event(sink, error_json(event.error))) return false;
      if (!write_event(sink, "[DONE]")) return false;
      finished_ = true;
      sink.done();
      return true;
    }
    const int index = static_cast<int>(tagged->stream) * s_.n + event.index;
    const bool has_content = !event.text.empty() || !event.logprobs.empty() ||
                             (s_.meta.return_token_ids && !event.token_ids.empty());
    if (has_content &&
        !write_event(sink, to_json_text(stream_chunk(s_.meta, index, nullptr, event.text, &event,
                                                     context_.tokenizer())))) {
      return false;
    }
    if (event.finish_reason) {
      ChoiceOutput end;
      end.finish_reason = event.finish_reason;
      end.stop_string = event.stop_string;
      end.stop_token = event.stop_token;
      if (!write_event(sink, to_json_text(finish_chunk(s_.meta, index, end)))) return false;
    }
    if (event.usage) add_usage(&usage_, *event.usage);
    return true;
  }

  ServingContext& context_;
  ServingContext::InFlight in_flight_;
  ConnectionWatch watch_;
  Submitted s_;
  Usage usage_;
  bool opened_ = false;
  bool finished_ = false;
};

}  // namespace

void CompletionHandler::handle(Endpoint endpoint, const httplib::Request& req, httplib::Response& res) {
  const auto start = std::chrono::steady_clock::now();
  if (Status serving = context_.check_serving(); !serving.ok()) return set_error(res, serving);
  std::string param;
  StatusOr<OpenAiRequest> parsed = parse_openai_request(endpoint, req.body, context_, &param);
  if (!parsed.ok()) return set_error(res, parsed.status(), param);
  OpenAiRequest& request = *parsed;
  if (Status model = context_.check_model(request.model); !model.ok()) return set_error(res, model, "model");

  const bool chat = endpoint == Endpoint::kChatCompletions;
  Submitted s;
  s.meta.endpoint = endpoint;
  s.meta.id = context_.new_request_id(chat ? "chatcmpl" : "cmpl");
  s.meta.created = unix_seconds();
  s.meta.model = context_.model().id;
  s.meta.return_token_ids = request.return_token_ids;
  s.meta.logprobs = request.logprobs;
  s.n = request.sampling.n;
  s.echo_texts = std::move(request.echo_texts);
  s.include_usage = request.include_usage;
  s.start = start;
  res.set_header("x-request-id", s.meta.id);

  // One engine request per prompt; a failed submit drops the earlier handles, which cancels them.
  std::vector<RequestHandle> handles;
  size_t prompt_tokens = 0;
  for (size_t i = 0; i < request.prompts.size(); ++i) {
    GenerateRequest engine_request;
    engine_request.request_id = request.prompts.size() == 1 ? s.meta.id : s.meta.id + "-" + std::to_string(i);
    prompt_tokens += request.prompts[i].size();
    engine_request.prompt_tokens = std::move(request.prompts[i]);
    engine_request.sampling = request.sampling;
    StatusOr<RequestHandle> handle = context_.engine().submit(std::move(engine_request));
    if (!handle.ok()) {
      spdlog::info("[{}] rejected: {}", s.meta.id, handle.status().to_string());
      for (const RequestHandle& submitted : handles) context_.engine().cancel(submitted.request_id);
      return set_error(res, handle.status());
    }
    handles.push_back(std::move(*handle));
  }
  spdlog::info("[{}] {} {}: {} prompt(s), {} prompt tokens, n={}{}", s.meta.id, req.method, req.path,
               handles.size(), prompt_tokens, s.n, request.stream ? ", stream" : "");
  const size_t num_streams = handles.size();
  s.merger = std::make_unique<EventMerger>(std::move(handles));
  s.merger_streams = num_streams;

  if (!request.stream) return answer_blocking(context_, req, res, std::move(s));

  auto stream = std::make_shared<SseStream>(context_, req, std::move(s));
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      // Exactly this type: cpp-httplib compresses any other text/* type for clients that accept gzip
      // or br (as fetch does), which holds events back until the stream ends. SSE is UTF-8 by spec.
      "text/event-stream",
      [stream](size_t /*offset*/, httplib::DataSink& sink) { return stream->provide(sink); },
      [stream](bool success) { stream->release(success); });
}

}  // namespace longbow::http
