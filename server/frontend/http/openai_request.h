// OpenAI request bodies (/v1/completions, /v1/chat/completions) parsed into engine requests.
//
// The only place JSON meets the engine's types: every field is type- and range-checked here, and a
// failure names its parameter (the error body's "param"). A field longbow does not serve is a 400
// naming it (never silently ignored); null fields count as absent. Tool fields are
// tools/tool_request.h's. Prompts are tokenized here: a completions
// prompt may be a string, a list of strings, a token-id list or a list of those (one engine request
// each); chat messages go through the model's chat template.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "server/engine/request.h"
#include "server/frontend/serving_context.h"
#include "server/frontend/tools/tool_request.h"

namespace longbow::http {

enum class Endpoint { kCompletions, kChatCompletions };

struct OpenAiRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string model;                               // as given (may be empty)
  std::vector<std::vector<TokenId>> prompts;       // one engine request each; chat has exactly one
  std::vector<std::string> echo_texts;             // completions with echo: each prompt's text
  SamplingParams sampling;                         // shared by every prompt (n: best_of when set)
  int n = 1;                                       // choices returned per prompt
  int best_of = 0;                                 // completions: candidates per prompt (> n); 0: n
  bool stream = false;
  bool include_usage = false;     // stream_options.include_usage
  bool return_token_ids = false;  // extension: "token_ids" in each choice / chunk
  std::string user;               // OpenAI's end-user id: logged, nothing else
  bool logprobs = false;          // chat: logprobs; completions: logprobs given
  int top_logprobs = 0;           // chat: top_logprobs; completions: the logprobs number
  std::optional<int> prompt_logprobs;  // vLLM's prompt_logprobs (top alternatives per prompt token)
  bool echo_logprobs = false;          // completions with echo and logprobs: the prompt's tokens lead the logprobs
  // chat: how the answer's text becomes content and tool_calls (never null for chat)
  std::shared_ptr<const tools::ToolOutput> tool_output;
};

// Parses and tokenizes `body`: INVALID_ARGUMENT (bad JSON, wrong type, out of range), UNIMPLEMENTED
// (a feature longbow lacks) or the chat template's error. On failure
// *error_param holds the parameter the error is about (empty when none).
StatusOr<OpenAiRequest> parse_openai_request(Endpoint endpoint, std::string_view body, const ServingContext& context,
                                             std::string* error_param);

}  // namespace longbow::http
