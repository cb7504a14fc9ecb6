// Sampler: one token from one row of F32 logits, on the host.
//
// Order of operations (the same as vLLM's, up to where min_p sits):
//   logprobs (if asked) from the raw logits;
//   logit_bias; min_tokens masks EOS and stop_token_ids; repetition penalty (prompt and output
//   tokens); presence and frequency penalties (output tokens);
//   temperature 0 (or top_k 1): argmax, ties to the lowest id; otherwise
//   divide by temperature, keep top_k, softmax, drop p < min_p·p_max, keep the top_p nucleus,
//   then invert the CDF of what is left at u = uniform_draw(stream, output index).
// Candidates sorted by (probability desc, id asc) when a filter ran, else in id order, so the
// result depends only on the logits, the parameters, and (stream, counter).
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"
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
  const std::vector<bool>& in_prompt() const { return in_prompt_; }

 private:
  bool track_ = false;
  std::vector<bool> in_prompt_;  // [vocab], only with a repetition penalty
  std::unordered_map<TokenId, int> output_counts_;
};

struct SampleInput {
  std::span<const float> logits;  // [vocab_size]
  const SamplingParams* params = nullptr;
  const PenaltyState* penalties = nullptr;
  int num_outputs = 0;  // outputs so far in this choice: min_tokens and the draw counter use it
  uint64_t stream = 0;  // sampling_stream(seed, choice index)
};

struct SampleOutput {
  TokenId token = 0;
  std::optional<TokenLogprob> logprob;  // when params->logprobs is set
};

class Sampler {
 public:
  // `eos_token_ids` are what min_tokens suppresses besides the request's stop_token_ids.
  Sampler(int vocab_size, std::vector<TokenId> eos_token_ids);

  // INVALID_ARGUMENT when the logits row has the wrong size; INTERNAL when no token is finite.
  StatusOr<SampleOutput> sample(const SampleInput& input);

  // The log-softmax of the raw `logits` at `token`, with the `num_top` most likely tokens (ties to the
  // lower id) and, with `with_rank`, the token's rank (prompt logprobs).
  TokenLogprob logprob(std::span<const float> logits, TokenId token, int num_top, bool with_rank) const;

  // The distribution sample() draws from, as (token, probability) in draw order; probabilities sum
  // to 1. Empty for greedy parameters. Exposed for tests.
  StatusOr<std::vector<std::pair<TokenId, double>>> distribution(const SampleInput& input);

 private:
  // Writes the processed logits (bias, masks, penalties) of `input` into work_.
  Status process_logits(const SampleInput& input);
  std::optional<TokenId> argmax_work() const;
  void fill_distribution(const SamplingParams& params);
  TokenLogprob make_logprob(std::span<const float> logits, TokenId token, int num_top) const;

  int vocab_size_;
  std::vector<TokenId> eos_token_ids_;
  std::vector<float> work_;                           // [vocab] processed logits
  std::vector<std::pair<TokenId, double>> candidates_;  // the distribution, reused across calls
};

}  // namespace longbow
