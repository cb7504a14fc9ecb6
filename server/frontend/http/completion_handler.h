// POST /v1/completions and /v1/chat/completions: parse, submit to the engine, answer in one JSON
// body or as an OpenAI SSE stream.
//
// Streams: `data: <chunk>\n\n` events; chat choices open with a role chunk, each choice ends with a
// chunk carrying finish_reason (its delta empty), then an optional usage chunk (`choices: []`,
// stream_options.include_usage) and `data: [DONE]`. An error after the 200 goes out as
// `data: {"error": {...}}` before [DONE]. Both kinds of answer are ResponseProducers woken by the
// engine's events (no thread waits for a request): a client that disconnects (streaming or not)
// abandons its producer, which cancels its engine requests; their KV pages return at the engine's
// next step.
#pragma once

#include "server/frontend/http/http_message.h"
#include "server/frontend/http/openai_request.h"
#include "server/frontend/serving_context.h"

namespace longbow::http {

class CompletionHandler {
 public:
  explicit CompletionHandler(ServingContext& context) : context_(context) {}

  // An error response, or one whose producer answers when the engine has.
  HttpResponse handle(Endpoint endpoint, const HttpRequest& request);

 private:
  ServingContext& context_;
};

}  // namespace longbow::http
