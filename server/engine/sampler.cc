#include "server/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "server/engine/rng.h"

namespace longbow {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Candidates with a larger value first; equal values by lower id.
bool better(const std::pair<TokenId, double>& a, const std::pair<TokenId, double>& b) {
  return a.second > b.second || (a.second == b.second && a.first < b.first);
}

// top_p tries this many leading candidates before sorting the whole vocabulary.
constexpr size_t kTopPPrefix = 1024;

}  // namespace

PenaltyState::PenaltyState(const SamplingParams& params, std::span<const TokenId> prompt, int vocab_size) {
  track_ = params.repetition_penalty != 1.0f;
  if (!track_) return;
  in_prompt_.assign(static_cast<size_t>(vocab_size), false);
  for (TokenId token : prompt) {
    if (token >= 0 && token < vocab_size) in_prompt_[static_cast<size_t>(token)] = true;
  }
}

void PenaltyState::record_output(TokenId token) { ++output_counts_[token]; }

Sampler::Sampler(int vocab_size, std::vector<TokenId> eos_token_ids)
    : vocab_size_(vocab_size), eos_token_ids_(std::move(eos_token_ids)), work_(static_cast<size_t>(vocab_size)) {}

Status Sampler::process_logits(const SampleInput& input) {
  if (static_cast<int>(input.logits.size()) != vocab_size_) {
    return invalid_argument("sampler: logits row has " + std::to_string(input.logits.size()) +
                            " entries, the vocabulary " + std::to_string(vocab_size_));
  }
  const SamplingParams& params = *input.params;
  for (size_t i = 0; i < work_.size(); ++i) {
    float x = input.logits[i];
    work_[i] = std::isnan(x) ? kNegInf : x;
  }
  auto at = [this](TokenId id) -> float* {
    return id >= 0 && id < vocab_size_ ? &work_[static_cast<size_t>(id)] : nullptr;
  };
  for (const auto& [id, bias] : params.logit_bias) {
    if (float* x = at(id)) *x += bias;
  }
  if (input.num_outputs < params.min_tokens) {
    for (TokenId id : eos_token_ids_) if (float* x = at(id)) *x = kNegInf;
    for (TokenId id : params.stop_token_ids) if (float* x = at(id)) *x = kNegInf;
  }
  if (input.penalties != nullptr) {
    const PenaltyState& state = *input.penalties;
    if (params.repetition_penalty != 1.0f) {
      float r = params.repetition_penalty;
      auto penalize = [r](float& x) { x = x > 0.0f ? x / r : x * r; };
      const std::vector<bool>& in_prompt = state.in_prompt();
      for (size_t i = 0; i < in_prompt.size() && i < work_.size(); ++i) {
        if (in_prompt[i]) penalize(work_[i]);
      }
      for (const auto& [id, count] : state.output_counts()) {
        bool done = static_cast<size_t>(id) < in_prompt.size() && in_prompt[static_cast<size_t>(id)];
        if (float* x = at(id); x && !done) penalize(*x);
      }
    }
    if (params.presence_penalty != 0.0f || params.frequency_penalty != 0.0f) {
      for (const auto& [id, count] : state.output_counts()) {
        if (float* x = at(id)) {
          *x -= params.frequency_penalty * static_cast<float>(count) + params.presence_penalty;
        }
      }
    }
  }
  return Status::Ok();
}

std::optional<TokenId> Sampler::argmax_work() const {
  std::optional<TokenId> best;
  float best_value = kNegInf;
  for (size_t i = 0; i < work_.size(); ++i) {
    if (work_[i] > best_value) {
      best_value = work_[i];
      best = static_cast<TokenId>(i);
    }
  }
  return best;
}

void Sampler::fill_distribution(const SamplingParams& params) {
  candidates_.clear();
  double inv_temperature = 1.0 / static_cast<double>(params.temperature);
  for (size_t i = 0; i < work_.size(); ++i) {
    if (work_[i] > kNegInf) candidates_.emplace_back(static_cast<TokenId>(i), static_cast<double>(work_[i]) * inv_temperature);
  }
  if (candidates_.empty()) return;
  bool sorted = false;
  if (params.top_k > 0 && static_cast<size_t>(params.top_k) < candidates_.size()) {
    auto kth = candidates_.begin() + params.top_k;
    std::nth_element(candidates_.begin(), kth, candidates_.end(), better);
    candidates_.erase(kth, candidates_.end());
    std::sort(candidates_.begin(), candidates_.end(), better);
    sorted = true;
  }
  // Softmax, stable against large logits.
  double max_value = -std::numeric_limits<double>::infinity();
  for (const auto& c : candidates_) max_value = std::max(max_value, c.second);
  double total = 0.0;
  for (auto& c : candidates_) {
    c.second = std::exp(c.second - max_value);
    total += c.second;
  }
  // The best candidate has weight exp(0) = 1, so p_max = 1 / total.
  if (params.min_p > 0.0f) {
    double threshold = static_cast<double>(params.min_p);  // relative to the best weight of 1
    std::erase_if(candidates_, [threshold](const auto& c) { return c.second < threshold; });
    total = 0.0;
    for (const auto& c : candidates_) total += c.second;
  }
  if (params.top_p < 1.0f) {
    double target = static_cast<double>(params.top_p) * total;
    auto nucleus_end = [&](size_t count) -> std::optional<size_t> {
      double sum = 0.0;
      for (size_t i = 0; i < count; ++i) {
        sum += candidates_[i].second;
        if (sum >= target) return i + 1;
      }
      return std::nullopt;
    };
    std::optional<size_t> end;
    if (!sorted && candidates_.size() > kTopPPrefix) {
      std::partial_sort(candidates_.begin(), candidates_.begin() + kTopPPrefix, candidates_.end(), better);
      end = nucleus_end(kTopPPrefix);
    }
    if (!end) {
      if (!sorted) std::sort(candidates_.begin(), candidates_.end(), better);
      end = nucleus_end(candidates_.size()).value_or(candidates_.size());
    }
    candidates_.resize(std::max<size_t>(1, *end));
    total = 0.0;
    for (const auto& c : candidates_) total += c.second;
  }
  for (auto& c : candidates_) c.second /= total;
}

TokenLogprob Sampler::make_logprob(std::span<const float> logits, TokenId token, int num_top) const {
  auto value = [&](size_t i) {
    float x = logits[i];
    return std::isnan(x) ? kNegInf : x;
  };
  float max_value = kNegInf;
  for (size_t i = 0; i < logits.size(); ++i) max_value = std::max(max_value, value(i));
  double sum = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) sum += std::exp(static_cast<double>(value(i) - max_value));
  double log_total = static_cast<double>(max_value) + std::log(sum);
  auto logprob = [&](TokenId id) { return static_cast<float>(static_cast<double>(value(static_cast<size_t>(id))) - log_total); };

  TokenLogprob out;
  out.token = token;
  out.logprob = logprob(token);
  size_t n = std::min(static_cast<size_t>(std::max(0, num_top)), logits.size());
  if (n > 0) {
    std::vector<std::pair<TokenId, double>> order(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) order[i] = {static_cast<TokenId>(i), value(i)};
    std::partial_sort(order.begin(), order.begin() + static_cast<ptrdiff_t>(n), order.end(), better);
    for (size_t i = 0; i < n; ++i) out.top.emplace_back(order[i].first, logprob(order[i].first));
  }
  return out;
}

TokenLogprob Sampler::logprob(std::span<const float> logits, TokenId token, int num_top, bool with_rank) const {
  TokenLogprob out = make_logprob(logits, token, num_top);
  if (with_rank) {
    // NaN logits count as -inf (as in make_logprob): they never outrank a token.
    const float own = std::isnan(logits[static_cast<size_t>(token)]) ? kNegInf : logits[static_cast<size_t>(token)];
    out.rank = 1 + static_cast<int>(std::count_if(logits.begin(), logits.end(), [own](float x) { return x > own; }));
  }
  return out;
}

StatusOr<std::vector<std::pair<TokenId, double>>> Sampler::distribution(const SampleInput& input) {
  RETURN_IF_ERROR(process_logits(input));
  const SamplingParams& params = *input.params;
  if (params.temperature == 0.0f || params.top_k == 1) return std::vector<std::pair<TokenId, double>>{};
  fill_distribution(params);
  if (candidates_.empty()) return internal_error("sampler: every logit is -inf or NaN");
  return candidates_;
}

StatusOr<SampleOutput> Sampler::sample(const SampleInput& input) {
  RETURN_IF_ERROR(process_logits(input));
  const SamplingParams& params = *input.params;
  SampleOutput out;
  if (params.temperature == 0.0f || params.top_k == 1) {
    std::optional<TokenId> best = argmax_work();
    if (!best) return internal_error("sampler: every logit is -inf or NaN");
    out.token = *best;
  } else {
    fill_distribution(params);
    if (candidates_.empty()) return internal_error("sampler: every logit is -inf or NaN");
    double u = uniform_draw(input.stream, static_cast<uint64_t>(input.num_outputs));
    out.token = candidates_.back().first;
    double cumulative = 0.0;
    for (const auto& [id, p] : candidates_) {
      cumulative += p;
      if (u < cumulative) {
        out.token = id;
        break;
      }
    }
  }
  if (params.logprobs) out.logprob = make_logprob(input.logits, out.token, *params.logprobs);
  return out;
}

}  // namespace longbow
