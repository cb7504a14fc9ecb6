// Per-choice output processing: turns each sampled token into the choice's next event, deciding
// whether the choice is finished (EOS, stop token, stop string, max_tokens).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "model/kv_cache/kv_cache_manager.h"
#include "server/engine/detokenizer.h"
#include "server/engine/request.h"
#include "server/engine/sampler.h"
#include "server/structured/matcher.h"

namespace longbow {

// The engine's state for one choice, beside the scheduler's Sequence.
struct ChoiceState {
  ChoiceState(const Tokenizer& tokenizer, const SamplingParams& params, std::span<const TokenId> prompt,
              int index, SeqId seq, uint64_t stream);

  int index;
  SeqId seq;
  uint64_t stream;  // sampling_stream(seed, index)
  PenaltyState penalties;
  StreamingDetokenizer detokenizer;
  int num_outputs = 0;
  bool finished = false;
  std::unique_ptr<structured::GrammarMatcher> matcher;  // with a structured output: where the output stands
  std::optional<std::chrono::steady_clock::time_point> last_token_time;
};

// Applies `token` (just sampled for `choice`) and returns the event to publish. `eos_token_ids` are
// the model's end-of-sequence tokens. Sets choice.finished when the choice is done; then the event
// carries finish_reason and, for a stop string, stop_string (its text is not emitted).
GenerateEvent process_token(ChoiceState& choice, const SamplingParams& params, int max_tokens,
                            std::span<const TokenId> eos_token_ids, TokenId token,
                            std::optional<TokenLogprob> logprob);

}  // namespace longbow
