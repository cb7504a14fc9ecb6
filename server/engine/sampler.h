// Sampler: one token from one row of F32 logits, on the host.
//
// The math is the reference in model/sampling/reference_sampler.h (order of operations in
// model/sampling/sampling_row.h), shared with the Backend's `sample` op: this file turns a request's
// SamplingParams and history into a SamplingRow (make_sampling_row) and runs it on the host. The
// result depends only on the logits, the parameters, and (stream, counter = outputs so far).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"
#include "model/sampling/reference_sampler.h"
#include "model/sampling/sampling_row.h"
#include "server/engine/request.h"

namespace longbow {

// What the penalties need to know about one choice's history; updated token by token.
class PenaltyState {
 public:
  PenaltyState() = default;
  // Records the prompt when `params` uses a repetition penalty (otherwise nothing is kept).
  PenaltyState(const SamplingParams& params, std::span<const TokenId> prompt, int vocab_size);
  void record_output(TokenId token);

  const std::unordered_map<TokenId, int>& output_counts() const { return output_counts_; }
  // The history as SamplingRow::penalties: every prompt id (with a repetition penalty) and every
  // output id, once each.
  std::vector<PenaltyEntry> entries() const;

 private:
  std::vector<bool> in_prompt_;     // [vocab], only with a repetition penalty
  std::vector<TokenId> prompt_ids_;  // the distinct ids of in_prompt_, ascending
  std::unordered_map<TokenId, int> output_counts_;
};

struct SampleInput {
  std::span<const float> logits;  // [vocab_size]
  const SamplingParams* params = nullptr;
  const PenaltyState* penalties = nullptr;
  int num_outputs = 0;  // outputs so far in this choice: min_tokens and the draw counter use it
  uint64_t stream = 0;  // sampling_stream(seed, choice index)
  // Grammar (structured output): the ids allowed next, SamplingRow::allow_mask's layout; empty: all.
  std::span<const uint32_t> allow_mask = {};
};

struct SampleOutput {
  TokenId token = 0;
  std::optional<TokenLogprob> logprob;  // when params->logprobs is set
};

// The SamplingRow of `input` (its logits are not read); `eos_token_ids` are what min_tokens
// suppresses besides the request's stop_token_ids.
SamplingRow make_sampling_row(const SampleInput& input, std::span<const TokenId> eos_token_ids);

// A RowSample (from the reference or a backend) as the engine's output; INTERNAL when it has no token.
StatusOr<SampleOutput> to_sample_output(const RowSample& sample, const SamplingParams& params);

// Prompt logprobs: the log-softmax of the raw `logits` ([vocab]) at `token`, the token's rank (1 + the
// ids with a higher logit) and the `num_top` most likely ids (ties to the lower id). NaN counts as -inf.
TokenLogprob score_token(std::span<const float> logits, TokenId token, int num_top);

class Sampler {
 public:
  Sampler(int vocab_size, std::vector<TokenId> eos_token_ids);

  // INVALID_ARGUMENT when the logits row has the wrong size; INTERNAL when no token is finite.
  StatusOr<SampleOutput> sample(const SampleInput& input);

  // The distribution sample() draws from, as (token, probability) in draw order; probabilities sum
  // to 1. Empty for greedy parameters. Exposed for tests.
  StatusOr<std::vector<std::pair<TokenId, double>>> distribution(const SampleInput& input);

 private:
  std::vector<TokenId> eos_token_ids_;
  ReferenceSampler reference_;
  RowSample sample_;  // reused across calls
};

}  // namespace longbow
