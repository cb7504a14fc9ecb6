#include "model/sampling/reference_sampler.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "common/rng.h"

namespace longbow {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Candidates with a larger value first; equal values by lower id.
bool better(const std::pair<int32_t, double>& a, const std::pair<int32_t, double>& b) {
  return a.second > b.second || (a.second == b.second && a.first < b.first);
}

// top_p tries this many leading candidates before sorting the whole vocabulary.
constexpr size_t kTopPPrefix = 1024;

}  // namespace

ReferenceSampler::ReferenceSampler(int vocab_size)
    : vocab_size_(vocab_size), raw_(static_cast<size_t>(vocab_size)), work_(static_cast<size_t>(vocab_size)) {}

Status ReferenceSampler::process(std::span<const float> logits, const SamplingRow& row) {
  if (static_cast<int>(logits.size()) != vocab_size_) {
    return invalid_argument(
        fmt::format("sampler: logits row has {} entries, the vocabulary {}", logits.size(), vocab_size_));
  }
  const size_t mask_words = (static_cast<size_t>(vocab_size_) + 31) / 32;
  if (!row.allow_mask.empty() && row.allow_mask.size() != mask_words) {
    return invalid_argument(fmt::format("sampler: the allow mask has {} words, the vocabulary of {} needs {}",
                                        row.allow_mask.size(), vocab_size_, mask_words));
  }
  for (size_t i = 0; i < raw_.size(); ++i) {
    const float x = logits[i];
    const bool allowed = row.allow_mask.empty() || ((row.allow_mask[i / 32] >> (i % 32)) & 1u) != 0;
    raw_[i] = std::isnan(x) || !allowed ? kNegInf : x;
  }
  work_ = raw_;
  auto at = [this](int32_t id) -> float* {
    return id >= 0 && id < vocab_size_ ? &work_[static_cast<size_t>(id)] : nullptr;
  };
  for (const auto& [id, bias] : row.logit_bias) {
    if (float* x = at(id)) *x += bias;
  }
  for (int32_t id : row.masked_ids) {
    if (float* x = at(id)) *x = kNegInf;
  }
  const float r = row.repetition_penalty;
  const bool counts = row.presence_penalty != 0.0f || row.frequency_penalty != 0.0f;
  for (const PenaltyEntry& e : row.penalties) {
    float* x = at(e.id);
    if (x == nullptr) continue;
    if (r != 1.0f && (e.in_prompt || e.output_count > 0)) *x = *x > 0.0f ? *x / r : *x * r;
    if (counts && e.output_count > 0) {
      *x -= row.frequency_penalty * static_cast<float>(e.output_count) + row.presence_penalty;
    }
  }
  return Status::Ok();
}

int32_t ReferenceSampler::argmax_work() const {
  int32_t best = -1;
  float best_value = kNegInf;
  for (size_t i = 0; i < work_.size(); ++i) {
    if (work_[i] > best_value) {
      best_value = work_[i];
      best = static_cast<int32_t>(i);
    }
  }
  return best;
}

void ReferenceSampler::fill_distribution(const SamplingRow& row) {
  candidates_.clear();
  const double inv_temperature = 1.0 / static_cast<double>(row.temperature);
  for (size_t i = 0; i < work_.size(); ++i) {
    if (work_[i] > kNegInf) {
      candidates_.emplace_back(static_cast<int32_t>(i), static_cast<double>(work_[i]) * inv_temperature);
    }
  }
  if (candidates_.empty()) return;
  bool sorted = false;
  if (row.top_k > 0 && static_cast<size_t>(row.top_k) < candidates_.size()) {
    auto kth = candidates_.begin() + row.top_k;
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
  if (row.min_p > 0.0f) {
    const double threshold = static_cast<double>(row.min_p);  // relative to the best weight of 1
    std::erase_if(candidates_, [threshold](const auto& c) { return c.second < threshold; });
    total = 0.0;
    for (const auto& c : candidates_) total += c.second;
  }
  if (row.top_p < 1.0f) {
    const double target = static_cast<double>(row.top_p) * total;
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

void ReferenceSampler::fill_logprobs(int32_t token, int num_top, RowSample* out) const {
  float max_value = kNegInf;
  for (float x : raw_) max_value = std::max(max_value, x);
  double sum = 0.0;
  for (float x : raw_) sum += std::exp(static_cast<double>(x - max_value));
  const double log_total = static_cast<double>(max_value) + std::log(sum);
  auto logprob = [&](int32_t id) {
    return static_cast<float>(static_cast<double>(raw_[static_cast<size_t>(id)]) - log_total);
  };
  out->logprob = logprob(token);
  const size_t n = std::min(static_cast<size_t>(std::max(0, num_top)), raw_.size());
  if (n == 0) return;
  std::vector<std::pair<int32_t, double>> order(raw_.size());
  for (size_t i = 0; i < raw_.size(); ++i) order[i] = {static_cast<int32_t>(i), raw_[i]};
  std::partial_sort(order.begin(), order.begin() + static_cast<ptrdiff_t>(n), order.end(), better);
  for (size_t i = 0; i < n; ++i) out->top.emplace_back(order[i].first, logprob(order[i].first));
}

Status ReferenceSampler::distribution(std::span<const float> logits, const SamplingRow& row,
                                      std::vector<std::pair<int32_t, double>>* out) {
  out->clear();
  RETURN_IF_ERROR(process(logits, row));
  if (row.greedy()) return Status::Ok();
  fill_distribution(row);
  *out = candidates_;
  return Status::Ok();
}

Status ReferenceSampler::sample(std::span<const float> logits, const SamplingRow& row, RowSample* out) {
  *out = RowSample{};
  RETURN_IF_ERROR(process(logits, row));
  if (row.greedy()) {
    out->token = argmax_work();
  } else {
    fill_distribution(row);
    if (!candidates_.empty()) {
      const double u = uniform_draw(row.stream, row.counter);
      out->token = candidates_.back().first;
      double cumulative = 0.0;
      for (const auto& [id, p] : candidates_) {
        cumulative += p;
        if (u < cumulative) {
          out->token = id;
          break;
        }
      }
    }
  }
  if (out->token >= 0 && row.num_logprobs >= 0) fill_logprobs(out->token, row.num_logprobs, out);
  return Status::Ok();
}

}  // namespace longbow
