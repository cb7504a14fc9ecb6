// Checks a GenerateRequest against the model and the engine's limits before it is queued.
#pragma once

#include "common/status.h"
#include "server/engine/request.h"

namespace longbow {

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
