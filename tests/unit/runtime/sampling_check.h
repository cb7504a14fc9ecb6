// testing::SamplingCheck: Transformer::forward_sample against forward() + the reference sampler.
#pragma once

#include <gtest/gtest.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "common/rng.h"
#include "model/runtime/transformer.h"
#include "model/sampling/reference_sampler.h"

namespace longbow::testing {

// Sampling on the backend through the runtime, step by step: wraps a Transformer so that every step
// (of tests/unit/runtime/decode_scenario.h) runs twice, once with forward() (logits to the host,
// sampled there by the reference) and once, the same step again (its K/V writes are the same), with
// forward_sample(); tokens and logprobs must agree (logprobs within 1e-5: a device sums in another
// order). Rows cycle
// through greedy, greedy with 5 logprobs, and seeded temperature with top-k, top-p and a bias;
// a seeded draw within 1e-9 of a CDF boundary is skipped (counted).
class SamplingCheck final : public Transformer {
 public:
  explicit SamplingCheck(Transformer& inner) : inner_(inner) {}

  Status forward(std::span<const SequenceStep> steps, std::vector<float>* logits) override {
    RETURN_IF_ERROR(inner_.forward(steps, logits));
    std::vector<SamplingRow> rows;
    for (const SequenceStep& step : steps) {
      if (!step.want_logits) continue;
      SamplingRow row;
      const int kind = static_cast<int>(rows_checked_ + rows.size()) % 3;
      row.temperature = kind == 2 ? 0.8f : 0.0f;
      row.num_logprobs = kind == 1 ? 5 : -1;
      if (kind == 2) row.top_k = 50, row.top_p = 0.9f, row.logit_bias = {{1, 2.0f}};
      row.stream = sampling_stream(77, rows_checked_ + rows.size());
      row.counter = static_cast<uint64_t>(step.num_cached);
      rows.push_back(std::move(row));
    }
    std::vector<RowSample> samples;
    RETURN_IF_ERROR(inner_.forward_sample(steps, rows, &samples));
    const auto vocab = static_cast<size_t>(config().vocab_size);
    if (samples.size() != rows.size() || logits->size() != rows.size() * vocab) {
      return internal_error(fmt::format("{} samples, {} logits for {} rows", samples.size(), logits->size(), rows.size()));
    }
    ReferenceSampler reference(static_cast<int>(vocab));
    for (size_t r = 0; r < rows.size(); ++r) {
      const std::span<const float> row_logits(logits->data() + r * vocab, vocab);
      RowSample expected;
      RETURN_IF_ERROR(reference.sample(row_logits, rows[r], &expected));
      ++rows_checked_;
      if (!rows[r].greedy()) {
        std::vector<std::pair<int32_t, double>> dist;
        RETURN_IF_ERROR(reference.distribution(row_logits, rows[r], &dist));
        const double u = uniform_draw(rows[r].stream, rows[r].counter);
        double cum = 0.0, margin = 1.0;
        for (const auto& [id, p] : dist) margin = std::min(margin, std::abs((cum += p) - u));
        if (margin < 1e-9) {
          ++knife_edges_;
          continue;
        }
      }
      EXPECT_EQ(samples[r].token, expected.token) << "row " << rows_checked_ - 1;
      if (rows[r].num_logprobs >= 0) {
        EXPECT_NEAR(samples[r].logprob, expected.logprob, 1e-5f);
        EXPECT_EQ(samples[r].top.size(), expected.top.size());
        for (size_t n = 0; n < std::min(samples[r].top.size(), expected.top.size()); ++n) {
          EXPECT_EQ(samples[r].top[n].first, expected.top[n].first);
        }
      }
    }
    return Status::Ok();
  }
  const ModelConfig& config() const override { return inner_.config(); }
  const std::vector<CacheGroup>& cache_groups() const override { return inner_.cache_groups(); }
  int num_pages(int group) const override { return inner_.num_pages(group); }

  uint64_t rows_checked_ = 0;
  int knife_edges_ = 0;

 private:
  Transformer& inner_;
};

}  // namespace longbow::testing
