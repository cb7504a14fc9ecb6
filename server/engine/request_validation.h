// Checks a GenerateRequest against the model and the engine's limits before it is queued.
#pragma once

#include <cstddef>

#include "common/status.h"
#include "server/engine/request.h"

namespace longbow {

// Caps on what one request may ask of the engine, the same for every front end (both call
// validate_request through Engine::submit; the REST parser also checks the counts before it copies
// the values). Each bounds per-token work: every stop string is matched against every new token's
// text, every stop id and bias entry is looked at on every step.
inline constexpr int kMaxStopStrings = 16;
inline constexpr size_t kMaxStopStringBytes = 1024;
inline constexpr int kMaxStopTokenIds = 1024;
inline constexpr int kMaxLogitBias = 1024;
inline constexpr double kMaxTemperature = 2.0;  // OpenAI's bound

// The count caps above, for a front end to check before it copies the values (validate_request
// checks them again). INVALID_ARGUMENT names the field.
Status check_request_counts(size_t num_stop, size_t num_stop_token_ids, size_t num_logit_bias);

struct RequestLimits {
  int vocab_size = 0;
  int max_model_len = 0;  // the model's context, prompt and outputs together
  int max_kv_tokens = 0;  // tokens the whole KV pool holds: one sequence can never grow past this
  int max_n = 16;
  int max_logprobs = 20;
};

// The request's effective max_tokens (its own, or what is left of the context and the KV pool), or:
//  INVALID_ARGUMENT naming the field for a malformed request (empty prompt, token outside the
//  vocabulary, sampling parameter out of range);
//  OUT_OF_RANGE when prompt + max_tokens exceeds the model's context or the KV pool.
StatusOr<int> validate_request(const GenerateRequest& request, const RequestLimits& limits);

}  // namespace longbow
