// Engine-test helpers shared by the tests that drive an Engine with token-id prompts: a greedy
// request, and the collection of one request's events until its last one.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <vector>

#include "server/engine/engine.h"

namespace longbow::fakes {

// Greedy (temperature 0), max_tokens new tokens, EOS ignored.
inline GenerateRequest greedy_request(std::vector<TokenId> prompt, int max_tokens) {
  GenerateRequest request;
  request.prompt_tokens = std::move(prompt);
  request.sampling.temperature = 0.0f;
  request.sampling.max_tokens = max_tokens;
  request.sampling.ignore_eos = true;
  return request;
}

struct Collected {
  std::vector<TokenId> tokens;
  std::optional<Usage> usage;
  Status error;
};

// Every event of `handle` until its last; a test failure when none arrives within `wait` (a bound on
// a stuck engine, not a guess about speed).
inline Collected collect(const RequestHandle& handle, std::chrono::seconds wait = std::chrono::seconds(60)) {
  Collected out;
  while (std::optional<GenerateEvent> event = handle.events->next(wait)) {
    out.tokens.insert(out.tokens.end(), event->token_ids.begin(), event->token_ids.end());
    if (event->usage) out.usage = event->usage;
    if (!event->error.ok()) out.error = event->error;
    if (event->last) return out;
  }
  ADD_FAILURE() << "request " << handle.request_id << ": no event within the timeout";
  return out;
}

}  // namespace longbow::fakes
