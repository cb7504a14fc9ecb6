// POST /v1/completions and /v1/chat/completions: parse, submit to the engine, answer in one JSON
// body or as an OpenAI SSE stream.
//
// Streams: `data: <chunk>\n\n` events; chat choices open with a role chunk, each choice ends with a
// chunk carrying finish_reason (its delta empty), then an optional usage chunk (`choices: []`,
// stream_options.include_usage) and `data: [DONE]`. An error after the 200 goes out as
// `data: {"error": {...}}` before [DONE]. A client that disconnects (streaming or not) cancels its
// engine requests within one poll interval, which frees their KV pages at the engine's next step.
#pragma once

#include <httplib.h>

#include "server/frontend/http/openai_request.h"
#include "server/frontend/serving_context.h"

namespace longbow::http {

class CompletionHandler {
 public:
  explicit CompletionHandler(ServingContext& context) : context_(context) {}

  void handle(Endpoint endpoint, const httplib::Request& req, httplib::Response& res);

 private:
  ServingContext& context_;
};

}  // namespace longbow::http
