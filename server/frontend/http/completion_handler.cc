#include "server/frontend/http/completion_handler.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cctype>
#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "server/frontend/http/event_merger.h"
#include "server/frontend/http/http_error.h"
#include "server/frontend/http/openai_response.h"

namespace longbow::http {
namespace {

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
  int n = 1;         // engine choices per prompt (best_of when given)
  int returned = 1;  // choices per prompt in the answer (n): the best `returned` of `n` by total logprob
  std::vector<std::string> echo_texts;  // per prompt; empty without echo
  std::vector<TokenId> first_prompt_tokens;  // per prompt, with prompt logprobs (echo or prompt_logprobs)
  bool include_usage = false;
  std::shared_ptr<const tools::ToolOutput> tool_output;  // chat: content and tool_calls from the text
  std::unique_ptr<EventMerger> merger;
  size_t merger_streams = 0;  // engine requests (prompts) behind the merger
  std::chrono::steady_clock::time_point start;
};

// What both answers share: the submitted requests, cancelled when the connection gives up.
class CompletionProducer : public ResponseProducer {
 public:
  CompletionProducer(ServingContext& context, Submitted s) : context_(context), in_flight_(context), s_(std::move(s)) {}

  void start(std::function<void()> wake) override { s_.merger->set_wake(std::move(wake)); }

  void abandon() override {
    if (finished_ || !s_.merger) return;
    s_.merger->cancel(context_.engine());
    spdlog::info("[{}] client disconnected after {:.3f} s; cancelled", s_.meta.id, seconds_since(s_.start));
    s_.merger.reset();
  }

 protected:
  ServingContext& context_;
  ServingContext::InFlight in_flight_;
  Submitted s_;
  Usage usage_;
  bool finished_ = false;
};

// A non-streaming answer: collects every event, then the whole JSON body (or the error).
class BlockingCompletion : public CompletionProducer {
 public:
  using CompletionProducer::CompletionProducer;

  Output poll() override {
    Output out;
    if (finished_ || !s_.merger) return out;
    while (std::optional<EventMerger::Tagged> tagged = s_.merger->try_next()) {
      const GenerateEvent& event = tagged->event;
      if (!event.error.ok()) {
        s_.merger->cancel(context_.engine());
        spdlog::warn("[{}] failed: {}", s_.meta.id, event.error.to_string());
        HttpResponse error;
        error.set_header("x-request-id", s_.meta.id);
        set_error(error, event.error);
        return finish(std::move(error));
      }
      const size_t index = tagged->stream * static_cast<size_t>(s_.n) + static_cast<size_t>(event.index);
      if (index >= choices_.size()) choices_.resize(index + 1);
      choices_[index].append(event);
      if (event.usage) add_usage(&usage_, *event.usage);
    }
    if (!s_.merger->done()) return out;
    share_prompt_logprobs();
    if (s_.returned < s_.n) keep_best();
    for (size_t p = 0; p < s_.echo_texts.size(); ++p) {
      for (int i = 0; i < s_.returned; ++i) {
        const size_t index = p * static_cast<size_t>(s_.returned) + static_cast<size_t>(i);
        if (index < choices_.size()) choices_[index].text.insert(0, s_.echo_texts[p]);
      }
    }
    HttpResponse response;
    response.set_header("x-request-id", s_.meta.id);
    response.set_content(
        to_json_text(full_response(s_.meta, choices_, usage_, context_.tokenizer(), s_.tool_output.get())),
        "application/json");
    spdlog::info("[{}] done in {:.3f} s: {} prompt + {} completion tokens", s_.meta.id, seconds_since(s_.start),
                 usage_.prompt_tokens, usage_.completion_tokens);
    return finish(std::move(response));
  }

 private:
  // Each choice's prompt logprobs came with its first event; the prompt's first token leads them.
  void share_prompt_logprobs() {
    const size_t n = static_cast<size_t>(s_.n);
    for (size_t p = 0; p < s_.first_prompt_tokens.size(); ++p) {
      for (size_t i = p * n; i < std::min((p + 1) * n, choices_.size()); ++i) {
        choices_[i].first_prompt_token = s_.first_prompt_tokens[p];
      }
    }
  }

  // best_of: per prompt, the `returned` candidates with the highest total logprob, best first.
  void keep_best() {
    const size_t n = static_cast<size_t>(s_.n);
    std::vector<ChoiceOutput> kept;
    for (size_t first = 0; first < choices_.size(); first += n) {
      std::vector<std::pair<double, size_t>> ranked;
      for (size_t i = first; i < std::min(first + n, choices_.size()); ++i) {
        double total = 0.0;
        for (const TokenLogprob& lp : choices_[i].logprobs) total += lp.logprob;
        ranked.emplace_back(-total, i);
      }
      std::stable_sort(ranked.begin(), ranked.end());
      for (size_t k = 0; k < std::min(ranked.size(), static_cast<size_t>(s_.returned)); ++k) {
        kept.push_back(std::move(choices_[ranked[k].second]));
      }
    }
    choices_ = std::move(kept);
  }

  Output finish(HttpResponse response) {
    finished_ = true;
    s_.merger.reset();
    Output out;
    out.head = std::move(response);
    out.done = true;
    return out;
  }

  std::vector<ChoiceOutput> choices_;
};

// An SSE answer: the head and the opening chunks at once, then the events as they come, at most
// `batch_bytes` per poll (the connection polls again once that is written).
class StreamingCompletion : public CompletionProducer {
 public:
  StreamingCompletion(ServingContext& context, Submitted s, size_t batch_bytes)
      : CompletionProducer(context, std::move(s)), batch_bytes_(batch_bytes) {}

  Output poll() override {
    Output out;
    if (finished_ || !s_.merger) return out;
    if (!opened_) {
      opened_ = true;
      HttpResponse head;
      // Exactly this type: SSE is UTF-8 by spec, and proxies must not buffer it.
      head.content_type = "text/event-stream";
      head.set_header("Cache-Control", "no-cache");
      head.set_header("X-Accel-Buffering", "no");
      head.set_header("x-request-id", s_.meta.id);
      out.head = std::move(head);
      out.streaming = true;
      open(&out.chunk);
    }
    while (out.chunk.size() < batch_bytes_) {
      std::optional<EventMerger::Tagged> tagged = s_.merger->try_next();
      if (!tagged) {
        if (s_.merger->done()) finish(&out);
        break;
      }
      const GenerateEvent& event = tagged->event;
      if (!event.error.ok()) {
        spdlog::warn("[{}] stream failed: {}", s_.meta.id, event.error.to_string());
        s_.merger->cancel(context_.engine());
        add_event(&out.chunk, error_json(event.error));
        add_event(&out.chunk, "[DONE]");
        finished_ = true;
        out.done = true;
        s_.merger.reset();
        break;
      }
      const int index = static_cast<int>(tagged->stream) * s_.n + event.index;
      if (s_.meta.echo_logprobs && echoed_.insert(index).second) {
        // The echo chunk waited for the prompt's scores, which come with the choice's first event.
        ChoiceOutput prompt;
        prompt.first_prompt_token = s_.first_prompt_tokens[tagged->stream];
        prompt.prompt_logprobs = event.prompt_logprobs;
        add_event(&out.chunk, to_json_text(echo_chunk(s_.meta, index, s_.echo_texts[tagged->stream], prompt,
                                                      context_.tokenizer())));
      }
      // Chat with tools: the text goes through the choice's tool-call splitter first.
      tools::ToolCallStream::Delta delta;
      ToolState* tools = tool_state(index);
      if (tools) {
        delta = tools->stream.feed(event.text);
        if (event.finish_reason) {
          tools::ToolCallStream::Delta last = tools->stream.finish();
          delta.content += last.content;
          for (tools::ToolCall& call : last.calls) delta.calls.push_back(std::move(call));
        }
      } else {
        delta.content = event.text;
      }
      const bool has_content = !delta.content.empty() || !event.logprobs.empty() ||
                               (s_.meta.return_token_ids && !event.token_ids.empty()) ||
                               (s_.meta.prompt_logprobs && !event.prompt_logprobs.empty());
      if (has_content) {
        add_event(&out.chunk, to_json_text(stream_chunk(s_.meta, index, nullptr, delta.content, &event,
                                                        context_.tokenizer())));
      }
      if (!delta.calls.empty()) {
        add_event(&out.chunk, to_json_text(tool_calls_chunk(s_.meta, index, delta.calls, tools->calls)));
        tools->calls += delta.calls.size();
      }
      if (event.finish_reason) {
        ChoiceOutput end;
        end.finish_reason = event.finish_reason;
        end.stop_string = event.stop_string;
        end.stop_token = event.stop_token;
        add_event(&out.chunk, to_json_text(finish_chunk(s_.meta, index, end, tools && tools->calls > 0)));
      }
      if (event.usage) add_usage(&usage_, *event.usage);
    }
    return out;
  }

 private:
  static void add_event(std::string* chunk, const std::string& data) {
    *chunk += "data: ";
    *chunk += data;
    *chunk += "\n\n";
  }

  void open(std::string* chunk) {
    static const std::string kAssistant = "assistant";
    const bool chat = s_.meta.endpoint == Endpoint::kChatCompletions;
    for (size_t p = 0; p < s_.merger_streams; ++p) {
      for (int i = 0; i < s_.n; ++i) {
        const int index = static_cast<int>(p) * s_.n + i;
        if (chat) {
          add_event(chunk, to_json_text(stream_chunk(s_.meta, index, &kAssistant, "", nullptr, context_.tokenizer())));
        } else if (!s_.echo_texts.empty() && !s_.meta.echo_logprobs) {
          add_event(chunk, to_json_text(stream_chunk(s_.meta, index, nullptr, s_.echo_texts[p], nullptr,
                                                     context_.tokenizer())));
        }
      }
    }
  }

  void finish(Output* out) {
    if (s_.include_usage) add_event(&out->chunk, to_json_text(usage_chunk(s_.meta, usage_)));
    add_event(&out->chunk, "[DONE]");
    finished_ = true;
    out->done = true;
    s_.merger.reset();
    spdlog::info("[{}] stream done in {:.3f} s: {} prompt + {} completion tokens", s_.meta.id,
                 seconds_since(s_.start), usage_.prompt_tokens, usage_.completion_tokens);
  }

  // A choice's tool-call splitter and the calls it has released.
  struct ToolState {
    explicit ToolState(const tools::ToolOutput& output) : stream(output) {}
    tools::ToolOutput::Stream stream;
    size_t calls = 0;
  };

  // Null unless this is a chat answer with tools.
  ToolState* tool_state(int index) {
    if (!s_.tool_output || !s_.tool_output->active()) return nullptr;
    if (static_cast<size_t>(index) >= tool_states_.size()) tool_states_.resize(static_cast<size_t>(index) + 1);
    std::unique_ptr<ToolState>& state = tool_states_[static_cast<size_t>(index)];
    if (!state) state = std::make_unique<ToolState>(*s_.tool_output);
    return state.get();
  }

  size_t batch_bytes_;
  bool opened_ = false;
  std::set<int> echoed_;  // choices whose echo chunk went out (echo with logprobs)
  std::vector<std::unique_ptr<ToolState>> tool_states_;
};

constexpr size_t kStreamBatchBytes = 64 << 10;

bool valid_client_request_id(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == ':')) return false;
  }
  return true;
}

}  // namespace

HttpResponse CompletionHandler::handle(Endpoint endpoint, const HttpRequest& req) {
  HttpResponse res;
  const auto start = std::chrono::steady_clock::now();
  if (Status serving = context_.check_serving(); !serving.ok()) {
    set_error(res, serving);
    return res;
  }
  std::string param;
  StatusOr<OpenAiRequest> parsed = parse_openai_request(endpoint, req.body, context_, &param);
  if (!parsed.ok()) {
    set_error(res, parsed.status(), param);
    return res;
  }
  OpenAiRequest& request = *parsed;
  if (Status model = context_.check_model(request.model); !model.ok()) {
    set_error(res, model, "model");
    return res;
  }

  const bool chat = endpoint == Endpoint::kChatCompletions;
  // A client's X-Request-Id names the request (the response id is "chatcmpl-<it>"; logs use it);
  // two live requests cannot share one.
  const std::string client_id = req.header("x-request-id");
  if (!client_id.empty() && !valid_client_request_id(client_id)) {
    set_error(res, invalid_argument("X-Request-Id must be 1-128 characters of A-Z, a-z, 0-9, '-', '_', '.' and ':'"),
              "X-Request-Id");
    return res;
  }
  Submitted s;
  s.meta.endpoint = endpoint;
  s.meta.id = client_id.empty() ? context_.new_request_id(chat ? "chatcmpl" : "cmpl")
                                : std::string(chat ? "chatcmpl-" : "cmpl-") + client_id;
  s.meta.created = unix_seconds();
  s.meta.model = context_.model().id;
  s.meta.return_token_ids = request.return_token_ids;
  s.meta.logprobs = request.logprobs;
  s.meta.echo_logprobs = request.echo_logprobs;
  s.meta.prompt_logprobs = request.prompt_logprobs.has_value();
  if (request.sampling.prompt_logprobs) {
    // (An empty prompt is refused by the engine's submit below; 0 only keeps the lists aligned.)
    for (const std::vector<TokenId>& prompt : request.prompts) {
      s.first_prompt_tokens.push_back(prompt.empty() ? TokenId{0} : prompt.front());
    }
  }
  s.n = request.sampling.n;
  s.returned = request.best_of > 0 ? request.n : s.n;
  s.echo_texts = std::move(request.echo_texts);
  s.include_usage = request.include_usage;
  s.tool_output = std::move(request.tool_output);
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
      set_error(res, handle.status());
      return res;
    }
    handles.push_back(std::move(*handle));
  }
  spdlog::info("[{}] {} {}: {} prompt(s), {} prompt tokens, n={}{}{}", s.meta.id, req.method, req.path, handles.size(),
               prompt_tokens, s.n, request.stream ? ", stream" : "",
               request.user.empty() ? std::string() : fmt::format(", user \"{}\"", request.user.substr(0, 256)));
  s.merger_streams = handles.size();
  s.merger = std::make_unique<EventMerger>(std::move(handles));
  if (request.stream) {
    res.producer = std::make_shared<StreamingCompletion>(context_, std::move(s), kStreamBatchBytes);
  } else {
    res.producer = std::make_shared<BlockingCompletion>(context_, std::move(s));
  }
  return res;
}

}  // namespace longbow::http
