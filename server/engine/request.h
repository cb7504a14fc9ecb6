// The engine's request and event types: what front ends build from a REST or gRPC request, and what
// they stream back. Front ends parse to these at the edge; no JSON or protobuf goes further in.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "model/tokenizer/tokenizer.h"

namespace longbow {

// Structured outputs: the output is constrained to a grammar while decoding (server/structured).
struct StructuredOutputSpec {
  enum class Kind { kJsonObject, kJsonSchema, kRegex, kChoice };
  Kind kind = Kind::kJsonObject;
  std::string text;                  // kJsonSchema: the schema's JSON text (key order kept); kRegex: the pattern
  std::vector<std::string> choices;  // kChoice
};

// OpenAI/vLLM sampling parameters. Defaults are "off" for every filter and penalty.
struct SamplingParams {
  int n = 1;                   // independent choices; they share the prompt's KV pages
  float temperature = 1.0f;    // 0: greedy (argmax, ties to the lowest id)
  int top_k = 0;               // keep the k most likely tokens; 0 or -1: off
  float top_p = 1.0f;          // keep the smallest set with probability mass >= top_p; 1: off
  float min_p = 0.0f;          // keep tokens with p >= min_p * p_max; 0: off
  std::optional<uint64_t> seed;  // same seed, same tokens (choice i uses a stream derived from seed and i)
  float repetition_penalty = 1.0f;  // CTRL-style, over prompt and output tokens; 1: off
  float presence_penalty = 0.0f;    // OpenAI-style, over output tokens, in [-2, 2]
  float frequency_penalty = 0.0f;   // OpenAI-style, over output tokens, in [-2, 2]
  std::vector<std::pair<TokenId, float>> logit_bias;  // added to the logits, each in [-100, 100]
  std::vector<TokenId> stop_token_ids;  // finish ("stop") after generating one of these
  std::vector<std::string> stop;        // finish ("stop") when the text contains one; it is not emitted
  bool include_stop_str_in_output = false;  // emit the stop string (or the stop token's text) that finished
  bool ignore_eos = false;              // keep generating past the model's EOS tokens
  int min_tokens = 0;  // EOS and stop_token_ids are suppressed before this many outputs (stop strings are not)
  std::optional<int> max_tokens;        // outputs per choice; unset: until the context is full
  std::optional<int> logprobs;          // with each token its logprob and this many top alternatives (0..20)
  // vLLM's prompt_logprobs: every prompt token after the first with its logprob, its rank and this
  // many top alternatives (0..20), from the logits at the position before it. The prompt is then
  // computed in full once (no prefix-cache hit), in chunks whose logits rows fit the step.
  std::optional<int> prompt_logprobs;
  // response_format json_object/json_schema, guided_json/regex/choice: tokens outside the grammar are
  // masked before sampling; EOS is allowed only where the output is complete.
  std::optional<StructuredOutputSpec> structured_output;
};

struct GenerateRequest {
  std::string request_id;  // empty: the engine assigns "req-<n>"; must be unique among live requests
  std::vector<TokenId> prompt_tokens;
  SamplingParams sampling;
  std::string cache_salt;  // requests with different salts never share prefix-cache pages
};

enum class FinishReason { kStop, kLength };

constexpr std::string_view finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
  }
  return "?";
}

struct TokenLogprob {
  TokenId token = 0;
  float logprob = 0.0f;  // log-softmax of the model's logits (before penalties, bias and temperature)
  std::vector<std::pair<TokenId, float>> top;  // the most likely tokens with their logprobs, best first
  int rank = 0;  // prompt logprobs: 1 + the number of tokens with a higher logit; 0: not computed
};

struct Usage {
  int prompt_tokens = 0;
  int completion_tokens = 0;     // over all choices
  int cached_prompt_tokens = 0;  // prompt tokens served by the prefix cache (first choice)
  int num_preemptions = 0;       // times a choice lost its pages and was recomputed (all choices)
};

// One event of a request's stream. A choice's events carry its new tokens and text in order; the
// last event of a choice has finish_reason. The request's last event has last == true and usage, or
// a non-OK error (then the request failed or was cancelled and no finish_reason follows).
struct GenerateEvent {
  int index = 0;                      // the choice, 0..n-1
  std::vector<TokenId> token_ids;     // tokens generated since the previous event of this choice
  std::string text;                   // text that became final (complete UTF-8, no pending stop prefix)
  std::vector<TokenLogprob> logprobs;  // one per token id, when requested
  // With prompt_logprobs, in each choice's first event: prompt tokens 1..N-1 (the first has no context).
  std::vector<TokenLogprob> prompt_logprobs;
  std::optional<FinishReason> finish_reason;
  std::optional<std::string> stop_string;  // the stop string that finished the choice
  std::optional<TokenId> stop_token;       // or the stop token id (not EOS) that finished it
  std::optional<Usage> usage;
  Status error;
  bool last = false;
};

}  // namespace longbow
