// OpenAI response objects built from engine events: text_completion, chat.completion, their
// streamed chunks, usage, logprobs. Keys are emitted in the order of OpenAI's own examples
// (reference/api.md §1.4-1.5), so a curl transcript reads like one from the real API.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/tokenizer/tokenizer.h"
#include "server/engine/request.h"
#include "server/frontend/http/openai_request.h"
#include "server/frontend/tools/tool_request.h"

namespace longbow::http {

using ordered_json = nlohmann::ordered_json;

// What every object of one response shares.
struct ResponseMeta {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string id;  // "cmpl-..." or "chatcmpl-..."
  int64_t created = 0;
  std::string model;
  bool return_token_ids = false;
  bool logprobs = false;
  bool echo_logprobs = false;          // completions: the echoed prompt's tokens lead each choice's logprobs
  bool prompt_logprobs = false;        // vLLM's prompt_logprobs field (completions: per choice; chat: top level)
};

// One choice's output, accumulated over its events (non-streaming responses).
struct ChoiceOutput {
  std::string text;
  std::vector<TokenId> token_ids;
  std::vector<TokenLogprob> logprobs;
  // With prompt logprobs: the prompt's first token, then tokens 1..N-1 with their logprobs.
  std::optional<TokenId> first_prompt_token;
  std::vector<TokenLogprob> prompt_logprobs;
  std::optional<FinishReason> finish_reason;
  std::optional<std::string> stop_string;
  std::optional<TokenId> stop_token;

  void append(const GenerateEvent& event);
};

// The text of `value` as one line (invalid UTF-8 from token pieces is replaced, never thrown).
std::string to_json_text(const ordered_json& value);

ordered_json usage_json(const Usage& usage);

// The whole non-streaming response; `choices[i]` has index i. Chat: `tools` (may be null) splits
// each choice's text into the message's content and tool_calls; a choice with calls that was not
// cut short finishes with "tool_calls".
ordered_json full_response(const ResponseMeta& meta, const std::vector<ChoiceOutput>& choices, const Usage& usage,
                           const Tokenizer& tokenizer, const tools::ToolOutput* tools = nullptr);

// A streamed chunk for choice `index`. Chat: the delta holds `role` (the first chunk of a choice)
// and/or `content`; completions: `text`. `event` may be null (a role-only or finish-only chunk).
ordered_json stream_chunk(const ResponseMeta& meta, int index, const std::string* role, const std::string& text,
                          const GenerateEvent* event, const Tokenizer& tokenizer);
// Completions with echo and logprobs, streamed: the echoed prompt `text` with its tokens' logprobs
// (`prompt`: first_prompt_token and prompt_logprobs), before the choice's first token.
ordered_json echo_chunk(const ResponseMeta& meta, int index, const std::string& text, const ChoiceOutput& prompt,
                        const Tokenizer& tokenizer);
// A chat chunk whose delta holds whole tool calls, numbered from `first` within the choice.
ordered_json tool_calls_chunk(const ResponseMeta& meta, int index, const std::vector<tools::ToolCall>& calls,
                              size_t first);
// The last chunk of a choice: an empty delta (chat) or empty text (completions) with finish_reason
// ("tool_calls" when `made_tool_calls` and the choice was not cut short).
ordered_json finish_chunk(const ResponseMeta& meta, int index, const ChoiceOutput& finish, bool made_tool_calls = false);
// The usage chunk: "choices": [] and "usage".
ordered_json usage_chunk(const ResponseMeta& meta, const Usage& usage);

}  // namespace longbow::http
