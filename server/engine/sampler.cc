#include "server/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace longbow {

PenaltyState::PenaltyState(const SamplingParams& params, std::span<const TokenId> prompt, int vocab_size) {
  if (params.repetition_penalty == 1.0f) return;
  in_prompt_.assign(static_cast<size_t>(vocab_size), false);
  for (TokenId token : prompt) {
    if (token >= 0 && token < vocab_size && !in_prompt_[static_cast<size_t>(token)]) {
      in_prompt_[static_cast<size_t>(token)] = true;
      prompt_ids_.push_back(token);
    }
  }
  std::sort(prompt_ids_.begin(), prompt_ids_.end());
}

void PenaltyState::record_output(TokenId token) { ++output_counts_[token]; }

std::vector<PenaltyEntry> PenaltyState::entries() const {
  std::vector<PenaltyEntry> out;
  out.reserve(prompt_ids_.size() + output_counts_.size());
  for (TokenId id : prompt_ids_) {
    auto it = output_counts_.find(id);
    out.push_back(PenaltyEntry{id, it == output_counts_.end() ? 0 : it->second, true});
  }
  for (const auto& [id, count] : output_counts_) {
    const bool in_prompt = id >= 0 && static_cast<size_t>(id) < in_prompt_.size() && in_prompt_[static_cast<size_t>(id)];
    if (!in_prompt) out.push_back(PenaltyEntry{id, count, false});
  }
  return out;
}

SamplingRow make_sampling_row(const SampleInput& input, std::span<const TokenId> eos_token_ids) {
  const SamplingParams& params = *input.params;
  SamplingRow row;
  row.temperature = params.temperature;
  row.top_k = params.top_k;
  row.top_p = params.top_p;
  row.min_p = params.min_p;
  row.stream = input.stream;
  row.counter = static_cast<uint64_t>(input.num_outputs);
  row.num_logprobs = params.logprobs ? std::max(0, *params.logprobs) : -1;
  row.logit_bias.assign(params.logit_bias.begin(), params.logit_bias.end());
  if (input.num_outputs < params.min_tokens) {
    row.masked_ids.assign(eos_token_ids.begin(), eos_token_ids.end());
    row.masked_ids.insert(row.masked_ids.end(), params.stop_token_ids.begin(), params.stop_token_ids.end());
  }
  row.repetition_penalty = params.repetition_penalty;
  row.presence_penalty = params.presence_penalty;
  row.frequency_penalty = params.frequency_penalty;
  const bool penalized =
      params.repetition_penalty != 1.0f || params.presence_penalty != 0.0f || params.frequency_penalty != 0.0f;
  if (input.penalties != nullptr && penalized) row.penalties = input.penalties->entries();
  row.allow_mask.assign(input.allow_mask.begin(), input.allow_mask.end());
  return row;
}

StatusOr<SampleOutput> to_sample_output(const RowSample& sample, const SamplingParams& params) {
  if (sample.token < 0) return internal_error("sampler: every logit is -inf or NaN");
  SampleOutput out;
  out.token = sample.token;
  if (params.logprobs) {
    TokenLogprob logprob;
    logprob.token = sample.token;
    logprob.logprob = sample.logprob;
    logprob.top.assign(sample.top.begin(), sample.top.end());
    out.logprob = std::move(logprob);
  }
  return out;
}

Sampler::Sampler(int vocab_size, std::vector<TokenId> eos_token_ids)
    : eos_token_ids_(std::move(eos_token_ids)), reference_(vocab_size) {}

StatusOr<SampleOutput> Sampler::sample(const SampleInput& input) {
  RETURN_IF_ERROR(reference_.sample(input.logits, make_sampling_row(input, eos_token_ids_), &sample_));
  return to_sample_output(sample_, *input.params);
}

StatusOr<std::vector<std::pair<TokenId, double>>> Sampler::distribution(const SampleInput& input) {
  std::vector<std::pair<TokenId, double>> out;
  const SamplingRow row = make_sampling_row(input, eos_token_ids_);
  RETURN_IF_ERROR(reference_.distribution(input.logits, row, &out));
  if (out.empty() && !row.greedy()) return internal_error("sampler: every logit is -inf or NaN");
  return out;
}

TokenLogprob score_token(std::span<const float> logits, TokenId token, int num_top) {
  // NaN logits count as -inf, as the reference sampler's step 1 does.
  auto value = [&](size_t i) { return std::isnan(logits[i]) ? -std::numeric_limits<float>::infinity() : logits[i]; };
  float max_value = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < logits.size(); ++i) max_value = std::max(max_value, value(i));
  double sum = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) sum += std::exp(static_cast<double>(value(i)) - max_value);
  const double log_total = static_cast<double>(max_value) + std::log(sum);
  auto logprob = [&](size_t i) { return static_cast<float>(static_cast<double>(value(i)) - log_total); };

  TokenLogprob out;
  out.token = token;
  const float own = value(static_cast<size_t>(token));
  out.logprob = logprob(static_cast<size_t>(token));
  out.rank = 1;
  for (size_t i = 0; i < logits.size(); ++i) out.rank += value(i) > own ? 1 : 0;
  const size_t n = std::min(static_cast<size_t>(std::max(0, num_top)), logits.size());
  if (n > 0) {
    std::vector<TokenId> order(logits.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<TokenId>(i);
    std::partial_sort(order.begin(), order.begin() + static_cast<ptrdiff_t>(n), order.end(), [&](TokenId a, TokenId b) {
      const float va = value(static_cast<size_t>(a)), vb = value(static_cast<size_t>(b));
      return va != vb ? va > vb : a < b;
    });
    for (size_t i = 0; i < n; ++i) out.top.emplace_back(order[i], logprob(static_cast<size_t>(order[i])));
  }
  return out;
}


}  // namespace longbow
